/**
 * One device's connection after its handshake: the seed's `Client`.
 *
 * The manager owns the socket's read loop. Each message a device sends goes to
 * exactly one place first: a pending `recv`/`request` if there is one (the
 * seed's `connection_lock` pattern), otherwise to every iterator on this client
 * and to the manager's handlers and iterators.
 *
 * @module
 */

import type { Transport } from "./transport.ts";
import type { Logger } from "@logtape/logtape";
import { concatBytes } from "./bytes.ts";
import {
  ConnectionEnd,
  type EndReason,
  InvalidInfo,
  ProtocolError,
  TimeoutError,
} from "./errors.ts";
import type { HeartbeatTarget } from "./heartbeat.ts";
import type { WriteTarget } from "./watchdog.ts";
import { closeGracefully, FAREWELL_GRACE_MS } from "./graceful.ts";
import { Mutex } from "./mutex.ts";
import { Outbox } from "./outbox.ts";
import { readLoop, type ReadLoopOwner } from "./read_loop.ts";
import {
  decodeUtf8,
  type DeviceInfo,
  encodeEnd,
  encodeFrame,
  encodeMessage,
  END_TEXT,
  FrameDecoder,
  FrameType,
  type FrameTypeValue,
  GETINFO_BYTE,
  HEARTBEAT_BYTE,
  parseHandshake,
  partialBeatAtEnd,
  type ProtocolMode,
  splitMode1Chunk,
} from "./protocol/mod.ts";
import { HandshakeReader } from "./protocol/mod.ts";
import { AsyncQueue } from "./queue.ts";

/** Options for methods that wait for the device. */
export interface WaitOptions {
  /** Seconds to wait; `Infinity` waits for ever. @default 15 */
  readonly timeout?: number;
  /** Aborts the wait. */
  readonly signal?: AbortSignal;
}

/** Options for {@linkcode Client.messages}. */
export interface MessagesOfClientOptions {
  /** Messages held unread before reading from the device pauses. @default 1024 */
  readonly highWaterMark?: number;
  /** Ends the iterator when aborted. */
  readonly signal?: AbortSignal;
}

/** Options for {@linkcode Client.end}. */
export interface EndOptions {
  /** Why, for the logs and (mode 2) the device. @default "ended by the application" */
  readonly reason?: string;
  /** The seed's `raise_exception`: reject with {@linkcode ConnectionEnd} once ended. @default false */
  readonly raiseException?: boolean;
}

/**
 * A connected device, handed out by the manager once its handshake is done.
 * Iterate it for the device's messages; the iteration ends when it disconnects.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * manager.on("connect", async (client) => {
 *   await client.send("status");
 *   for await (const data of client) console.log(client.uuid, new TextDecoder().decode(data));
 * });
 * ```
 */
