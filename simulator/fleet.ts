/**
 * The simulated fleet: each {@linkcode SimDevice} is a real {@linkcode Device}
 * driving a fake light or lock (following its desired state and reporting its
 * state), and reports what it sees to the run's {@linkcode Recorder}; the
 * fleet's heartbeat totals and its telemetry.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  type Client,
  type ConnectionEnd,
  Device,
  type JsonObject,
  type ProtocolMode,
  type ReconnectOptions,
} from "@iot-manager/core";
import {
  answer,
  commandLines,
  createFake,
  type FakeLight,
  type FakeLock,
  type FakeType,
} from "./fake_devices.ts";
import { count, type Tally } from "./stats.ts";

const log = getLogger(["iot-manager", "simulator"]);
const decoder = new TextDecoder();

/** What part a device plays. Only `"normal"` devices that were never churned are held to every expectation. */
export type Role = "normal" | "silent" | "slow";

/** Where devices connect. */
export interface Target {
  readonly hostname: string;
  readonly port: number;
  readonly tls?: { readonly caCerts?: readonly string[] };
}

/**
 * Counters and samples shared by the whole fleet.
 *
 * @example
 * ```ts
 * import { Recorder } from "./fleet.ts";
 * const recorder = new Recorder();
 * recorder.error("device 1 could not connect");
 * console.log(recorder.errorCount); // 1
 * ```
 */
export class Recorder {
  /** True once the run is shutting down: disconnects from then on are expected. */
  shuttingDown = false;
  readonly handshakeMs: number[] = [];
  /** Device-side end reasons. */
  readonly deviceEnds: Tally = {};
  /** Disconnects nobody asked for, described. */
  readonly unexpected: string[] = [];
  unexpectedCount = 0;
  /** Command lines received by devices. */
  commandsReceived = 0;
  /** Lines sent by devices (answers and telemetry). */
  linesSent = 0;
  errorCount = 0;
  readonly errors: string[] = [];
  /** Device stats of connections that have ended, so totals survive churn. */
  retiredAnswered = 0;
  retiredIgnored = 0;
  retiredReceived = 0;
  /**
   * Takes the tag of a command a device received and returns true when it
   * handled it (steady traffic and the desired scenario's ttl messages, counted
   * as they arrive); other tags are kept in {@linkcode SimDevice.received},
   * which would grow without bound over a long run.
   */
  claimTag: (sim: SimDevice, tag: string, receivedAt: number) => boolean = () => false;

  /** Records an unexpected error. */
  error(message: string): void {
    this.errorCount++;
    if (this.errors.length < 10) this.errors.push(message);
    log.warn("Simulator error: {message}", { message });
  }

  /** Records a disconnect nobody asked for. */
  unexpectedDisconnect(description: string): void {
    this.unexpectedCount++;
    if (this.unexpected.length < 10) this.unexpected.push(description);
    log.warn("Unexpected disconnect: {description}", { description });
  }
}

/** How one simulated device behaves. */
export interface SimDeviceOptions {
  readonly type: FakeType;
  readonly mode: ProtocolMode;
  readonly role: Role;
  /** Milliseconds a slow reader spends per message. */
  readonly slowDelay: number;
  /** Reconnect after a drop (the device's `reconnect` option); off when undefined. */
  readonly reconnect?: boolean | ReconnectOptions;
}

/**
 * One simulated device: a {@linkcode Device} answering commands as a fake
 * light or lock. It applies every desired-state delta the manager sends and
 * reports the result, and reports its state whenever a command changed it, so
 * the manager's `state` knows what each device is (in mode 2; mode 1 has no
 * frames for it). Survives being closed and started again (churn) under the
 * same UUID and, with `reconnect`, its manager going away (the same `Device`
 * comes back by itself).
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * import { Recorder, SimDevice } from "./fleet.ts";
 * await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 0 });
 * const lock = new SimDevice({ type: "lock", mode: 2, role: "normal", slowDelay: 0 });
 * await lock.start({ hostname: "127.0.0.1", port: manager.port }, new Recorder());
 * console.log(await manager.get(lock.uuid)!.requestString("unlock")); // {"locked":false}
 * await lock.stop("done");
 * ```
 */
