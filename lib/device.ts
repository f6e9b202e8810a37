/**
 * The device side of the protocol: one device connected to a manager, in
 * either protocol mode, over TCP or TLS.
 *
 * A {@linkcode Device} answers the handshake (`getinfo`), heartbeats and later
 * `getinfo` requests itself; the application sees only the manager's messages,
 * as an async iterator, and sends its own with `send`. Optionally it reconnects
 * after a drop, with exponential backoff and jitter.
 *
 * How a connection ends, from the device's point of view (the same
 * {@linkcode ConnectionEnd} reasons the manager uses, seen from the other side):
 *
 * - `"ended"`: the manager said goodbye (`end\n` in mode 1, `END` in mode 2) and closed; the
 *   message carries the manager's reason code and message (`"the manager ended: kicked: ..."`).
 * - `"heartbeat"`, `"replaced"`, `"manager-closed"` (mode 2): the manager's `END` gave this reason:
 *   it missed our heartbeat answer, another connection took our UUID, it shut down.
 * - `"keepalive"`: the manager sent nothing for longer than it promised (its `WELCOME`'s
 *   `heartbeatRate + heartbeatTimeout`, or the `keepalive` option): it is stopped, hung or
 *   unreachable without the socket having closed.
 * - `"refused"`: the manager refused the handshake while reconnecting, for a reason that another
 *   attempt would not change (`cause` is the {@linkcode InvalidInfo}); the device stops. Refusals
 *   for `"timeout"`, `"auth"` or `"conflict"` are retried with the backoff.
 * - `"closed"`: the manager closed the socket without a goodbye (in mode 1, also how a rejected
 *   handshake shows).
 * - `"kicked"`: this application called `close()` or aborted the `signal`.
 * - `"protocol"`: the manager sent bytes the device cannot accept.
 * - `"io"`: reading or writing failed; also "gave up reconnecting".
 * - `"buffer-full"`: the manager stopped reading and the send buffer filled up.
 *
 * @module
 */

import { connectTransport, type Transport } from "./transport.ts";
import { stallClock } from "./stall_clock.ts";
import { getLogger, type Logger } from "@logtape/logtape";
import { validate as isUuid } from "uuid";
import { computeProof } from "./auth.ts";
import {
  ConnectionEnd,
  type EndReason,
  InvalidInfo,
  isInvalidInfoReason,
  ProtocolError,
  TimeoutError,
} from "./errors.ts";
import { closeGracefully, FAREWELL_GRACE_MS } from "./graceful.ts";
import { Outbox } from "./outbox.ts";
import { readLoop, type ReadLoopOwner } from "./read_loop.ts";
import {
  type DeviceInfo,
  encodeFrame,
  encodeHandshake,
  encodeMessage,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  FrameType,
  type FrameTypeValue,
  GETINFO_BYTE,
  HEARTBEAT_BYTE,
  parseEnd,
  type ProtocolMode,
  splitManagerChunk,
} from "./protocol/mod.ts";
import { AsyncQueue } from "./queue.ts";

/**
 * How a device retries after its connection drops: exponential backoff with
 * decorrelated jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter", 2015). Each wait is uniform between `initialDelay` and three times
 * the previous wait (the first: three times `initialDelay`), capped at
 * `maxDelay`; `jitter` scales the random part, and at 0 each wait is simply
 * three times the last. Spread this way, a fleet that loses its manager does
 * not come back in one wave: for 2,000 devices and a manager back after 3 s,
 * the backoff alone puts about 3.3 % of the fleet (4.1 % in the worst of 200
 * draws) in the busiest 100 ms and all of it back within about 12 s;
 * `bench/herd.ts` measures it on real sockets with the manager in a process of
 * its own (`bench/RESULTS-herd.md`: 3.2-3.7 %, all back within 12 s).
 *
 * After the manager says another connection took over the device's UUID
 * (`replaced`), the next attempt waits `maxDelay` (half of it random), and
 * after `maxReplaced` such takeovers in a row the device stops with reason
 * `"replaced"`: two live devices with one UUID settle instead of displacing
 * each other for ever.
 *
 * @example
 * ```ts
 * import type { ReconnectOptions } from "@iot-manager/core";
 * const reconnect: ReconnectOptions = { initialDelay: 1, maxDelay: 10, jitter: 1 };
 * ```
 */
export interface ReconnectOptions {
  /** Shortest wait before an attempt, in seconds. @default 1 */
  readonly initialDelay?: number;
  /** Longest wait before an attempt, in seconds. @default 10 */
  readonly maxDelay?: number;
  /** How much of each wait is random, 0 (none: each wait three times the last) to 1. @default 1 */
  readonly jitter?: number;
  /** Attempts after one drop before giving up (the device then ends for good). @default Infinity */
  readonly maxAttempts?: number;
  /**
   * Takeovers of this device's UUID by another connection, in a row, after
   * which it stops reconnecting (reason `"replaced"`). A connection that lasts
   * a minute resets the count. @default 3
   */
  readonly maxReplaced?: number;
}

/**
 * TLS settings for a device.
 *
 * @example
 * ```ts
 * import type { DeviceTlsOptions } from "@iot-manager/core";
 * const tls: DeviceTlsOptions = { caCerts: ["-----BEGIN CERTIFICATE-----\n..."] };
 * ```
 */
export interface DeviceTlsOptions {
  /**
   * Root certificates (PEM) to trust instead of the default roots, e.g. your fleet's private CA.
   * @default the default (Mozilla) roots
   */
  readonly caCerts?: readonly string[];
}

