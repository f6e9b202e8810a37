/**
 * Connecting the fleet: every simulated device and every malformed handshake
 * in a seeded order, at a bounded rate with a bounded number in flight, as a
 * fleet coming online would. Churn starts its devices again through the same
 * dialer. Malformed handshakes use a raw socket, since a `Device` only speaks
 * the protocol correctly.
 *
 * @module
 */

import { ConnectionEnd, TimeoutError } from "@iot-manager/core";
import { encodeFrame, FrameType } from "@iot-manager/core/protocol";
import type { Recorder, SimDevice, Target } from "./fleet.ts";
import type { Ledger } from "./ledger.ts";
import type { SimulationOptions } from "./options.ts";
import { shuffled } from "./stats.ts";
import { sleep } from "./wait.ts";

const encoder = new TextEncoder();

/** What the dialer needs from the run. */
export interface DialerContext {
  /** Where the devices connect. */
  readonly target: Target;
  /** True with an embedded manager, whose events say when a device is registered. */
  readonly embedded: boolean;
  readonly options: Pick<SimulationOptions, "rate" | "concurrency" | "connectWait" | "signal">;
  readonly recorder: Recorder;
  readonly ledger: Ledger;
  readonly random: () => number;
}

/**
 * Nothing at the target accepted the first device within `connectWait`
 * seconds: the run stops there rather than dial the whole fleet into nothing.
 *
 * @example
 * ```ts
 * import { ManagerUnreachable } from "./dialer.ts";
 * const error = new ManagerUnreachable("127.0.0.1:1", 5, new Error("Connection refused"));
 * console.log(error.message);
 * // no manager reachable at 127.0.0.1:1 within 5 s: Connection refused
 * ```
 */
export class ManagerUnreachable extends Error {
  /** `host:port` that was dialed. */
  readonly address: string;

  /**
   * @param address `host:port` that was dialed.
   * @param seconds How long the device kept trying.
   * @param cause The last attempt's error.
   */
  constructor(address: string, seconds: number, cause: unknown) {
    super(
      `no manager reachable at ${address} within ${seconds} s: ${
        (cause as Error)?.message ?? String(cause)
      }`,
      { cause },
    );
    this.name = "ManagerUnreachable";
    this.address = address;
  }
}

/**
 * Starts devices and sends malformed handshakes for one run.
 *
 * @example
 * ```ts ignore
 * const dialer = new Dialer({ target, embedded: true, options, recorder, ledger, random });
 * await dialer.connectFleet(sims, malformed);
 * ```
 */
export class Dialer {
  readonly #context: DialerContext;

  constructor(context: DialerContext) {
    this.#context = context;
  }