export interface Client extends AsyncIterable<Uint8Array>, AsyncDisposable {
  /** The device's UUID (lower case). */
  readonly uuid: string;
  /** The device's type, one of the manager's `validTypes`. */
  readonly type: string;
  /** The JSON object the device sent in its handshake (or last `getData()`). */
  readonly data: Record<string, unknown>;
  /** `{ uuid, type, data }`: the seed's `Data.get()` and `return_data()`. */
  readonly info: DeviceInfo;
  /** The device's address: the seed's `(IP, PORT)` pair. */
  readonly address: Deno.NetAddr;
  /** The protocol mode the device chose in its handshake. */
  readonly mode: ProtocolMode;
  /** True until the connection ends. */
  readonly connected: boolean;
  /** Resolves with the reason once the connection has ended. Never rejects. */
  readonly closed: Promise<ConnectionEnd>;
  /**
   * Sends one message. Resolves once written to the socket.
   *
   * @returns `true` if written, `false` if the connection is (or became) closed.
   */
  send(data: string | Uint8Array): Promise<boolean>;
  /**
   * Takes the next message the device sends, before handlers and iterators see it.
   *
   * @throws {TimeoutError} When nothing arrives in time (the connection stays open).
   * @throws {ConnectionEnd} When the connection ends first.
   */
  recv(options?: WaitOptions): Promise<Uint8Array>;
  /** {@linkcode Client.recv}, decoded as UTF-8. */
  recvString(options?: WaitOptions): Promise<string>;
  /**
   * Sends `data` and takes the device's next message as the answer. Requests on
   * one client run one at a time: the seed's `with client.connection_lock:`.
   *
   * @throws {TimeoutError} When no answer arrives in time.
   * @throws {ConnectionEnd} When the connection ends first.
   */
  request(data: string | Uint8Array, options?: WaitOptions): Promise<Uint8Array>;
  /** {@linkcode Client.request}, with the answer decoded as UTF-8. */
  requestString(data: string | Uint8Array, options?: WaitOptions): Promise<string>;
  /**
   * Asks the device for its info again (`getinfo`) and updates `data` (and
   * `type`). The UUID must stay the same.
   *
   * @throws {InvalidInfo} When the answer is malformed (the connection is then ended).
   * @throws {TimeoutError} When no answer arrives in time.
   */
  getData(options?: WaitOptions): Promise<DeviceInfo>;
  /**
   * Sends a heartbeat now and waits for the `beat`.
   *
   * @returns The round-trip time in milliseconds.
   * @throws {ConnectionEnd} When the device does not answer in time (it is then disconnected).
   */
  heartbeat(options?: WaitOptions): Promise<number>;
  /** Sends `end` and closes the connection. Idempotent. */
  end(options?: EndOptions): Promise<void>;
  /**
   * This device's messages as an async iterator, each iterator seeing every
   * message. When `highWaterMark` messages wait unread, reading from this
   * device pauses (it is not disconnected for missed heartbeats meanwhile).
   */
  messages(options?: MessagesOfClientOptions): AsyncIterableIterator<Uint8Array>;
}

/** How a connection reports to its manager. */
export interface ConnectionHooks {
  /** A message nobody `recv`ed; returns a promise when the consumer wants reads paused. */
  onMessage(connection: Connection, data: Uint8Array): Promise<void> | undefined;
  /** The connection ended (called once). */
  onClose(connection: Connection, end: ConnectionEnd): void;
  /** `getData()` changed the device's type or data. */
  onInfoChanged(connection: Connection, previousType: string): void;
}

/** Limits a connection enforces. */
export interface ConnectionLimits {
  readonly maxFrameSize: number;
  readonly maxBufferedBytes: number;
  readonly validTypes: readonly string[];
  /** Largest answer to `getinfo`, in bytes (the manager's `maxHandshakeSize`). */
  readonly maxHandshakeSize: number;
  /** Read buffer for mode 1, where one read is one message. */
  readonly mode1ReadSize: number;
  /** Smallest and largest read buffer in mode 2 (it grows while reads fill it). */
  readonly mode2ReadSize: readonly [min: number, max: number];
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

const DEFAULT_WAIT_SECONDS = 15;
const decoder = new TextDecoder();
const MODE1_HEARTBEAT = Uint8Array.of(HEARTBEAT_BYTE);
const MODE1_GETINFO = Uint8Array.of(GETINFO_BYTE);
const MODE1_END = new TextEncoder().encode(END_TEXT);
const MODE2_HEARTBEAT = encodeFrame(FrameType.HEARTBEAT);
const MODE2_GETINFO = encodeFrame(FrameType.GETINFO);

/** The manager's side of one device connection. Internal: users see {@linkcode Client}. */
export class Connection implements Client, HeartbeatTarget, WriteTarget, ReadLoopOwner {
  readonly address: Deno.NetAddr;
  readonly mode: ProtocolMode;
  heartbeatSentAt = 0;
  /** When the manager admitted it (`performance.now()`). */
  readonly admittedAt: number = performance.now();
  /** The address of the connection this one took the UUID from, if it did. */
  tookOverFrom: string | undefined;
  /** A UUID conflict on this UUID was logged already (once per chain of takeovers). */
  conflictLogged = false;
  #info: DeviceInfo;
  readonly #conn: Transport;
  readonly #hooks: ConnectionHooks;
  readonly #limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #outbox: Outbox;
  readonly #decoder: FrameDecoder | null;
  #lock: Mutex | null = null;
  // Created on first use: most devices never see a request, a `closed` await or an iterator.
  #closed: PromiseWithResolvers<ConnectionEnd> | null = null;
  #end: ConnectionEnd | null = null;
  #readPaused = false;
  /** Mode 1: the start of a `beat` the last read ended with, while a heartbeat is outstanding. */
  #heldBeat: Uint8Array | null = null;
  /** Mode 1: the newline the protocol allows after an answer may still arrive in the next read. */
  #afterAnswer = false;
  #recvWaiters: Waiter<Uint8Array>[] = [];
  #beatWaiters: Waiter<void>[] = [];
  #infoWaiter: (Waiter<DeviceInfo> & { reader: HandshakeReader }) | null = null;
  #iterators: Set<AsyncQueue<Uint8Array>> | null = null;
  #stalls: Promise<void>[] = [];
  #finished: Promise<void> | null = null;
  #peerClosed: PromiseWithResolvers<void> | null = null;
  #peerHasClosed = false;
  #shutdownDone: Promise<void> | null = null;
  /** Resolved by terminate(); created only while reading is paused for a consumer. */
  #ended: PromiseWithResolvers<void> | null = null;