export class SimDevice {
  readonly uuid: string = crypto.randomUUID();
  readonly type: FakeType;
  readonly mode: ProtocolMode;
  readonly role: Role;
  readonly fake: FakeLight | FakeLock;
  /** Set when churn has disturbed this device: it no longer counts as undisturbed. */
  churned = false;
  /** True while churn is closing it on purpose. */
  churning = false;
  /**
   * When the simulator last dialled this device (`performance.now()`). A device
   * that reconnects by itself (`reconnect`) dials again with no event to mark it:
   * then `droppedAt` is later.
   */
  dialAt = 0;
  /** When its last connection dropped, as the device saw it (`performance.now()`); -1 before. */
  droppedAt = -1;
  /** Tag of each scenario command received, with the time it was processed (steady traffic is not kept). */
  readonly received = new Map<string, number>();
  /** The manager's side of the current connection, once the manager registered it. */
  client: Client | null = null;
  /** When the manager last registered this device (`performance.now()`); -1 before. */
  registeredAt = -1;
  /** Times churn has closed this device. */
  churnCycles = 0;
  /** Lines this device sent (answers and telemetry), over all its connections. */
  linesSent = 0;
  /** Lines of this device the manager received, over all its connections. */
  linesAtManager = 0;
  /** Lines this device wrote to a manager that closed before reading them (a restart). */
  linesLost = 0;
  /** The device-side end of the last connection, if it ended (null again once reconnected). */
  lastEnd: ConnectionEnd | null = null;
  device: Device | null = null;
  readonly #options: SimDeviceOptions;
  #consumer: Promise<void> = Promise.resolve();

  constructor(options: SimDeviceOptions) {
    this.#options = options;
    this.type = options.type;
    this.mode = options.mode;
    this.role = options.role;
    this.fake = createFake(options.type);
  }

  /** Held to every expectation: behaves, and was never churned. */
  get stable(): boolean {
    return this.role === "normal" && !this.churned;
  }

  /**
   * Live: well-behaved, not being churned, and connected at both ends through
   * the connection it has now (the manager registered it after it dialled).
   * A message the manager sends to a live device must reach it, unless churn
   * closes it first.
   */
  get live(): boolean {
    return this.role === "normal" && !this.churning && this.device?.connected === true &&
      this.client?.connected === true && this.registeredAt >= this.dialAt;
  }

  /**
   * Connects and starts answering commands, trying for `connect.waitForManager`
   * seconds while the manager cannot be reached, each attempt allowed
   * `connect.connectTimeout` seconds (default 30). Rejects when the connection fails.
   */
  async start(
    target: Target,
    recorder: Recorder,
    connect: { readonly waitForManager?: number; readonly connectTimeout?: number } = {},
  ): Promise<Device> {
    this.dialAt = performance.now();
    const device = await Device.connect({
      hostname: target.hostname,
      port: target.port,
      tls: target.tls ? { caCerts: target.tls.caCerts } : undefined,
      uuid: this.uuid,
      type: this.type,
      data: this.fake.state(),
      mode: this.mode,
      answerHeartbeats: this.role !== "silent",
      highWaterMark: this.role === "slow" ? 1 : undefined,
      connectTimeout: connect.connectTimeout ?? 30,
      waitForManager: connect.waitForManager ?? 0,
      reconnect: this.#options.reconnect,
    });
    this.device = device;
    this.lastEnd = null;
    device.on("disconnect", (end, willReconnect) => {
      this.#onDisconnect(device, end, willReconnect, recorder);
    });
    device.on("reconnect", () => void (this.lastEnd = null));
    device.on("delta", (delta) => this.#report(device, this.fake.applyDelta(delta), recorder));
    this.#consumer = this.#consume(device, recorder);
    return device;
  }

  /** Closes the device (for good, unless started again) and waits for its consumer. */
  async stop(reason: string): Promise<void> {
    await this.device?.close(reason);
    await this.#consumer;
  }

  /** Sends one line of telemetry (the fake's state), when connected. */
  async telemetry(recorder: Recorder): Promise<void> {
    const device = this.device;
    if (!device?.connected) return;
    const line = JSON.stringify({ telemetry: true, ...this.fake.state() });
    if (await device.send(line + "\n")) this.#countSent(recorder);
  }

  #onDisconnect(
    device: Device,
    end: ConnectionEnd,
    willReconnect: boolean,
    recorder: Recorder,
  ): void {
    this.lastEnd = end;
    this.droppedAt = performance.now();
    count(recorder.deviceEnds, end.reason);
    // A device that reconnects keeps its counters (and stays this SimDevice's device).
    if (willReconnect) return;
    const stats = device.stats;
    recorder.retiredAnswered += stats.heartbeatsAnswered;
    recorder.retiredIgnored += stats.heartbeatsIgnored;
    recorder.retiredReceived += stats.messagesReceived;
    if (this.device === device) this.device = null;
  }

