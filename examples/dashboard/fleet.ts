/**
 * Simulated lights and locks for `deno task dashboard --simulate N`: real
 * devices on real sockets (the library's `Device`), each running a fake light
 * or lock from `@iot-manager/core/fake-devices` (the simulator's). Like the
 * simulator's devices, each answers every command with its state, follows its
 * desired state (`manager.state.setDesired`) and reports its state whenever
 * a command or a delta changed it.
 *
 * @module
 */

import { Device, type JsonObject } from "@iot-manager/core";
import {
  answer,
  commandLines,
  createFake,
  type FakeDevice,
  type FakeType,
} from "@iot-manager/core/fake-devices";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["iot-manager", "dashboard", "fleet"]);
const decoder = new TextDecoder();

/** Handshakes in flight at once while the fleet connects. */
const CONNECTING_AT_ONCE = 32;

/** A running simulated fleet. */
export interface SimulatedFleet extends AsyncDisposable {
  /** The devices, in order: device `i` is named `light i+1` or `lock i+1`. */
  readonly devices: readonly Device[];
  /** Their state machines, in the same order. */
  readonly fakes: readonly FakeDevice[];
  /** Closes every device. */
  close(): Promise<void>;
}

/** The type of the `index`th simulated device: two lights to each lock. */
export function simulatedType(index: number): FakeType {
  return index % 3 === 2 ? "lock" : "light";
}

/**
 * Connects `count` simulated devices (two lights to each lock) to a manager,
 * a few handshakes at a time.
 *
 * @example
 * ```ts ignore
 * await using fleet = await startFleet({ port: manager.port, count: 50 });
 * ```
 */
export async function startFleet(
  options: { hostname?: string; port: number; count: number },
): Promise<SimulatedFleet> {
  const devices: Device[] = new Array(options.count);
  const fakes: FakeDevice[] = new Array(options.count);
  const loops: Promise<void>[] = [];
  let next = 0;
  const connectNext = async (): Promise<void> => {
    for (let i = next++; i < options.count; i = next++) {
      const type = simulatedType(i);
      const fake = createFake(type);
      const device = await Device.connect({
        hostname: options.hostname ?? "127.0.0.1",
        port: options.port,
        type,
        data: { ...fake.state(), name: `${type} ${i + 1}` },
      });
      devices[i] = device;
      fakes[i] = fake;
      device.on("delta", (delta) => report(device, fake.applyDelta(delta)));
      loops.push(answerCommands(device, fake));
    }
  };
  const close = async () => {
    await Promise.all(devices.map((device) => device?.close()));
    await Promise.all(loops);
  };
  const connecting = Array.from({ length: CONNECTING_AT_ONCE }, connectNext);
  const failed = (await Promise.allSettled(connecting)).find((result) =>
    result.status === "rejected"
  );
  if (failed) {
    await close();
    throw failed.reason;
  }
  return { devices, fakes, close, [Symbol.asyncDispose]: close };
}

/** Answers each command with the fake's state, and reports the state when it changed. */
async function answerCommands(device: Device, fake: FakeDevice): Promise<void> {
  for await (const data of device) {
    for (const line of commandLines(decoder.decode(data))) {
      const before = JSON.stringify(fake.state());
      const reply = answer(fake, line);
      const after = fake.state();
      if (JSON.stringify(after) !== before) report(device, after);
      await device.send(reply);
    }
  }
}

function report(device: Device, state: Record<string, unknown>): void {
  device.report(state as JsonObject).catch((error) =>
    log.warning("Device {uuid} could not report its state: {error}", { uuid: device.uuid, error })
  );
}