  /** Connects one device; a failure is recorded as an error, not thrown. */
  async start(sim: SimDevice): Promise<void> {
    try {
      await this.#connect(sim);
    } catch (error) {
      this.#context.recorder.error(
        `${sim.type} ${sim.uuid} could not connect: ${(error as Error).message}`,
      );
    }
  }

  async #connect(sim: SimDevice): Promise<void> {
    const { recorder, ledger, embedded, options } = this.#context;
    const device = await sim.start(this.#context.target, recorder, options.connectWait);
    // Embedded, the manager's view of each drop is the one that counts.
    if (!embedded) {
      device.on("disconnect", (end) => ledger.deviceDropped(sim, end));
      ledger.deviceConnected(sim);
    }
  }

  /**
   * Connects `sims` and sends `malformed` bad handshakes, shuffled together, at
   * the run's rate. Against an external manager the first device goes alone.
   *
   * @throws {ManagerUnreachable} When that first device cannot reach the
   *   manager within `connectWait` seconds (the rest are not dialed).
   */
  async connectFleet(sims: readonly SimDevice[], malformed: number): Promise<void> {
    const { target, options, recorder, ledger, embedded } = this.#context;
    let rest = sims;
    if (!embedded && sims.length > 0) {
      try {
        await this.#connect(sims[0]);
      } catch (error) {
        if (error instanceof ConnectionEnd || error instanceof TimeoutError) {
          throw new ManagerUnreachable(
            `${target.hostname}:${target.port}`,
            options.connectWait,
            error,
          );
        }
        recorder.error(
          `${sims[0].type} ${sims[0].uuid} could not connect: ${(error as Error).message}`,
        );
      }
      rest = sims.slice(1);
    }
    const jobs: (() => Promise<void>)[] = rest.map((sim) => () => this.start(sim));
    for (let i = 0; i < malformed; i++) {
      jobs.push(async () => {
        try {
          if (await sendMalformedHandshake(target, i)) ledger.malformedRejected++;
          else recorder.error(`malformed handshake ${i} was not rejected`);
        } catch (error) {
          recorder.error(`malformed handshake ${i} failed: ${(error as Error).message}`);
        }
      });
    }
    const gapMs = 1000 / options.rate;
    let due = performance.now();
    const inFlight = new Set<Promise<void>>();
    for (const job of shuffled(jobs, this.#context.random)) {
      if (options.signal?.aborted) break;
      while (inFlight.size >= options.concurrency) await Promise.race(inFlight);
      const wait = due - performance.now();
      if (wait >= 4) await sleep(wait);
      due = Math.max(due + gapMs, performance.now() - 50);
      const task: Promise<void> = job().finally(() => inFlight.delete(task));
      inFlight.add(task);
    }
    await Promise.all(inFlight);
  }
}

/** The malformed handshake answers a chaos connection may send, in turn. */
const malformedAnswers: readonly ((uuid: string) => Uint8Array)[] = [
  () => encoder.encode("hello##light##{}"),
  (uuid) => encoder.encode(`${uuid}##fridge##{}`),
  (uuid) => encoder.encode(`${uuid}##light##[1,2]`),
  (uuid) => encoder.encode(`${uuid}##light##{}##extra`),
  (uuid) => {
    // Mode-2 preamble with protocol version 3.
    const frame = encodeFrame(FrameType.INFO, `${uuid}##light##{}`);
    return Uint8Array.from([0x00, 0x49, 0x4d, 0x03, ...frame]);
  },
  (uuid) => {
    // Mode-2 preamble followed by a DATA frame instead of INFO.
    const frame = encodeFrame(FrameType.DATA, `${uuid}##light##{}`);
    return Uint8Array.from([0x00, 0x49, 0x4d, 0x02, ...frame]);
  },
];

/**
 * Connects, waits for `getinfo`, sends malformed answer number `variant` and
 * waits for the manager to close the connection.
 *
 * @returns True when the manager rejected it (closed the connection) within `timeoutMs`.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * import { sendMalformedHandshake } from "./dialer.ts";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * console.log(await sendMalformedHandshake({ hostname: "127.0.0.1", port: manager.port }, 0)); // true
 * ```
 */
export async function sendMalformedHandshake(
  target: Target,
  variant: number,
  timeoutMs = 10_000,
): Promise<boolean> {
  const conn = target.tls
    ? await Deno.connectTls({
      hostname: target.hostname,
      port: target.port,
      caCerts: target.tls.caCerts ? [...target.tls.caCerts] : undefined,
    })
    : await Deno.connect({ hostname: target.hostname, port: target.port });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    const buffer = new Uint8Array(1024);
    const first = await conn.read(buffer);
    if (first === null || buffer[0] !== 0x01) return false;
    const bytes = malformedAnswers[variant % malformedAnswers.length](crypto.randomUUID());
    for (let offset = 0; offset < bytes.length;) {
      offset += await conn.write(bytes.subarray(offset));
    }
    while ((await conn.read(buffer)) !== null) { /* wait for the manager to close */ }
    return true;
  } catch (error) {
    // A reset is also a rejection; a timeout is not.
    return !timedOut && error instanceof Deno.errors.ConnectionReset;
  } finally {
    clearTimeout(timer);
    if (!timedOut) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }
}
