/**
 * Connecting the fleet: every simulated device and every malformed handshake
 * in a seeded order, at a bounded rate with a bounded number in flight, as a
 * fleet coming online would. Churn starts its devices again through the same
 * dialer. Malformed handshakes use a raw socket, since a `Device` only speaks
 * the protocol correctly.
 *
 * @module
 */

import { ConnectionEnd, InvalidInfo, IotManagerError, TimeoutError } from "@iot-manager/core";
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

/** Why the first device could not join an external manager (`FirstConnectFailed.reason`). */
export type FirstConnectFailure = "unreachable" | "refused" | "not-a-manager" | "no-handshake";

/**
 * Against an external manager the first device dials alone; when it cannot
 * join, the run stops there rather than dial the whole fleet into the same
 * failure. The message is one line that says what was found at the address.
 *
 * @example
 * ```ts
 * import { ConnectionEnd } from "@iot-manager/core";
 * import { FirstConnectFailed } from "./dialer.ts";
 * const cause = new ConnectionEnd("io", "cannot connect: Connection refused");
 * const error = FirstConnectFailed.of(cause, "127.0.0.1:1", 5.01);
 * console.log(error.reason, error.message);
 * // unreachable no manager reachable at 127.0.0.1:1 (tried for 5.0 s): cannot connect: ...
 * ```
 */
export class FirstConnectFailed extends Error {
  /** What was found at the address. */
  readonly reason: FirstConnectFailure;
  /** `host:port` that was dialed. */
  readonly address: string;

  /**
   * @param reason What was found at the address.
   * @param address `host:port` that was dialed.
   * @param message The whole message.
   * @param cause The last attempt's error.
   */
  constructor(reason: FirstConnectFailure, address: string, message: string, cause: unknown) {
    super(message, { cause });
    this.name = "FirstConnectFailed";
    this.reason = reason;
    this.address = address;
  }

  /**
   * The failure a `Device.connect` error means.
   *
   * @param error What `Device.connect` threw.
   * @param address `host:port` that was dialed.
   * @param seconds How long the device tried.
   */
  static of(error: unknown, address: string, seconds: number): FirstConnectFailed {
    const detail = (error as Error)?.message ?? String(error);
    const tried = `(tried for ${seconds.toFixed(1)} s)`;
    if (error instanceof InvalidInfo) {
      return new FirstConnectFailed(
        "refused",
        address,
        `the manager at ${address} refused the first device (${error.reason}): ${detail}`,
        error,
      );
    }
    if (error instanceof ConnectionEnd && error.reason === "protocol") {
      return new FirstConnectFailed(
        "not-a-manager",
        address,
        `something at ${address} answers, but not in the iot-manager protocol: ${detail}`,
        error,
      );
    }
    if (error instanceof TimeoutError) {
      return new FirstConnectFailed(
        "no-handshake",
        address,
        `something at ${address} accepts connections but completed no handshake ${tried}: ${detail}`,
        error,
      );
    }
    return new FirstConnectFailed(
      "unreachable",
      address,
      `no manager reachable at ${address} ${tried}: ${detail}; start the manager first, ` +
        "or give it longer with --connect-wait",
      error,
    );
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

  /**
   * Connects one device. The `first` against an external manager is not
   * timed (it may have waited for the manager), and each of its attempts is
   * allowed no longer than the whole wait: a silent listener is not waited on
   * for 30 s.
   */
  async #connect(sim: SimDevice, first = false): Promise<void> {
    const { recorder, ledger, embedded, options } = this.#context;
    const device = await sim.start(this.#context.target, recorder, {
      waitForManager: options.connectWait,
      connectTimeout: first ? Math.max(1, options.connectWait) : undefined,
    });
    // Embedded, the manager's view of each drop is the one that counts.
    if (!embedded) {
      device.on("disconnect", (end) => ledger.deviceDropped(sim, end));
      ledger.deviceConnected(sim, !first);
    }
  }

  /**
   * Connects `sims` and sends `malformed` bad handshakes, shuffled together, at
   * the run's rate. Against an external manager the first device goes alone.
   *
   * @throws {FirstConnectFailed} When that first device cannot join: nothing
   *   reachable within `connectWait` seconds, a refusal, or a peer that is not
   *   a manager (the rest are not dialed).
   */
  async connectFleet(sims: readonly SimDevice[], malformed: number): Promise<void> {
    const { target, options, recorder, ledger, embedded } = this.#context;
    let rest = sims;
    if (!embedded && sims.length > 0) {
      const startedAt = performance.now();
      try {
        await this.#connect(sims[0], true);
      } catch (error) {
        if (!(error instanceof IotManagerError)) throw error;
        const seconds = (performance.now() - startedAt) / 1000;
        throw FirstConnectFailed.of(error, `${target.hostname}:${target.port}`, seconds);
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