/**
 * How to connect a {@linkcode Device}.
 *
 * @example
 * ```ts
 * import type { DeviceOptions } from "@iot-manager/core";
 * const options: DeviceOptions = { port: 8595, type: "light", data: { on: false }, mode: 2 };
 * ```
 */
export interface DeviceOptions {
  /** The manager's host. @default "127.0.0.1" */
  readonly hostname?: string;
  /** The manager's port. @default 8595 */
  readonly port?: number;
  /** Connect with TLS: `true` trusts the default roots, an object may name the CAs to trust. @default false */
  readonly tls?: boolean | DeviceTlsOptions;
  /** The device's UUID (36-character form). @default crypto.randomUUID() */
  readonly uuid?: string;
  /** The device's type; must be one of the manager's `validTypes`. */
  readonly type: string;
  /** The JSON object sent in the handshake and in answers to `getinfo`. @default {} */
  readonly data?: Record<string, unknown>;
  /**
   * The device's secret, to answer a manager's authentication `CHALLENGE` (mode 2) with an
   * HMAC proof. Without it a challenged device sends an empty proof, which `hmacAuthenticator`
   * refuses.
   */
  readonly secret?: string | Uint8Array;
  /** Protocol mode: 1 (the seed's, no message boundaries) or 2 (framed). @default 2 */
  readonly mode?: ProtocolMode;
  /** Reconnect after a drop; `true` uses the defaults of {@linkcode ReconnectOptions}. @default false */
  readonly reconnect?: boolean | ReconnectOptions;
  /** Seconds allowed for each connection attempt, handshake included. @default 15 */
  readonly connectTimeout?: number;
  /**
   * Seconds without a byte from the manager after which it counts as gone: the
   * connection ends with reason `"keepalive"` and the device reconnects if it
   * may. MQTT clients do the same with their keepalive. Measured in this
   * process's running time (a stall of the device's own process does not
   * count). @default in mode 2, the manager's promise from `WELCOME`,
   * `heartbeatRate + heartbeatTimeout`, plus 10 % and at least 1 s of slack;
   * in mode 1 (no `WELCOME`), off
   */
  readonly keepalive?: number;
  /** Answer heartbeats; `false` makes a device the manager will drop (for tests and chaos). @default true */
  readonly answerHeartbeats?: boolean;
  /**
   * Messages held unread before the device stops reading its socket. While it
   * is paused it answers no heartbeats either, so a consumer that stalls for
   * longer than the manager's heartbeat timeout gets the device disconnected.
   * @default 1024
   */
  readonly highWaterMark?: number;
  /** Largest mode-2 frame accepted from the manager, in bytes. @default 1048576 */
  readonly maxFrameSize?: number;
  /** Bytes queued for sending before the manager counts as not reading and the connection ends. @default 1048576 */
  readonly maxBufferedBytes?: number;
  /** Closes the device when aborted (reason `"kicked"`). */
  readonly signal?: AbortSignal;
  /** LogTape category root; the device logs under `[...logCategory, "device"]`. @default ["iot-manager"] */
  readonly logCategory?: string | readonly string[];
}

/**
 * What a mode-2 manager announced in its `WELCOME` frame.
 *
 * @example
 * ```ts
 * import { Device, Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0, heartbeatRate: 30 });
 * await using light = await Device.connect({ port: manager.port, type: "light" });
 * console.log(light.settings?.heartbeatRate); // 30
 * ```
 */
export interface ManagerSettings {
  /** Seconds between the manager's heartbeat rounds. */
  readonly heartbeatRate?: number;
  /** Seconds the manager waits for a beat. */
  readonly heartbeatTimeout?: number;
  /** Largest frame payload the manager accepts, in bytes. */
  readonly maxFrameSize?: number;
}

/**
 * Counters a device keeps over its whole life, reconnections included.
 *
 * @example
 * ```ts
 * import { Device, Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * await using light = await Device.connect({ port: manager.port, type: "light" });
 * const { heartbeatsAnswered, messagesReceived } = light.stats;
 * ```
 */
export interface DeviceStats {
  /** Messages received from the manager (reads, in mode 1). */
  readonly messagesReceived: number;
  /** Messages received after the consumer stopped iterating, and so dropped. */
  readonly messagesDropped: number;
  /** Messages queued for sending. */
  readonly messagesSent: number;
  /** Heartbeats answered. */
  readonly heartbeatsAnswered: number;
  /** Heartbeats left unanswered because `answerHeartbeats` was false. */
  readonly heartbeatsIgnored: number;
  /** Successful reconnections. */
  readonly reconnects: number;
}

/**
 * Event handlers of a {@linkcode Device}, registered with `device.on(event, handler)`.
 *
 * @example
 * ```ts
 * import type { DeviceEvents } from "@iot-manager/core";
 * const onDisconnect: DeviceEvents["disconnect"] = (end, willReconnect) =>
 *   console.log(`dropped (${end.reason})${willReconnect ? ", reconnecting" : ""}`);
 * ```
 */
export interface DeviceEvents {
  /** The connection ended; `willReconnect` says whether the device tries again. */
  disconnect: (end: ConnectionEnd, willReconnect: boolean) => void;
  /** The device reconnected and completed its handshake again. */
  reconnect: (device: Device) => void;
}

const DEFAULT_CONNECT_TIMEOUT = 15;
const READ_BUFFER_SIZE = 16 * 1024;
const MODE1_BEAT = new TextEncoder().encode("beat");
const MODE2_BEAT = encodeFrame(FrameType.BEAT);
const decoder = new TextDecoder();
/**
 * The keepalive limit for a manager's promise of `seconds`: 10 % more, and at
 * least 1 s more, so that a short pause of the manager (which it forgives
 * itself) does not drop a whole fleet at once. The Python device uses the same.
 */
