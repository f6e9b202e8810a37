/**
 * The manager's end of one device connection after its handshake: the
 * {@linkcode Client} users see. Reading, framing and ending are the shared
 * core's (lib/connection_core.ts); this file holds what is the manager's own.
 *
 * Each message a device sends goes to exactly one place first: a pending
 * `recv`/`request` if there is one (the seed's `connection_lock` pattern),
 * otherwise to every iterator on this client and to the manager's handlers
 * and iterators.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Transport } from "./transport.ts";
import { Acks } from "./acks.ts";
import type {
  Client,
  EndOptions,
  MessagesOfClientOptions,
  SendOptions,
  WaitOptions,
} from "./client.ts";
import { ConnectionCore, type CoreLimits, type ReadSizes } from "./connection_core.ts";
import { type ConnectionEnd, InvalidInfo, TimeoutError } from "./errors.ts";
import type { HeartbeatTarget } from "./heartbeat.ts";
import type { WriteTarget } from "./watchdog.ts";
import { InfoRequest } from "./info_request.ts";
import type { ManagerMetrics } from "./metrics.ts";
import { Mutex } from "./mutex.ts";
import { sendOptionsProblem } from "./routing.ts";
import {
  type DeviceInfo,
  encodeEnd,
  encodeFrame,
  encodeMessage,
  END_TEXT,
  type Feature,
  FrameType,
  type FrameTypeValue,
  GETINFO_BYTE,
  HEARTBEAT_BYTE,
  type JsonObject,
  Mode1Reader,
  parseAck,
  parseFeatures,
  parseReport,
  type ProtocolMode,
} from "./protocol/mod.ts";
import { AsyncQueue } from "./queue.ts";
import { type Waiter, waitIn } from "./waiters.ts";

/** How a connection reports to its manager. */
export interface ConnectionHooks {
  /** A message nobody `recv`ed; returns a promise when the consumer wants reads paused. */
  onMessage(connection: Connection, data: Uint8Array): Promise<void> | undefined;
  /** The connection ended (called once). */
  onClose(connection: Connection, end: ConnectionEnd): void;
  /** `getData()` changed the device's type or data. */
  onInfoChanged(connection: Connection, previousType: string): void;
  /** The device reported state (feature `state`); a promise when reading should pause. */
  onReport(connection: Connection, patch: JsonObject): Promise<void> | undefined;
  /** The device's features are known (mode 2: its first frame after `WELCOME`). */
  onFeatures(connection: Connection): void;
  /** The manager's counters. */
  readonly metrics: ManagerMetrics;
}

/** Limits a connection enforces: one object per manager, shared by all its connections. */
export interface ConnectionLimits extends CoreLimits {
  readonly validTypes: readonly string[];
  /** Largest answer to `getinfo`, in bytes (the manager's `maxHandshakeSize`). */
  readonly maxHandshakeSize: number;
  /** Read buffer for mode 1, where one read is one message. */
  readonly mode1ReadSize: number;
  /** Smallest and largest read buffer in mode 2 (it grows while reads fill it). */
  readonly mode2ReadSize: readonly [min: number, max: number];
}

/**
 * The limits every connection of one manager shares, built once: a connection
 * keeps a reference, not a copy (at 10,000 devices, copies add up).
 */
export function connectionLimits(
  limits: Omit<ConnectionLimits, "frameLimits">,
): ConnectionLimits {
  // An INFO frame (a getData() answer) is a handshake answer: refused at its header if too big.
  return { ...limits, frameLimits: { [FrameType.INFO]: limits.maxHandshakeSize } };
}

const DEFAULT_WAIT_SECONDS = 15;
const NO_FEATURES: ReadonlySet<Feature> = new Set();
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const MODE1_HEARTBEAT = Uint8Array.of(HEARTBEAT_BYTE);
const MODE1_GETINFO = Uint8Array.of(GETINFO_BYTE);
const MODE1_END = new TextEncoder().encode(END_TEXT);
const MODE2_HEARTBEAT = encodeFrame(FrameType.HEARTBEAT);
const MODE2_GETINFO = encodeFrame(FrameType.GETINFO);

