/**
 * Simulated lights and locks for `deno task dashboard --simulate N`: real
 * devices on real sockets (the library's `Device`), each running a fake light
 * or lock from `@iot-manager/core/fake-devices` (the simulator's) and
 * answering every command with its state.
 *
 * @module
 */

import { Device } from "@iot-manager/core";
import {
  answer,
  commandLines,
  createFake,
  type FakeDevice,
  type FakeType,
} from "@iot-manager/core/fake-devices";

/** A running simulated fleet. */
export interface SimulatedFleet extends AsyncDisposable {
  /** The devices, in the order they connected. */
  readonly devices: readonly Device[];
  /** Their state machines, in the same order. */
  readonly fakes: readonly FakeDevice[];
  /** Closes every device. */
  close(): Promise<void>;
}

/**
 * Connects `count` simulated devices (two lights to each lock) to a manager.
 *
 * @example
 * ```ts ignore
 * await using fleet = await startFleet({ port: manager.port, count: 50 });
 * ```
 */
export async function startFleet(
  options: { hostname?: string; port: number; count: number },
): Promise<SimulatedFleet> {
  const devices: Device[] = [];
  const fakes: FakeDevice[] = [];
  const loops: Promise<void>[] = [];
  for (let i = 0; i < options.count; i++) {
    const type: FakeType = i % 3 === 2 ? "lock" : "light";
    const fake = createFake(type);
    const device = await Device.connect({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port,
      type,
      data: { ...fake.state(), name: `${type} ${i + 1}` },
    });
    devices.push(device);
    fakes.push(fake);
    loops.push((async () => {
      for await (const data of device) {
        for (const line of commandLines(new TextDecoder().decode(data))) {
          await device.send(answer(fake, line));
        }
      }
    })());
  }
  const close = async () => {
    await Promise.all(devices.map((device) => device.close()));
    await Promise.all(loops);
  };
  return { devices, fakes, close, [Symbol.asyncDispose]: close };
}