function withSlack(seconds: number): number {
  return seconds + Math.max(1, seconds * 0.1);
}

/** A connection that lasts this long resets the count of takeovers in a row (ms). */
const STABLE_CONNECTION_MS = 60_000;
const random = Math.random;
/** Refusals that may pass on another attempt (the rest would repeat: the device stops). */
const TRANSIENT_REFUSALS: ReadonlySet<string> = new Set(["timeout", "auth", "conflict"]);
/** Manager-side end reasons a device keeps as its own (the rest show as `"ended"`). */
const KEPT_END_REASONS: ReadonlySet<string> = new Set(["heartbeat", "replaced", "manager-closed"]);

/**
 * One device connected to a manager. Iterate it for the manager's messages;
 * the iteration ends when the device ends for good (after a drop with no
 * reconnect, when reconnecting gives up, or on `close()`). `closed` then
 * resolves with the reason.
 *
 * In mode 1 the wire has no message boundaries: each socket read is one
 * message, so two messages sent close together may arrive as one and a long
 * one may arrive in parts. The bytes `0x01` and `0x02` anywhere in a read are
 * taken as `getinfo` and heartbeat (the manager may coalesce them with a
 * message), and a read ending in `end\n` followed by the manager closing is its
 * goodbye. Use mode 2 for binary payloads and exact boundaries.
 *
 * The iterator has a single consumer and holds at most `highWaterMark` unread
 * messages; when full, the device stops reading its socket (TCP pushes back on
 * the manager) until the consumer catches up. A `break` stops delivery: later
 * messages are dropped (counted in `stats.messagesDropped`) while the device
 * stays connected and keeps answering heartbeats.
 *
 * @example
 * ```ts
 * import { Device, Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * await using light = await Device.connect({ port: manager.port, type: "light", data: { on: false } });
 * await manager.sendAll("on");
 * for await (const message of light) {
 *   console.log(new TextDecoder().decode(message)); // "on"
 *   light.data = { on: true };
 *   await light.send('{"on":true}');
 *   break;
 * }
 * ```
 */
export class Device implements AsyncIterable<Uint8Array>, AsyncDisposable {
  /** The device's UUID. */
  readonly uuid: string;
  /** The device's type. */
  readonly type: string;
  /** The protocol mode it speaks. */
  readonly mode: ProtocolMode;
  /** Answer heartbeats; set to `false` to have the manager drop this device. */
  answerHeartbeats: boolean;