/** The manager's side of one device connection. Internal: users see {@linkcode Client}. */
export class Connection extends ConnectionCore implements Client, HeartbeatTarget, WriteTarget {
  readonly address: Deno.NetAddr;
  heartbeatSentAt = 0;
  /** The slice of the heartbeat round this connection is pinged in (the monitor's). */
  heartbeatSlice = -1;
  /** When the manager admitted it (`performance.now()`). */
  readonly admittedAt: number = performance.now();
  /** The address of the connection this one took the UUID from, if it did. */
  tookOverFrom: string | undefined;
  /** A UUID conflict on this UUID was logged already (once per chain of takeovers). */
  conflictLogged = false;
  protected readonly log: Logger;
  #info: DeviceInfo;
  readonly #hooks: ConnectionHooks;
  readonly #limits: ConnectionLimits;
  #lock: Mutex | null = null;
  // Created on first use: most devices never see a request, a `closed` await or an iterator.
  #closed: PromiseWithResolvers<ConnectionEnd> | null = null;
  readonly #mode1: Mode1Reader | null;
  // Also created on first use; an idle device holds none of them.
  #recvWaiters: Waiter<Uint8Array>[] | null = null;
  #beatWaiters: Waiter<void>[] | null = null;
  #infoRequest: InfoRequest | null = null;
  #iterators: Set<AsyncQueue<Uint8Array>> | null = null;
  /** Features the device uses; `null` until known (mode 2: its first frame after `WELCOME`). */
  #features: ReadonlySet<Feature> | null;
  #acks: Acks | null = null;

  constructor(
    conn: Transport,
    mode: ProtocolMode,
    info: DeviceInfo,
    hooks: ConnectionHooks,
    limits: ConnectionLimits,
    log: Logger,
  ) {
    super(conn, mode, limits);
    this.address = conn.remoteAddr as Deno.NetAddr;
    this.#info = info;
    this.#hooks = hooks;
    this.#limits = limits;
    this.log = log;
    this.#mode1 = mode === 1 ? new Mode1Reader() : null;
    this.#features = mode === 1 ? NO_FEATURES : null;
  }

  get uuid(): string {
    return this.#info.uuid;
  }
  get type(): string {
    return this.#info.type;
  }
  get data(): Record<string, unknown> {
    return this.#info.data;
  }
  get info(): DeviceInfo {
    return this.#info;
  }
  get connected(): boolean {
    return this.endedWith === null;
  }
  get closed(): Promise<ConnectionEnd> {
    if (!this.#closed) {
      this.#closed = Promise.withResolvers<ConnectionEnd>();
      if (this.endedWith) this.#closed.resolve(this.endedWith);
    }
    return this.#closed.promise;
  }
  /** Bytes queued unsent. */
  get bufferedBytes(): number {
    return this.outbox.buffered;
  }
  get heartbeatPaused(): boolean {
    return this.readPaused;
  }