  constructor(
    conn: Transport,
    mode: ProtocolMode,
    info: DeviceInfo,
    hooks: ConnectionHooks,
    limits: ConnectionLimits,
    log: Logger,
  ) {
    this.#conn = conn;
    this.address = conn.remoteAddr as Deno.NetAddr;
    this.mode = mode;
    this.#info = info;
    this.#hooks = hooks;
    this.#limits = limits;
    this.#log = log;
    // An INFO frame (a getData() answer) is a handshake answer: refused at its header if too big.
    this.#decoder = mode === 2
      ? new FrameDecoder(limits.maxFrameSize, { [FrameType.INFO]: limits.maxHandshakeSize })
      : null;
    this.#afterAnswer = mode === 1;
    this.#outbox = new Outbox(conn, {
      maxBufferedBytes: limits.maxBufferedBytes,
      // A TLS write completes as soon as rustls has encrypted it, within the sending task.
      coalesceWithinTask: "handshake" in conn,
      onError: (error, overflow) =>
        this.terminate(overflow ? "buffer-full" : "io", error.message, { farewell: false }),
    });
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
    return this.#end === null;
  }
  get closed(): Promise<ConnectionEnd> {
    if (!this.#closed) {
      this.#closed = Promise.withResolvers<ConnectionEnd>();
      if (this.#end) this.#closed.resolve(this.#end);
    }
    return this.#closed.promise;
  }
  get heartbeatPaused(): boolean {
    return this.#readPaused;
  }
  /** Resolves once the socket is closed and the read loop has exited. */
  get finished(): Promise<void> {
    return this.#finished ?? Promise.resolve();
  }

  /** Starts the read loop; `leftover` holds bytes that arrived with the handshake. */
  start(leftover: Uint8Array): void {
    // An idle connection holds its read buffer while the read is pending, so in mode 2
    // (where frames survive any split) it starts small and grows only while reads fill it.
    const [smallest, largest] = this.mode === 1
      ? [this.#limits.mode1ReadSize, this.#limits.mode1ReadSize]
      : this.#limits.mode2ReadSize;
    // The loop only exits once terminate() has run, so #shutdownDone is the real one by then.
    this.#finished = readLoop(this.#conn, this, { smallest, largest }, leftover)
      .then(() => this.#shutdownDone ?? undefined);
  }

  /** Queues already-encoded bytes for this connection's mode. Returns false when closed. */
  enqueue(bytes: Uint8Array): boolean {
    return this.#end === null && this.#outbox.enqueue(bytes);
  }

  async send(data: string | Uint8Array): Promise<boolean> {
    if (!this.enqueue(encodeMessage(data, this.mode))) return false;
    try {
      await this.#outbox.flushed();
      return true;
    } catch {
      return false;
    }
  }

  recv(options: WaitOptions = {}): Promise<Uint8Array> {
    return this.#wait(this.#recvWaiters, options, "a message");
  }

  async recvString(options?: WaitOptions): Promise<string> {
    return decoder.decode(await this.recv(options));
  }

  request(data: string | Uint8Array, options: WaitOptions = {}): Promise<Uint8Array> {
    return (this.#lock ??= new Mutex()).run(() => {
      const answer = this.#wait(this.#recvWaiters, options, "an answer");
      this.enqueue(encodeMessage(data, this.mode));
      return answer;
    });
  }

  async requestString(data: string | Uint8Array, options?: WaitOptions): Promise<string> {
    return decoder.decode(await this.request(data, options));
  }

  getData(options: WaitOptions = {}): Promise<DeviceInfo> {
    return (this.#lock ??= new Mutex()).run(async () => {
      const holder: Waiter<DeviceInfo>[] = [];
      const answer = this.#wait(holder, options, "handshake info", () => {
        this.#infoWaiter = null;
      });
      this.#infoWaiter = {
        ...holder[0],
        reader: new HandshakeReader({
          validTypes: this.#limits.validTypes,
          maxSize: this.#limits.maxHandshakeSize,
          mode: 1,
        }),
      };
      this.enqueue(this.mode === 1 ? MODE1_GETINFO : MODE2_GETINFO);
      let info: DeviceInfo;
      try {
        info = await answer;
      } catch (error) {
        if (error instanceof InvalidInfo) {
          this.terminate("protocol", `invalid getinfo answer: ${error.message}`);
        }
        throw error;
      } finally {
        this.#infoWaiter = null;
      }
      if (info.uuid !== this.#info.uuid) {
        const error = new InvalidInfo(
          "uuid",
          `getinfo answer changed the UUID from ${this.#info.uuid} to ${info.uuid}`,
        );
        this.terminate("protocol", error.message);
        throw error;
      }
      const previousType = this.#info.type;
      this.#info = info;
      this.#hooks.onInfoChanged(this, previousType);
      return info;
    });
  }

  async heartbeat(options: WaitOptions = {}): Promise<number> {
    const started = performance.now();
    const beat = this.#wait(this.#beatWaiters, options, "a beat");
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
    if (this.#end) queue.stop();
    else (this.#iterators ??= new Set()).add(queue);
    return queue[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.messages();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }

  sendHeartbeat(): void {
    this.enqueue(this.mode === 1 ? MODE1_HEARTBEAT : MODE2_HEARTBEAT);
  }

  get writeStartedAt(): number {
    return this.#outbox.writeStartedAt;
  }

  writeTimedOut(timeoutSeconds: number): void {
    this.terminate("write-timeout", `a write made no progress for ${timeoutSeconds} s`, {
      farewell: false,
    });
  }

  heartbeatMissed(timeoutSeconds: number): void {
    this.terminate("heartbeat", `no beat within ${timeoutSeconds} s of a heartbeat`);
  }

  /**
   * Ends the connection for `reason`; the first call wins. Sends `end` first
   * (unless `farewell` is false) with a short grace for it to be written.
   *
   * @returns The end, as handlers and `closed` see it.
   */
  terminate(
    reason: EndReason,
    message: string,
    options: { farewell?: boolean } = {},
  ): ConnectionEnd {
    if (this.#end) return this.#end;
    const end = new ConnectionEnd(reason, message);
    this.#end = end;
    const level = reason === "kicked" || reason === "manager-closed" || reason === "closed"
      ? "debug"
      : "info";
    this.#log[level]("Device {uuid} ({type}) disconnected: {reason}: {message}", {
      uuid: this.uuid,
      type: this.type,
      reason,
      message,
      address: `${this.address.hostname}:${this.address.port}`,
    });
    for (const waiter of this.#recvWaiters.splice(0)) waiter.reject(end);
    for (const waiter of this.#beatWaiters.splice(0)) waiter.reject(end);
    this.#infoWaiter?.reject(end);
    for (const queue of [...this.#iterators ?? []]) queue.stop();
    this.#closed?.resolve(end);
    this.#ended?.resolve();
    this.#hooks.onClose(this, end);
    const farewell = options.farewell ?? !(reason === "closed" || reason === "io");
    this.#shutdownDone = this.#shutdown(farewell ? this.#farewell(message) : null);
    return end;
  }

  #farewell(message: string): Uint8Array {
    return this.mode === 1 ? MODE1_END : encodeEnd(this.#end!.reason, message);
  }

  #shutdown(farewell: Uint8Array | null): Promise<void> {
    return closeGracefully({
      conn: this.#conn,
      outbox: this.#outbox,
      farewell,
      halfClose: farewell !== null,
      peerClosed: () =>
        this.#peerHasClosed
          ? Promise.resolve()
          : (this.#peerClosed ??= Promise.withResolvers()).promise,
      reason: this.#end!,
      graceMs: FAREWELL_GRACE_MS,
    });
  }

  // The read loop's side of this connection (lib/read_loop.ts); not part of `Client`.

  /** @internal True once the connection has ended. */
  get ended(): boolean {
    return this.#end !== null;
  }

  /** @internal Bytes from the device. */
  received(chunk: Uint8Array): void {
    this.#onBytes(chunk);
  }

  /** @internal The device closed its end. */
  peerClosed(): void {
    this.#peerHasClosed = true;
    this.#peerClosed?.resolve();
  }

  /** @internal The device closed while the connection was open. */
  peerLeft(): void {
    if (this.#decoder?.partial) {
      this.#log.warn("Device {uuid} closed the connection in the middle of a frame", {
        uuid: this.uuid,
        reason: "closed",
      });
    }
    this.terminate("closed", "the device closed the connection");
  }

  /** @internal What reading waits for: the consumers the last bytes filled up. */
  takeStall(): Promise<unknown> | undefined {
    if (this.#stalls.length === 0) return undefined;
    const stalls = this.#stalls;
    this.#stalls = [];
    return stalls.length === 1 ? stalls[0] : Promise.all(stalls);
  }

  /** @internal Reading paused for the consumers (no heartbeat verdict meanwhile). */
  paused(paused: boolean): void {
    this.#readPaused = paused;
  }

  /** @internal Resolves when the connection ends. */
  whenEnded(): Promise<void> {
    return (this.#ended ??= Promise.withResolvers()).promise;
  }

  /** @internal Reading failed. */
  failed(message: string, error: unknown, internal: boolean): void {
    if (internal) {
      this.#log.error("Reading from {uuid} failed unexpectedly: {error}", {
        uuid: this.uuid,
        error,
      });
    }
    this.terminate("io", message, { farewell: false });
  }

  #onBytes(chunk: Uint8Array): void {
    if (this.#decoder) {
      try {
        this.#decoder.push(chunk, (type, payload) => this.#onFrame(type, payload));
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.#log.warn("Device {uuid} broke the protocol: {message}", {
          uuid: this.uuid,
          reason: error.reason,
          message: error.message,
        });
        this.terminate("protocol", error.message);
      }
      return;
    }
    this.#onMode1Chunk(chunk.slice());
  }

  #onMode1Chunk(chunk: Uint8Array): void {
    if (this.#afterAnswer) {
      let skip = 0;
      while (chunk[skip] === 0x0d || chunk[skip] === 0x0a) skip++;
      if (skip < chunk.length) this.#afterAnswer = false;
      chunk = chunk.subarray(skip);
    }
    if (this.#heldBeat) {
      chunk = concatBytes([this.#heldBeat, chunk]);
      this.#heldBeat = null;
    }
    const pending = this.heartbeatSentAt !== 0;
    let { beat, message: data } = splitMode1Chunk(chunk, pending);
    if (beat) this.#onBeat();
    else if (pending) {
      // A `beat` cut by a read boundary: hold its start until the next read.
      const held = partialBeatAtEnd(data);
      if (held > 0) {
        this.#heldBeat = data.slice(data.length - held);
        data = data.subarray(0, data.length - held);
      }
    }
    if (data.length === 0) return;
    if (this.#infoWaiter) {
      // The answer to getinfo; bytes after it in the same read are the device's next message.
      const waiter = this.#infoWaiter;
      try {
        const scan = waiter.reader.push(data);
        if (scan.status === "incomplete") return;
        waiter.resolve(scan.info);
        this.#afterAnswer = scan.leftover.length === 0;
        if (scan.leftover.length > 0) this.#deliver(scan.leftover);
      } catch (error) {
        waiter.reject(error as Error);
      }
      return;
    }
    this.#deliver(data);
  }

  #onFrame(type: FrameTypeValue, payload: Uint8Array): void {
    switch (type) {
      case FrameType.DATA:
        return this.#deliver(payload);
      case FrameType.BEAT:
        return this.#onBeat();
      case FrameType.END: {
        const why = decoder.decode(payload);
        this.terminate("ended", why ? `the device ended: ${why}` : "the device ended", {
          farewell: false,
        });
        return;
      }
      case FrameType.INFO: {
        const waiter = this.#infoWaiter;
        if (!waiter) {
          this.#log.debug("Device {uuid} sent unrequested info; ignored", { uuid: this.uuid });
          return;
        }
        try {
          waiter.resolve(parseHandshake(decodeUtf8(payload), this.#limits.validTypes));
        } catch (error) {
          waiter.reject(error as Error);
        }
        return;
      }
      default:
        this.#log.warn(
          "Device {uuid} sent frame type {frameType}, not allowed after the handshake",
          {
            uuid: this.uuid,
            frameType: type,
          },
        );
        this.terminate(
          "protocol",
          `frame type 0x${type.toString(16)} is not allowed from a device here`,
        );
    }
  }

  #onBeat(): void {
    if (this.heartbeatSentAt === 0 && this.#beatWaiters.length === 0) {
      this.#log.debug("Device {uuid} sent an unprompted beat; ignored", {
        uuid: this.uuid,
        reason: "unprompted-beat",
      });
      return;
    }
    this.heartbeatSentAt = 0;
    for (const waiter of this.#beatWaiters.splice(0)) waiter.resolve();
  }

  #deliver(data: Uint8Array): void {
    if (data.length === 0 && this.mode === 1) return;
    const waiter = this.#recvWaiters.shift();
    if (waiter) return waiter.resolve(data);
    for (const queue of this.#iterators ?? []) {
      if (!queue.push(data)) this.#stalls.push(queue.writable());
    }
    const stall = this.#hooks.onMessage(this, data);
    if (stall) this.#stalls.push(stall);
  }

  #wait<T>(
    list: Waiter<T>[],
    options: WaitOptions,
    what: string,
    onSettle?: () => void,
  ): Promise<T> {
    if (this.#end) return Promise.reject(this.#end);
    const seconds = options.timeout ?? DEFAULT_WAIT_SECONDS;
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abort = () => settle(() => reject(options.signal!.reason));
    const settle = (finish: () => void) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", abort);
      const index = list.indexOf(waiter);
      if (index >= 0) list.splice(index, 1);
      onSettle?.();
      finish();
    };
    const waiter: Waiter<T> = {
      resolve: (value) => settle(() => resolve(value)),
      reject: (error) => settle(() => reject(error)),
    };
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    options.signal?.addEventListener("abort", abort, { once: true });
    if (Number.isFinite(seconds)) {
      timer = setTimeout(
        () =>
          waiter.reject(
            new TimeoutError(`no ${what} from ${this.uuid} within ${seconds} s`),
          ),
        seconds * 1000,
      );
    }
    list.push(waiter);
    return promise;
  }
}