  readonly #options: DeviceOptions;
  readonly #reconnect: Required<ReconnectOptions> | null;
  readonly #log: Logger;
  readonly #queue: AsyncQueue<Uint8Array>;
  readonly #hooks: LinkHooks;
  readonly #closed = Promise.withResolvers<ConnectionEnd>();
  readonly #handlers = {
    disconnect: new Set<DeviceEvents["disconnect"]>(),
    reconnect: new Set<DeviceEvents["reconnect"]>(),
  };
  readonly #stats = {
    messagesReceived: 0,
    messagesDropped: 0,
    messagesSent: 0,
    heartbeatsAnswered: 0,
    heartbeatsIgnored: 0,
    reconnects: 0,
  };
  #data: Record<string, unknown>;
  #link: Link | null = null;
  #settings: ManagerSettings | null = null;
  #end: ConnectionEnd | null = null;
  #closing: Promise<void> | null = null;
  #reconnecting: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #attempt: AbortController | null = null;
  #onAbort: (() => void) | null = null;
  #linkOpenedAt = 0;
  #replacedInARow = 0;

  private constructor(options: DeviceOptions) {
    validateOptions(options);
    this.#options = options;
    this.uuid = (options.uuid ?? crypto.randomUUID()).toLowerCase();
    this.type = options.type;
    this.mode = options.mode ?? 2;
    this.#data = options.data ?? {};
    this.answerHeartbeats = options.answerHeartbeats ?? true;
    this.#reconnect = reconnectSettings(options.reconnect);
    const category = options.logCategory ?? ["iot-manager"];
    this.#log = getLogger([...(typeof category === "string" ? [category] : category), "device"]);
    this.#queue = new AsyncQueue<Uint8Array>({ highWaterMark: options.highWaterMark });
    this.#hooks = {
      info: () => this.info,
      answerHeartbeats: () => this.answerHeartbeats,
      onHeartbeat: (answered) => {
        if (answered) this.#stats.heartbeatsAnswered++;
        else this.#stats.heartbeatsIgnored++;
      },
      onWelcome: (settings) => this.#settings = settings,
      onMessage: (data) => {
        this.#stats.messagesReceived++;
        if (this.#queue.stopped) {
          this.#stats.messagesDropped++;
          return undefined;
        }
        return this.#queue.push(data) ? undefined : this.#queue.writable();
      },
      proof: (challenge) =>
        options.secret === undefined
          ? Promise.resolve(new Uint8Array(0))
          : computeProof(options.secret, challenge, this.uuid),
      log: this.#log,
      uuid: this.uuid,
    };
  }

  /**
   * Connects to a manager and completes the handshake: in mode 2 once the
   * manager's `WELCOME` arrives, in mode 1 (which has no acknowledgement) once
   * the answer is written; a mode-1 answer the manager rejects shows as the
   * connection closing (reason `"closed"`). Reconnecting, when enabled, applies
   * to later drops; this first attempt fails fast.
   *
   * @throws {TypeError} On invalid options.
   * @throws {InvalidInfo} When a mode-2 manager refuses the handshake: `reason` is the manager's
   *   (`"type"`, `"uuid"`, `"auth"`, ...), sent in its `END` frame.
   * @throws {ConnectionEnd} When the connection fails or the manager closes it during the handshake.
   * @throws {TimeoutError} When the handshake does not complete within `connectTimeout`.
   *
   * @example
   * ```ts
   * import { Device, Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
   * await using lock = await Device.connect({
   *   port: manager.port,
   *   type: "lock",
   *   data: { locked: true },
   *   reconnect: { initialDelay: 1, maxDelay: 60 },
   * });
   * console.log(lock.connected); // true
   * ```
   */
  static async connect(options: DeviceOptions): Promise<Device> {
    const device = new Device(options);
    device.#link = await device.#open();
    device.#linkOpenedAt = performance.now();
    device.#watch(device.#link);
    if (options.signal) {
      const signal = options.signal;
      device.#onAbort = () => void device.close(`aborted: ${String(signal.reason)}`);
      signal.addEventListener("abort", device.#onAbort, { once: true });
    }
    return device;
  }

  /** `{ uuid, type, data }` as the device answers `getinfo`. */
  get info(): DeviceInfo {
    return { uuid: this.uuid, type: this.type, data: this.#data };
  }

  /** The JSON object sent in answers to `getinfo` (and in the handshake of a reconnection). */
  get data(): Record<string, unknown> {
    return this.#data;
  }

  /** Replaces the data; the manager sees it at its next `client.getData()` or a reconnection. */
  set data(data: Record<string, unknown>) {
    validateData(data);
    this.#data = data;
  }

  /** True while a connection is open (false while reconnecting and once ended). */
  get connected(): boolean {
    return this.#link?.open ?? false;
  }

  /** Resolves with the reason once the device has ended for good. Never rejects. */
  get closed(): Promise<ConnectionEnd> {
    return this.#closed.promise;
  }

  /** What the manager announced in `WELCOME` (mode 2); `null` in mode 1. */
  get settings(): ManagerSettings | null {
    return this.#settings;
  }

  /** Successful reconnections so far. */
  get reconnects(): number {
    return this.#stats.reconnects;
  }

  /** A snapshot of the device's counters. */
  get stats(): DeviceStats {
    return { ...this.#stats };
  }

  /**
   * Sends one message to the manager. Resolves once written to the socket.
   *
   * @returns `true` if written, `false` if there is no open connection (ended, or reconnecting).
   * @throws {RangeError} In mode 2, when the message is over the manager's `maxFrameSize`.
   */
  async send(data: string | Uint8Array): Promise<boolean> {
    const link = this.#link;
    if (!link?.open) return false;
    const bytes = encodeMessage(data, this.mode);
    const limit = this.#settings?.maxFrameSize;
    if (this.mode === 2 && limit !== undefined && bytes.length - FRAME_HEADER_SIZE > limit) {
      throw new RangeError(
        `message of ${
          bytes.length - FRAME_HEADER_SIZE
        } bytes is over the manager's ${limit}-byte frame limit`,
      );
    }
    if (!link.enqueue(bytes)) return false;
    this.#stats.messagesSent++;
    return await link.flushed();
  }

  /**
   * Registers an event handler.
   *
   * @returns A function that removes it.
   *
   * @example
   * ```ts
   * import { Device, Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * await using light = await Device.connect({ port: manager.port, type: "light", reconnect: true });
   * light.on("disconnect", (end, willReconnect) => console.log(end.reason, willReconnect));
   * light.on("reconnect", (device) => console.log("back after", device.reconnects, "reconnects"));
   * ```
   */
  on<E extends keyof DeviceEvents>(event: E, handler: DeviceEvents[E]): () => void {
    const set = this.#handlers[event] as Set<DeviceEvents[E]>;
    if (!set) throw new TypeError(`unknown event ${JSON.stringify(event)}`);
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * Ends the device for good: stops reconnecting, says goodbye (an `END` frame
   * in mode 2; mode 1 has none) and closes the socket. Idempotent.
   *
   * @param reason Sent to the manager in mode 2 and kept in `closed`. @default "closed by the device"
   *
   * @example
   * ```ts
   * import { Device, Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * const light = await Device.connect({ port: manager.port, type: "light" });
   * await light.close();
   * console.log((await light.closed).reason); // "kicked"
   * ```
   */
  close(reason = "closed by the device"): Promise<void> {
    this.#closing ??= this.#shutdown(reason);
    return this.#closing;
  }

  /** `await using device = ...` closes it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The manager's messages; one consumer. Ends when the device ends for good. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#queue[Symbol.asyncIterator]();
  }

  async #shutdown(reason: string): Promise<void> {
    this.#wake?.();
    this.#attempt?.abort(new ConnectionEnd("kicked", reason));
    await this.#reconnecting;
    const link = this.#link;
    if (link) {
      link.terminate("kicked", reason, { farewell: true });
      await link.finished;
    }
    this.#finish(new ConnectionEnd("kicked", reason));
  }

  /** Opens one connection and completes the handshake, or fails with everything closed. */
  async #open(): Promise<Link> {
    const options = this.#options;
    const seconds = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    const attempt = new AbortController();
    this.#attempt = attempt;
    const timer = setTimeout(
      () =>
        attempt.abort(
          new TimeoutError(`no complete handshake with the manager within ${seconds} s`),
        ),
      seconds * 1000,
    );
    const aborted = new Promise<never>((_, reject) => {
      attempt.signal.addEventListener("abort", () => reject(attempt.signal.reason), {
        once: true,
      });
    });
    aborted.catch(() => {});
    const userSignal = options.signal;
    const onUserAbort = () => attempt.abort(userSignal!.reason);
    if (userSignal?.aborted) onUserAbort();
    else userSignal?.addEventListener("abort", onUserAbort, { once: true });
    let link: Link | null = null;
    try {
      const conn = await Promise.race([this.#dial(attempt.signal), aborted]);
      link = new Link(conn, this.mode, this.#hooks, {
        maxFrameSize: options.maxFrameSize ?? 1048576,
        maxBufferedBytes: options.maxBufferedBytes ?? 1048576,
        keepalive: options.keepalive,
      });
      link.start();
      await Promise.race([link.ready, aborted]);
      return link;
    } catch (error) {
      if (link) {
        const end = error instanceof ConnectionEnd ? error : null;
        link.terminate(end?.reason ?? "io", (error as Error).message, { farewell: false });
        await link.finished;
      }
      if (error instanceof ConnectionEnd && error.cause instanceof InvalidInfo) throw error.cause;
      if (error instanceof ConnectionEnd || error instanceof TimeoutError) throw error;
      if (userSignal?.aborted && error === userSignal.reason) throw error;
      throw new ConnectionEnd("io", `cannot connect: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
      userSignal?.removeEventListener("abort", onUserAbort);
      if (this.#attempt === attempt) this.#attempt = null;
    }
  }

  /** Opens the socket; an abort closes it at any point, during a TLS handshake too. */
  #dial(signal: AbortSignal): Promise<Transport> {
    const { hostname = "127.0.0.1", port = 8595, tls } = this.#options;
    return connectTransport({
      hostname,
      port,
      signal,
      tls: tls ? { caCerts: typeof tls === "object" ? tls.caCerts : undefined } : undefined,
    });
  }

  #watch(link: Link): void {
    link.finished.then((end) => this.#onDrop(link, end));
  }

  #onDrop(link: Link, drop: ConnectionEnd): void {
    if (this.#link === link) this.#link = null;
    let end = drop;
    if (end.reason === "replaced") {
      const short = performance.now() - this.#linkOpenedAt < STABLE_CONNECTION_MS;
      this.#replacedInARow = short ? this.#replacedInARow + 1 : 1;
      const limit = this.#reconnect?.maxReplaced ?? 1;
      if (this.#replacedInARow >= limit && this.#reconnect) {
        end = new ConnectionEnd(
          "replaced",
          `another device is using UUID ${this.uuid}: it took over ${this.#replacedInARow} ` +
            `times in a row, so this one stops reconnecting (${end.message})`,
          { cause: end },
        );
        this.#log.warn("Device {uuid} stops: {message}", {
          uuid: this.uuid,
          reason: "replaced",
          message: end.message,
        });
      }
    } else if (performance.now() - this.#linkOpenedAt >= STABLE_CONNECTION_MS) {
      this.#replacedInARow = 0;
    }
    const willReconnect = this.#reconnect !== null && this.#closing === null &&
      this.#end === null && end === drop;
    this.#log[end.reason === "kicked" ? "debug" : "info"](
      "Device {uuid} disconnected: {reason}: {message}",
      { uuid: this.uuid, reason: end.reason, message: end.message, willReconnect },
    );
    this.#emit("disconnect", end, willReconnect);
    if (willReconnect) this.#reconnecting = this.#reconnectLoop(end);
    else if (this.#closing === null) this.#finish(end);
  }

  async #reconnectLoop(drop: ConnectionEnd): Promise<void> {
    const settings = this.#reconnect!;
    let lastError: unknown = drop;
    let delay = settings.initialDelay * 1000;
    for (let attempt = 1; attempt <= settings.maxAttempts; attempt++) {
      // Taken over by another connection with this UUID: back off hard before taking it back.
      delay = attempt === 1 && drop.reason === "replaced"
        ? settings.maxDelay * 1000 * (1 - random() / 2)
        : backoffDelay(delay, settings);
      this.#log.debug("Device {uuid} reconnects in {delay} ms (attempt {attempt})", {
        uuid: this.uuid,
        delay: Math.round(delay),
        attempt,
      });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
      if (this.#closing) return;
      try {
        const link = await this.#open();
        if (this.#closing) {
          link.terminate("kicked", "closed while reconnecting", { farewell: true });
          await link.finished;
          return;
        }
        this.#link = link;
        this.#linkOpenedAt = performance.now();
        this.#stats.reconnects++;
        this.#reconnecting = null;
        this.#log.info("Device {uuid} reconnected after {attempt} attempt(s)", {
          uuid: this.uuid,
          attempt,
        });
        this.#watch(link);
        this.#emit("reconnect", this);
        return;
      } catch (error) {
        if (this.#closing) return;
        lastError = error;
        if (error instanceof InvalidInfo && !TRANSIENT_REFUSALS.has(error.reason)) {
          // Asking again with the same answer gets the same refusal: stop and say why.
          this.#reconnecting = null;
          this.#log.warn("Device {uuid} stops reconnecting: {message}", {
            uuid: this.uuid,
            reason: error.reason,
            message: error.message,
          });
          this.#finish(new ConnectionEnd("refused", error.message, { cause: error }));
          return;
        }
        this.#log.debug("Device {uuid} reconnect attempt {attempt} failed: {message}", {
          uuid: this.uuid,
          attempt,
          message: (error as Error).message,
        });
      }
    }
    this.#reconnecting = null;
    this.#finish(
      new ConnectionEnd("io", `gave up reconnecting after ${settings.maxAttempts} attempts`, {
        cause: lastError,
      }),
    );
  }

  #finish(end: ConnectionEnd): void {
    if (this.#end) return;
    this.#end = end;
    if (this.#onAbort) this.#options.signal?.removeEventListener("abort", this.#onAbort);
    this.#queue.stop();
    this.#closed.resolve(end);
  }

  #emit<E extends keyof DeviceEvents>(event: E, ...args: Parameters<DeviceEvents[E]>): void {
    for (const handler of this.#handlers[event]) {
      try {
        (handler as (...a: Parameters<DeviceEvents[E]>) => void)(...args);
      } catch (error) {
        this.#log.error("A {event} handler of device {uuid} failed: {error}", {
          event,
          uuid: this.uuid,
          error,
        });
      }
    }
  }
}