  /** Starts reading; `leftover` holds bytes that arrived with the handshake. */
  start(leftover: Uint8Array): void {
    // An idle connection holds its read buffer while the read is pending, so in mode 2
    // (where frames survive any split) it starts small and grows only while reads fill it.
    const [smallest, largest] = this.mode === 1
      ? [this.#limits.mode1ReadSize, this.#limits.mode1ReadSize]
      : this.#limits.mode2ReadSize;
    const sizes: ReadSizes = { smallest, largest };
    this.startReading(sizes, leftover);
  }

  async send(data: string | Uint8Array, options: SendOptions = {}): Promise<boolean> {
    if (options.ack) {
      const problem = sendOptionsProblem(options);
      if (problem) throw problem;
      await this.sendAcked(typeof data === "string" ? encoder.encode(data) : data, options);
      return true;
    }
    const bytes = encodeMessage(data, this.mode);
    if (!this.enqueue(bytes)) return false;
    this.#hooks.metrics.sent(1, bytes.length);
    return await this.flushed();
  }

  /** Whether the device uses `feature`; `undefined` while not yet known. */
  uses(feature: Feature): boolean | undefined {
    return this.#features === null ? undefined : this.#features.has(feature);
  }

  /**
   * Sends `body` as a `MESSAGE` and waits for its `ACK`. The bytes are not
   * copied: a fan-out passes the same body to every connection.
   *
   * @throws {DeliveryError} `timeout`, `disconnected`, `buffer-full` or `unsupported`.
   */
  sendAcked(body: Uint8Array, options: SendOptions = {}): Promise<void> {
    const timeout = options.timeout ?? DEFAULT_WAIT_SECONDS;
    this.#hooks.metrics.sent(1, body.length);
    return (this.#acks ??= new Acks(this)).send(body, timeout, options.signal);
  }

  /** {@linkcode Connection.sendAcked} whose wait the caller ends (`cancel`): for fan-outs. */
  sendAckedCancellable(body: Uint8Array): { acked: Promise<void>; cancel(error: Error): void } {
    this.#hooks.metrics.sent(1, body.length);
    return (this.#acks ??= new Acks(this)).sendCancellable(body);
  }

  recv(options: WaitOptions = {}): Promise<Uint8Array> {
    return this.#wait(this.#recvWaiters ??= [], options, "a message");
  }

  async recvString(options?: WaitOptions): Promise<string> {
    return decoder.decode(await this.recv(options));
  }

  request(data: string | Uint8Array, options: WaitOptions = {}): Promise<Uint8Array> {
    return (this.#lock ??= new Mutex()).run(() => {
      const answer = this.#wait(this.#recvWaiters ??= [], options, "an answer");
      const bytes = encodeMessage(data, this.mode);
      if (this.enqueue(bytes)) this.#hooks.metrics.sent(1, bytes.length);
      return answer;
    });
  }

  async requestString(data: string | Uint8Array, options?: WaitOptions): Promise<string> {
    return decoder.decode(await this.request(data, options));
  }

  getData(options: WaitOptions = {}): Promise<DeviceInfo> {
    return (this.#lock ??= new Mutex()).run(async () => {
      if (this.endedWith) throw this.endedWith;
      const timeout = options.timeout ?? DEFAULT_WAIT_SECONDS;
      const request = this.#infoRequest = new InfoRequest(
        this.uuid,
        { validTypes: this.#limits.validTypes, maxSize: this.#limits.maxHandshakeSize },
        { timeout, signal: options.signal },
        `no handshake info from ${this.uuid} within ${timeout} s`,
      );
      this.enqueue(this.mode === 1 ? MODE1_GETINFO : MODE2_GETINFO);
      let info: DeviceInfo;
      try {
        info = await request.answer;
      } catch (error) {
        if (error instanceof InvalidInfo) {
          this.terminate("protocol", `invalid getinfo answer: ${error.message}`);
        }
        throw error;
      } finally {
        this.#infoRequest = null;
      }
      const previousType = this.#info.type;
      this.#info = info;
      this.#hooks.onInfoChanged(this, previousType);
      return info;
    });
  }

  async heartbeat(options: WaitOptions = {}): Promise<number> {
    const started = performance.now();
    const beat = this.#wait(this.#beatWaiters ??= [], options, "a beat");
    if (this.heartbeatSentAt === 0) this.heartbeatSentAt = started;
    this.sendHeartbeat();
    try {
      await beat;
    } catch (error) {
      if (error instanceof TimeoutError) {
        const end = this.terminate("heartbeat", `no beat within ${options.timeout ?? 15} s`);
        throw end;
      }
      throw error;
    }
    return performance.now() - started;
  }

  async end(options: EndOptions = {}): Promise<void> {
    const end = this.terminate("kicked", options.reason ?? "ended by the application");
    await this.finished;
    if (options.raiseException) throw end;
  }

  messages(options: MessagesOfClientOptions = {}): AsyncIterableIterator<Uint8Array> {
    const queue: AsyncQueue<Uint8Array> = new AsyncQueue<Uint8Array>({
      highWaterMark: options.highWaterMark,
      signal: options.signal,
      onStop: () => this.#iterators?.delete(queue),
    });
    if (this.endedWith) queue.stop();
    else (this.#iterators ??= new Set()).add(queue);
    return queue[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.messages();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }

  // Liveness: the fleet-wide heartbeat (lib/heartbeat.ts) and write watchdog (lib/watchdog.ts).

  sendHeartbeat(): void {
    this.enqueue(this.mode === 1 ? MODE1_HEARTBEAT : MODE2_HEARTBEAT);
  }

  get writeStartedAt(): number {
    return this.outbox.writeStartedAt;
  }

  writeTimedOut(timeoutSeconds: number): void {
    this.terminate("write-timeout", `a write made no progress for ${timeoutSeconds} s`, {
      farewell: false,
    });
  }

  heartbeatMissed(timeoutSeconds: number): void {
    this.terminate("heartbeat", `no beat within ${timeoutSeconds} s of a heartbeat`);
  }

  // The role's side of the shared core.

  protected get peerName(): string {
    return `Device ${this.uuid}`;
  }

  protected onEnded(end: ConnectionEnd): void {
    const { reason, message } = end;
    const level = reason === "kicked" || reason === "manager-closed" || reason === "closed"
      ? "debug"
      : "info";
    this.log[level]("Device {uuid} ({type}) disconnected: {reason}: {message}", {
      uuid: this.uuid,
      type: this.type,
      reason,
      message,
      address: `${this.address.hostname}:${this.address.port}`,
    });
    for (const waiter of this.#recvWaiters?.splice(0) ?? []) waiter.reject(end);
    for (const waiter of this.#beatWaiters?.splice(0) ?? []) waiter.reject(end);
    this.#infoRequest?.fail(end);
    for (const queue of [...this.#iterators ?? []]) queue.stop();
    this.#acks?.ended(end);
    this.#closed?.resolve(end);
    this.#hooks.onClose(this, end);
  }

  protected goodbye(end: ConnectionEnd): Uint8Array {
    return this.mode === 1 ? MODE1_END : encodeEnd(end.reason, end.message);
  }

  protected onPeerLeft(): void {
    this.terminate("closed", "the device closed the connection");
  }

  protected onMode1(read: Uint8Array): void {
    const { beat, message: data } = this.#mode1!.push(read, this.heartbeatSentAt !== 0);
    if (beat) this.#onBeat();
    if (data.length === 0) return;
    const request = this.#infoRequest;
    if (!request || request.settled) return this.#deliver(data);
    // The answer to getinfo; bytes after it in the same read are the device's next message.
    const after = request.read(data);
    if (after === null) return;
    if (after.length > 0) this.#deliver(after);
    else this.#mode1!.answered();
  }

  protected onFrame(type: FrameTypeValue, payload: Uint8Array): void {
    if (this.#features === null) {
      // A device that uses features says so first; any other first frame means it uses none.
      if (type !== FrameType.FEATURES) this.#settle([]);
      else return this.#settle(parseFeatures(payload));
    }
    switch (type) {
      case FrameType.DATA:
        return this.#deliver(payload);
      case FrameType.BEAT:
        return this.#onBeat();
      case FrameType.END: {
        const { said } = this.readGoodbye(payload);
        this.terminate("ended", said ? `the device ended: ${said}` : "the device ended", {
          farewell: false,
        });
        return;
      }
      case FrameType.INFO:
        return this.#onInfo(payload);
      case FrameType.ACK:
        return this.#onAck(payload);
      case FrameType.REPORT:
        return this.#onReport(payload);
      default:
        this.rejectFrame(type, "from a device here");
    }
  }

  #onInfo(payload: Uint8Array): void {
    const request = this.#infoRequest;
    if (request && !request.settled) return request.frame(payload);
    this.log.debug("Device {uuid} sent unrequested info; ignored", { uuid: this.uuid });
  }

  /** The device's features are known: held acknowledged sends go out (or fail). */
  #settle(features: readonly Feature[]): void {
    this.#features = features.length === 0 ? NO_FEATURES : new Set(features);
    this.#acks?.featuresKnown();
    this.#hooks.onFeatures(this);
  }

  #onAck(payload: Uint8Array): void {
    const id = parseAck(payload);
    if (!this.#acks?.ack(id)) {
      this.log.debug("Device {uuid} acknowledged message {id}, which nothing waits for", {
        uuid: this.uuid,
        id,
      });
    }
  }

  #onReport(payload: Uint8Array): void {
    const patch = parseReport(payload);
    const stall = this.#hooks.onReport(this, patch);
    if (stall) this.stallOn(stall);
  }

  #onBeat(): void {
    if (this.heartbeatSentAt === 0 && !this.#beatWaiters?.length) {
      this.log.debug("Device {uuid} sent an unprompted beat; ignored", {
        uuid: this.uuid,
        reason: "unprompted-beat",
      });
      return;
    }
    if (this.heartbeatSentAt !== 0) {
      this.#hooks.metrics.beat(performance.now() - this.heartbeatSentAt);
    }
    this.heartbeatSentAt = 0;
    for (const waiter of this.#beatWaiters?.splice(0) ?? []) waiter.resolve();
  }

  #deliver(data: Uint8Array): void {
    if (data.length === 0 && this.mode === 1) return;
    this.#hooks.metrics.received(data.length);
    const waiter = this.#recvWaiters?.shift();
    if (waiter) return waiter.resolve(data);
    for (const queue of this.#iterators ?? []) {
      if (!queue.push(data)) this.stallOn(queue.writable());
    }
    const stall = this.#hooks.onMessage(this, data);
    if (stall) this.stallOn(stall);
  }

  #wait<T>(
    list: Waiter<T>[],
    options: WaitOptions,
    what: string,
    onSettle?: () => void,
  ): Promise<T> {
    if (this.endedWith) return Promise.reject(this.endedWith);
    const timeout = options.timeout ?? DEFAULT_WAIT_SECONDS;
    const message = `no ${what} from ${this.uuid} within ${timeout} s`;
    return waitIn(list, { timeout, signal: options.signal }, message, onSettle);
  }
}