  /** Reports the fake's state (sent in mode 2; in mode 1 it only becomes the device's data). */
  #report(device: Device, state: JsonObject, recorder: Recorder): void {
    device.report(state).catch((error) =>
      recorder.error(`device ${this.uuid} could not report its state: ${String(error)}`)
    );
  }

  #countSent(recorder: Recorder): void {
    recorder.linesSent++;
    this.linesSent++;
  }

  async #consume(device: Device, recorder: Recorder): Promise<void> {
    try {
      for await (const data of device) {
        const receivedAt = performance.now();
        for (const line of commandLines(decoder.decode(data))) {
          if (this.role === "slow") {
            await new Promise((resolve) => setTimeout(resolve, this.#options.slowDelay));
          }
          const before = JSON.stringify(this.fake.state());
          const reply = answer(this.fake, line);
          const after = this.fake.state();
          if (JSON.stringify(after) !== before) this.#report(device, after, recorder);
          recorder.commandsReceived++;
          const tag = /#(\S+)$/.exec(line)?.[1];
          if (
            tag !== undefined && !recorder.claimTag(this, tag, receivedAt) &&
            !this.received.has(tag)
          ) {
            this.received.set(tag, receivedAt);
          }
          if (await device.send(reply + "\n")) this.#countSent(recorder);
          else if (!recorder.shuttingDown && this.stable && device.connected) {
            recorder.error(`device ${this.uuid} could not send its answer`);
          }
        }
      }
    } catch (error) {
      recorder.error(`device ${this.uuid} failed: ${String(error)}`);
    }
  }
}

/**
 * Devices whose `Device` is connected now (the devices' view, not the manager's).
 *
 * @example
 * ```ts
 * import { countConnected } from "./fleet.ts";
 * console.log(countConnected([])); // 0
 * ```
 */
export function countConnected(sims: readonly SimDevice[]): number {
  let connected = 0;
  for (const sim of sims) if (sim.device?.connected) connected++;
  return connected;
}

/**
 * Heartbeats the fleet answered and deliberately ignored, and messages it
 * received, over every connection so far (ended ones through the recorder).
 *
 * @example
 * ```ts
 * import { heartbeatTotals, Recorder } from "./fleet.ts";
 * console.log(heartbeatTotals([], new Recorder())); // { answered: 0, ignored: 0, received: 0 }
 * ```
 */
export function heartbeatTotals(
  sims: readonly SimDevice[],
  recorder: Recorder,
): { answered: number; ignored: number; received: number } {
  let answered = recorder.retiredAnswered;
  let ignored = recorder.retiredIgnored;
  let received = recorder.retiredReceived;
  for (const sim of sims) {
    const stats = sim.device?.stats;
    if (!stats) continue;
    answered += stats.heartbeatsAnswered;
    ignored += stats.heartbeatsIgnored;
    received += stats.messagesReceived;
  }
  return { answered, ignored, received };
}

/**
 * Starts telemetry: each device sends its state every `everySeconds`, from one
 * timer for the whole fleet (each 100 ms tick reports for one slice of it).
 *
 * @returns A function that stops it. With `everySeconds` 0 nothing starts.
 *
 * @example
 * ```ts
 * import { Recorder, startTelemetry } from "./fleet.ts";
 * const stop = startTelemetry([], new Recorder(), 1);
 * stop();
 * ```
 */
export function startTelemetry(
  sims: readonly SimDevice[],
  recorder: Recorder,
  everySeconds: number,
): () => void {
  if (everySeconds <= 0) return () => {};
  const slices = Math.max(1, Math.round((everySeconds * 1000) / 100));
  let tick = 0;
  const timer = setInterval(() => {
    const slice = tick++ % slices;
    for (let i = slice; i < sims.length; i += slices) {
      sims[i].telemetry(recorder).catch((error) =>
        recorder.error(`telemetry failed: ${String(error)}`)
      );
    }
  }, 100);
  return () => clearInterval(timer);
}