/**
 * The wait before the next reconnection attempt, in milliseconds: decorrelated
 * jitter, uniform between `initialDelay` and three times the previous wait,
 * capped at `maxDelay` (see {@linkcode ReconnectOptions}).
 *
 * @param previousMs The previous wait; `initialDelay` (in ms) before the first attempt.
 * @param options Backoff settings, all given.
 * @param random A source of numbers in [0, 1).
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./lib/device.ts";
 * const settings = { initialDelay: 0.5, maxDelay: 30, jitter: 0, maxAttempts: Infinity, maxReplaced: 3 };
 * console.log(backoffDelay(500, settings)); // 1500
 * ```
 */
export function backoffDelay(
  previousMs: number,
  options: Required<ReconnectOptions>,
  random: () => number = Math.random,
): number {
  const lower = options.initialDelay * 1000;
  const upper = Math.max(lower, previousMs * 3);
  return Math.min(options.maxDelay * 1000, upper - options.jitter * random() * (upper - lower));
}

/** What a link needs from its device. */
interface LinkHooks {
  info(): DeviceInfo;
  answerHeartbeats(): boolean;
  onHeartbeat(answered: boolean): void;
  onWelcome(settings: ManagerSettings): void;
  /** The answer to an authentication challenge. */
  proof(challenge: Uint8Array): Promise<Uint8Array>;
  /** A message for the application; a promise when reading should pause until it resolves. */
  onMessage(data: Uint8Array): Promise<void> | undefined;
  readonly log: Logger;
  readonly uuid: string;
}

