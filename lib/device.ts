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

import { getLogger, type Logger } from "@logtape/logtape";
import { computeProof } from "./auth.ts";
import { backoffDelay, ReconnectPolicy, reconnectSettings } from "./reconnect.ts";
import {
  type DeviceEvents,
  type DeviceOptions,
  type DeviceStats,
  validateData,
  validateOptions,
} from "./device_options.ts";
import { ConnectionEnd, TimeoutError } from "./errors.ts";
import { type Link, type LinkHooks, openLink } from "./link.ts";
import {
  type DeviceInfo,
  encodeMessage,
  encodeReport,
  FRAME_HEADER_SIZE,
  type JsonObject,
  type ManagerSettings,
  mergePatch,
  type ProtocolMode,
} from "./protocol/mod.ts";
import { AsyncQueue } from "./queue.ts";

const DEFAULT_CONNECT_TIMEOUT = 15;

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
  readonly #reconnect: ReconnectPolicy | null;
  readonly #log: Logger;
  readonly #queue: AsyncQueue<Uint8Array>;
  readonly #hooks: LinkHooks;
  readonly #closed = Promise.withResolvers<ConnectionEnd>();
  readonly #handlers = {
    disconnect: new Set<DeviceEvents["disconnect"]>(),
    reconnect: new Set<DeviceEvents["reconnect"]>(),
    delta: new Set<DeviceEvents["delta"]>(),
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

  private constructor(options: DeviceOptions) {
    validateOptions(options);
    this.#options = options;
    this.uuid = (options.uuid ?? crypto.randomUUID()).toLowerCase();
    this.type = options.type;
    this.mode = options.mode ?? 2;
    this.#data = options.data ?? {};
    this.answerHeartbeats = options.answerHeartbeats ?? true;
    const reconnect = reconnectSettings(options.reconnect);
    this.#reconnect = reconnect && new ReconnectPolicy(reconnect);
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
      onDelta: (delta, version) => this.#emit("delta", delta, version),
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
   * to later drops; this first connection fails fast unless `waitForManager`
   * gives it seconds to keep trying an unreachable manager (with the reconnect
   * backoff), after which the last attempt's error is thrown.
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
    device.#link = await device.#openFirst(options.waitForManager ?? 0);
    device.#reconnect?.opened();
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
   * Reports state: merges `patch` into `data` (JSON Merge Patch, RFC 7386:
   * `null` removes a key) and, when the manager reads reports (mode 2, feature
   * `state`), sends it; otherwise the manager sees the new `data` at its next
   * `getData()` or a reconnection.
   *
   * @returns `true` if the report was written to the manager.
   *
   * @example
   * ```ts
   * import { Device, Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
   * await using lock = await Device.connect({ port: manager.port, type: "lock", data: { locked: false } });
   * lock.on("delta", (delta) => void lock.report(delta)); // a lock that does what it is told
   * await manager.state.setDesired(lock.uuid, { locked: true });
   * ```
   */
  async report(patch: JsonObject): Promise<boolean> {
    validateData(patch);
    this.#data = mergePatch(this.#data as JsonObject, patch);
    const link = this.#link;
    if (!link?.open || !link.reportsState || !link.enqueue(encodeReport(patch))) return false;
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

  /**
   * The first connection: one attempt, or, for `waitSeconds`, attempts spaced
   * by the reconnect backoff while the manager cannot be reached. A refusal
   * (`InvalidInfo`), a peer that breaks the protocol, a bad option or the
   * `signal` ends the trying at once.
   */
  async #openFirst(waitSeconds: number): Promise<Link> {
    if (waitSeconds === 0) return await this.#open();
    const deadline = performance.now() + waitSeconds * 1000;
    const settings = this.#reconnect?.settings ?? reconnectSettings(true)!;
    const signal = this.#options.signal;
    let delay = settings.initialDelay * 1000;
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#open();
      } catch (error) {
        // A peer that breaks the protocol is there, and would break it again: not retried.
        const unreachable = error instanceof TimeoutError ||
          (error instanceof ConnectionEnd && error.reason !== "protocol");
        delay = backoffDelay(delay, settings);
        const left = deadline - performance.now();
        if (!unreachable || signal?.aborted || left <= 0) throw error;
        this.#log.debug(
          "Device {uuid} cannot reach the manager yet (attempt {attempt}: {message}); again in {delay} ms",
          {
            uuid: this.uuid,
            attempt,
            message: (error as Error).message,
            delay: Math.round(Math.min(delay, left)),
          },
        );
        await this.#pause(Math.min(delay, left));
      }
    }
  }

  /** Waits `ms` milliseconds, or less when `close()` or the `signal` cuts the wait short. */
  #pause(ms: number): Promise<void> {
    const signal = this.#options.signal;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }

  /** Opens one connection and completes the handshake, or fails with everything closed. */
  async #open(): Promise<Link> {
    const options = this.#options;
    const attempt = new AbortController();
    this.#attempt = attempt;
    const { tls } = options;
    try {
      return await openLink(
        {
          hostname: options.hostname ?? "127.0.0.1",
          port: options.port ?? 8595,
          tls: tls ? { caCerts: typeof tls === "object" ? tls.caCerts : undefined } : undefined,
          connectTimeout: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
          signal: options.signal,
        },
        this.mode,
        this.#hooks,
        {
          maxFrameSize: options.maxFrameSize ?? 1048576,
          maxBufferedBytes: options.maxBufferedBytes ?? 1048576,
          keepalive: options.keepalive,
        },
        attempt,
      );
    } finally {
      if (this.#attempt === attempt) this.#attempt = null;
    }
  }

  #watch(link: Link): void {
    link.finished.then(() => this.#onDrop(link, link.endedWith!));
  }

  #onDrop(link: Link, drop: ConnectionEnd): void {
    if (this.#link === link) this.#link = null;
    const final = this.#reconnect?.stopsAfter(drop, this.uuid) ?? null;
    if (final) {
      this.#log.warn("Device {uuid} stops: {message}", {
        uuid: this.uuid,
        reason: final.reason,
        message: final.message,
      });
    }
    const end = final ?? drop;
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
    const policy = this.#reconnect!;
    const settings = policy.settings;
    let lastError: unknown = drop;
    let delay = settings.initialDelay * 1000;
    for (let attempt = 1; attempt <= settings.maxAttempts; attempt++) {
      delay = policy.delay(attempt, drop, delay);
      this.#log.debug("Device {uuid} reconnects in {delay} ms (attempt {attempt})", {
        uuid: this.uuid,
        delay: Math.round(delay),
        attempt,
      });
      await this.#pause(delay);
      if (this.#closing) return;
      try {
        const link = await this.#open();
        if (this.#closing) {
          link.terminate("kicked", "closed while reconnecting", { farewell: true });
          await link.finished;
          return;
        }
        this.#link = link;
        policy.opened();
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
        if (policy.isFinal(error)) {
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