/** One connection of a device: socket, read loop, send buffer, protocol state. */
class Link implements ReadLoopOwner {
  readonly #conn: Transport;
  readonly #mode: ProtocolMode;
  readonly #hooks: LinkHooks;
  readonly #outbox: Outbox;
  readonly #decoder: FrameDecoder;
  readonly #ready = Promise.withResolvers<void>();
  readonly #finished = Promise.withResolvers<ConnectionEnd>();
  readonly #terminated = Promise.withResolvers<void>();
  readonly #peerClosed = Promise.withResolvers<void>();
  #state: "getinfo" | "welcome" | "open" = "getinfo";
  #end: ConnectionEnd | null = null;
  #shutdownDone: Promise<void> = Promise.resolve();
  #heldEnd = false;
  #stall: Promise<void> | undefined;
  #readPaused = false;
  readonly #keepaliveOption: number | undefined;
  /** When the manager last sent anything (`performance.now()`). */
  #lastHeard = performance.now();
  #keepaliveMs = 0;
  #keepaliveTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    conn: Transport,
    mode: ProtocolMode,
    hooks: LinkHooks,
    limits: { maxFrameSize: number; maxBufferedBytes: number; keepalive?: number },
  ) {
    this.#conn = conn;
    this.#mode = mode;
    this.#hooks = hooks;
    this.#keepaliveOption = limits.keepalive;
    this.#decoder = new FrameDecoder(limits.maxFrameSize);
    this.#outbox = new Outbox(conn, {
      maxBufferedBytes: limits.maxBufferedBytes,
      onError: (error, overflow) =>
        this.terminate(overflow ? "buffer-full" : "io", error.message, { farewell: false }),
    });
    this.#ready.promise.catch(() => {});
  }

  /** Resolves once the handshake is done; rejects with the end if the connection ends first. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** True after the handshake and until the connection ends. */
  get open(): boolean {
    return this.#state === "open" && this.#end === null;
  }

  /** Resolves with the end once the socket is closed and the read loop has exited. */
  get finished(): Promise<ConnectionEnd> {
    return this.#finished.promise;
  }

  start(): void {
    const sizes = { smallest: READ_BUFFER_SIZE, largest: READ_BUFFER_SIZE };
    readLoop(this.#conn, this, sizes)
      .then(() => this.#shutdownDone)
      .then(() => this.#finished.resolve(this.#end!));
  }

  enqueue(bytes: Uint8Array): boolean {
    return this.#end === null && this.#outbox.enqueue(bytes);
  }

  async flushed(): Promise<boolean> {
    try {
      await this.#outbox.flushed();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Ends the connection; the first call wins. `farewell` sends `END` first (mode 2 only) and,
   * in both modes, closes gracefully: half-close, then wait (within the grace) for the manager.
   */
  terminate(
    reason: EndReason,
    message: string,
    options: { farewell: boolean; cause?: Error },
  ): void {
    if (this.#end) return;
    this.#end = new ConnectionEnd(reason, message, { cause: options.cause });
    this.#stopKeepalive();
    this.#ready.reject(this.#end);
    this.#terminated.resolve();
    const graceful = options.farewell && this.#state === "open";
    const farewell = graceful && this.#mode === 2 ? encodeFrame(FrameType.END, message) : null;
    this.#shutdownDone = this.#shutdown(graceful, farewell);
  }

  #shutdown(graceful: boolean, farewell: Uint8Array | null): Promise<void> {
    return closeGracefully({
      conn: this.#conn,
      outbox: this.#outbox,
      farewell,
      halfClose: graceful,
      peerClosed: () => this.#peerClosed.promise,
      reason: this.#end!,
      graceMs: FAREWELL_GRACE_MS,
    });
  }

  // The read loop's side of this link (lib/read_loop.ts).

  /** True once the connection has ended. */
  get ended(): boolean {
    return this.#end !== null;
  }

  /** Bytes from the manager. */
  received(chunk: Uint8Array): void {
    this.#onBytes(chunk);
  }

  /** The manager closed its end. */
  peerClosed(): void {
    this.#peerClosed.resolve();
  }

  /** The manager closed while the connection was open. */
  peerLeft(): void {
    this.#onEof();
  }

  /** What reading waits for: the application's iterator, full. */
  takeStall(): Promise<unknown> | undefined {
    const stall = this.#stall;
    this.#stall = undefined;
    return stall;
  }

  /** Reading paused for the application (the keepalive does not judge meanwhile). */
  paused(paused: boolean): void {
    this.#readPaused = paused;
    if (!paused) this.#lastHeard = performance.now(); // bytes may be waiting unread
  }

  /** Resolves when the connection ends. */
  whenEnded(): Promise<void> {
    return this.#terminated.promise;
  }

  /** Reading failed. */
  failed(message: string, error: unknown, internal: boolean): void {
    if (internal) {
      this.#hooks.log.error("Device {uuid} failed unexpectedly: {error}", {
        uuid: this.#hooks.uuid,
        error,
      });
    }
    this.terminate("io", message, { farewell: false });
  }

  #onEof(): void {
    if (this.#state !== "open") {
      this.terminate(
        "closed",
        "the manager closed the connection during the handshake (answer rejected?)",
        { farewell: false },
      );
    } else if (this.#heldEnd) {
      this.terminate("ended", "the manager ended the connection", { farewell: false });
    } else {
      this.terminate("closed", "the manager closed the connection", { farewell: false });
    }
  }

  /**
   * Watches the manager's silence: longer than `ms` of this process's running
   * time without a byte from it, and it counts as gone (reason `keepalive`).
   * One timer, re-armed only when it fires.
   */
  #startKeepalive(ms: number): void {
    if (!(ms > 0) || !Number.isFinite(ms) || this.#end || this.#keepaliveMs > 0) return;
    this.#keepaliveMs = ms;
    stallClock.acquire();
    this.#armKeepalive(ms);
  }

  #armKeepalive(delayMs: number): void {
    this.#keepaliveTimer = setTimeout(() => {
      const silent = stallClock.elapsedSince(this.#lastHeard);
      // A paused read (the application is not consuming) is not the manager's silence.
      if (this.#readPaused || silent < this.#keepaliveMs) {
        return this.#armKeepalive(
          this.#readPaused ? this.#keepaliveMs : this.#keepaliveMs - silent,
        );
      }
      const seconds = (silent / 1000).toFixed(1);
      this.#hooks.log.warn("Manager silent for {seconds} s; device {uuid} counts it as gone", {
        uuid: this.#hooks.uuid,
        seconds,
        reason: "keepalive",
      });
      this.terminate(
        "keepalive",
        `the manager sent nothing for ${seconds} s (its promise: ${this.#keepaliveMs / 1000} s)`,
        { farewell: false },
      );
    }, Math.max(1, delayMs));
  }

  #stopKeepalive(): void {
    if (this.#keepaliveMs === 0) return;
    clearTimeout(this.#keepaliveTimer);
    this.#keepaliveTimer = undefined;
    this.#keepaliveMs = -1;
    stallClock.release();
  }

  #onBytes(chunk: Uint8Array): void {
    this.#lastHeard = performance.now();
    if (this.#state === "getinfo") {
      if (chunk[0] !== GETINFO_BYTE) {
        return this.#protocolError(
          `expected getinfo (0x01) from the manager, got 0x${chunk[0].toString(16)}`,
        );
      }
      this.#outbox.enqueue(encodeHandshake(this.#hooks.info(), this.#mode));
      chunk = chunk.subarray(1);
      if (this.#mode === 1) {
        this.#state = "open";
        this.#outbox.flushed().then(() => this.#ready.resolve(), () => {});
        // Mode 1 has no WELCOME: only an explicit keepalive watches the manager.
        if (this.#keepaliveOption !== undefined) this.#startKeepalive(this.#keepaliveOption * 1000);
      } else {
        this.#state = "welcome";
      }
    }
    if (this.#mode === 1) return this.#onMode1Chunk(chunk);
    try {
      this.#decoder.push(chunk, (type, payload) => this.#onFrame(type, payload));
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#protocolError(error.message);
    }
  }

  #onMode1Chunk(chunk: Uint8Array): void {
    const split = splitManagerChunk(chunk, this.#heldEnd);
    this.#heldEnd = split.heldEnd;
    for (const control of split.controls) {
      if (control === HEARTBEAT_BYTE) this.#onHeartbeat();
      else this.#outbox.enqueue(encodeHandshake(this.#hooks.info(), 1));
    }
    if (split.message.length > 0) this.#deliver(split.message);
  }

  #onFrame(type: FrameTypeValue, payload: Uint8Array): void {
    if (this.#end) return;
    if (this.#state === "welcome") {
      if (type === FrameType.WELCOME) {
        this.#state = "open";
        const settings = parseSettings(payload);
        this.#hooks.onWelcome(settings);
        // The manager promised a heartbeat every rate, and drops us after timeout: silence
        // longer than both together (plus slack for a pause of its own) means it is gone.
        const promised = settings.heartbeatRate !== undefined &&
            settings.heartbeatTimeout !== undefined
          ? withSlack(settings.heartbeatRate + settings.heartbeatTimeout)
          : undefined;
        const keepalive = this.#keepaliveOption ?? promised;
        if (keepalive !== undefined) this.#startKeepalive(keepalive * 1000);
        this.#ready.resolve();
        return;
      }
      if (type === FrameType.CHALLENGE) {
        this.#hooks.proof(payload).then(
          (proof) => this.enqueue(encodeFrame(FrameType.PROOF, proof)),
          (error) => this.#protocolError(`cannot compute the proof: ${String(error)}`),
        );
        return;
      }
      if (type !== FrameType.END) {
        return this.#protocolError(`expected WELCOME, got frame type 0x${type.toString(16)}`);
      }
    }
    switch (type) {
      case FrameType.DATA:
        return this.#deliver(payload);
      case FrameType.HEARTBEAT:
        return this.#onHeartbeat();
      case FrameType.GETINFO: {
        const text = encodeHandshake(this.#hooks.info(), 1);
        this.#outbox.enqueue(encodeFrame(FrameType.INFO, text));
        return;
      }
      case FrameType.END:
        return this.#onEnd(payload);
      case FrameType.WELCOME:
        this.#hooks.onWelcome(parseSettings(payload));
        return;
      default:
        this.#protocolError(`frame type 0x${type.toString(16)} is device-to-manager only`);
    }
  }

  /**
   * The manager's goodbye (`reason: message`). During the handshake it is a
   * refusal; after it, the reasons a device can act on are kept as its own.
   */
  #onEnd(payload: Uint8Array): void {
    const { reason, message } = parseEnd(payload);
    if (this.#state !== "open" && reason && isInvalidInfoReason(reason)) {
      const refusal = new InvalidInfo(reason, `the manager refused the handshake: ${message}`);
      this.terminate("refused", refusal.message, { farewell: false, cause: refusal });
      return;
    }
    const said = reason ? `${reason}: ${message}` : message;
    this.terminate(
      reason && KEPT_END_REASONS.has(reason) ? reason as EndReason : "ended",
      said ? `the manager ended: ${said}` : "the manager ended",
      { farewell: false },
    );
  }

  #onHeartbeat(): void {
    const answer = this.#hooks.answerHeartbeats();
    this.#hooks.onHeartbeat(answer);
    if (answer) this.#outbox.enqueue(this.#mode === 1 ? MODE1_BEAT : MODE2_BEAT);
  }

  #deliver(data: Uint8Array): void {
    const stall = this.#hooks.onMessage(data);
    if (stall) this.#stall = stall;
  }

  #protocolError(message: string): void {
    this.#hooks.log.warn("Manager broke the protocol with device {uuid}: {message}", {
      uuid: this.#hooks.uuid,
      message,
    });
    this.terminate("protocol", message, { farewell: true });
  }
}

function parseSettings(payload: Uint8Array): ManagerSettings {
  try {
    const value: unknown = JSON.parse(decoder.decode(payload));
    if (typeof value !== "object" || value === null) return {};
    const record = value as Record<string, unknown>;
    const number = (key: string) => typeof record[key] === "number" ? record[key] : undefined;
    return {
      heartbeatRate: number("heartbeatRate"),
      heartbeatTimeout: number("heartbeatTimeout"),
      maxFrameSize: number("maxFrameSize"),
    };
  } catch {
    return {};
  }
}

function reconnectSettings(
  option: boolean | ReconnectOptions | undefined,
): Required<ReconnectOptions> | null {
  if (!option) return null;
  const given = option === true ? {} : option;
  return {
    initialDelay: given.initialDelay ?? 1,
    maxDelay: given.maxDelay ?? 10,
    jitter: given.jitter ?? 1,
    maxReplaced: given.maxReplaced ?? 3,
    maxAttempts: given.maxAttempts ?? Infinity,
  };
}

function validateData(data: unknown): void {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new TypeError("device data must be a JSON object");
  }
}

function validateOptions(options: DeviceOptions): void {
  if (options.uuid !== undefined && !isUuid(options.uuid)) {
    throw new TypeError(`invalid uuid ${JSON.stringify(options.uuid)}: a 36-character UUID`);
  }
  if (typeof options.type !== "string" || options.type === "" || options.type.includes("##")) {
    throw new TypeError(
      `invalid device type ${JSON.stringify(options.type)}: a non-empty string without "##"`,
    );
  }
  if (options.data !== undefined) validateData(options.data);
  if (options.mode !== undefined && options.mode !== 1 && options.mode !== 2) {
    throw new TypeError(`mode must be 1 or 2, got ${String(options.mode)}`);
  }
  const positive = [
    ["connectTimeout", options.connectTimeout],
    ["keepalive", options.keepalive],
    ["highWaterMark", options.highWaterMark],
    ["maxFrameSize", options.maxFrameSize],
    ["maxBufferedBytes", options.maxBufferedBytes],
  ] as const;
  const reconnect = typeof options.reconnect === "object" ? options.reconnect : {};
  for (
    const [name, value] of [
      ...positive,
      ["reconnect.initialDelay", reconnect.initialDelay],
      ["reconnect.maxDelay", reconnect.maxDelay],
      ["reconnect.maxAttempts", reconnect.maxAttempts],
      ["reconnect.maxReplaced", reconnect.maxReplaced],
    ] as const
  ) {
    if (value !== undefined && !(typeof value === "number" && value > 0)) {
      throw new TypeError(`${name} must be a positive number, got ${String(value)}`);
    }
  }
  const jitter = reconnect.jitter;
  if (jitter !== undefined && !(typeof jitter === "number" && jitter >= 0 && jitter <= 1)) {
    throw new TypeError(`reconnect.jitter must be between 0 and 1, got ${String(jitter)}`);
  }
}
