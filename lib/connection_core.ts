/**
 * What both ends of a connection share, written once: the socket and its
 * send buffer ({@linkcode Outbox}), the read loop (`read_loop.ts`), cutting
 * the bytes into messages for the connection's protocol mode (frames in mode
 * 2, reads in mode 1), pausing reads while the application is behind, and
 * ending: the first `terminate()` wins, says goodbye if asked and closes
 * gracefully (`graceful.ts`).
 *
 * The manager's `Connection` (lib/connection.ts) and the device's `Link`
 * (lib/link.ts) extend it with what differs by role: what a frame means, who
 * is told when the connection ends, and which goodbye is said.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Transport } from "./transport.ts";
import { ConnectionEnd, type EndReason, ProtocolError } from "./errors.ts";
import { closeGracefully, FAREWELL_GRACE_MS } from "./graceful.ts";
import { Outbox } from "./outbox.ts";
import { readLoop, type ReadLoopOwner } from "./read_loop.ts";
import { FrameDecoder, type FrameTypeValue, parseEnd, type ProtocolMode } from "./protocol/mod.ts";

/** What a connection enforces, at either end. */
export interface CoreLimits {
  /** Largest frame payload accepted from the peer, in bytes (mode 2). */
  readonly maxFrameSize: number;
  /** Lower limits for some frame types (e.g. an `INFO` answer), in bytes. */
  readonly frameLimits?: Readonly<Record<number, number>>;
  /** Bytes queued unsent before the connection ends with reason `buffer-full`. */
  readonly maxBufferedBytes: number;
}

/** Read buffer sizes, in bytes: see `readLoop`. */
export interface ReadSizes {
  readonly smallest: number;
  readonly largest: number;
}

/** How `terminate` ends a connection. */
export interface TerminateOptions {
  /**
   * Say goodbye first and close gracefully (half-close, then wait for the peer
   * within {@linkcode FAREWELL_GRACE_MS}). @default true, except for reasons
   * `closed` and `io`, where the peer is gone or the socket is broken.
   */
  readonly farewell?: boolean;
  /** What caused the end, kept on the {@linkcode ConnectionEnd}. */
  readonly cause?: Error;
}

/** One connection's socket, read loop, framing and ending; extended by each end's role. */
export abstract class ConnectionCore implements ReadLoopOwner {
  /** The protocol mode the connection speaks. */
  readonly mode: ProtocolMode;
  protected readonly conn: Transport;
  protected readonly outbox: Outbox;
  protected abstract readonly log: Logger;
  readonly #decoder: FrameDecoder | null;
  #end: ConnectionEnd | null = null;
  /** The read loop, from `startReading` (the loop itself: no promise chained per connection). */
  #reading: Promise<void> | null = null;
  #shutdownDone: Promise<void> | null = null;
  #peerClosed: PromiseWithResolvers<void> | null = null;
  #peerHasClosed = false;
  /** Resolved by terminate(); created only while reading is paused for a consumer. */
  #ended: PromiseWithResolvers<void> | null = null;
  /** What reading waits for after the current bytes; `null` while nothing (the usual case). */
  #stalls: Promise<unknown>[] | null = null;
  #readPaused = false;

  constructor(conn: Transport, mode: ProtocolMode, limits: CoreLimits) {
    this.conn = conn;
    this.mode = mode;
    this.#decoder = mode === 2 ? new FrameDecoder(limits.maxFrameSize, limits.frameLimits) : null;
    this.outbox = new Outbox(conn, {
      maxBufferedBytes: limits.maxBufferedBytes,
      onError: (error, overflow) =>
        this.terminate(overflow ? "buffer-full" : "io", error.message, { farewell: false }),
    });
  }

  /** Why the connection ended; `null` while it is open. */
  get endedWith(): ConnectionEnd | null {
    return this.#end;
  }

  /** True while reading is paused because the application is behind. */
  get readPaused(): boolean {
    return this.#readPaused;
  }

  /** Resolves once the socket is closed and the read loop has exited. */
  get finished(): Promise<void> {
    // The loop only exits once terminate() has run, so #shutdownDone is the real one by then.
    return this.#reading?.then(() => this.#shutdownDone ?? undefined) ?? Promise.resolve();
  }

  /** Starts the read loop; `first` holds bytes that arrived before it (with the handshake). */
  protected startReading(sizes: ReadSizes, first?: Uint8Array): void {
    this.#reading = readLoop(this.conn, this, sizes, first);
  }

  /** Queues already-encoded bytes. Returns false once the connection has ended. */
  enqueue(bytes: Uint8Array): boolean {
    return this.#end === null && this.outbox.enqueue(bytes);
  }

  /** Resolves `true` once everything queued is written, `false` if the connection ended first. */
  async flushed(): Promise<boolean> {
    try {
      await this.outbox.flushed();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Ends the connection for `reason`; the first call wins. Tells the role
   * ({@linkcode ConnectionCore.onEnded}), then says goodbye (unless `farewell`
   * is false) and closes gracefully.
   *
   * @returns The end, as the first call made it.
   */
  terminate(reason: EndReason, message: string, options: TerminateOptions = {}): ConnectionEnd {
    if (this.#end) return this.#end;
    const end = new ConnectionEnd(reason, message, { cause: options.cause });
    this.#end = end;
    this.onEnded(end);
    this.#ended?.resolve();
    const graceful = (options.farewell ?? !(reason === "closed" || reason === "io")) &&
      this.mayCloseGracefully();
    this.#shutdownDone = closeGracefully({
      conn: this.conn,
      outbox: this.outbox,
      farewell: graceful ? this.goodbye(end) : null,
      halfClose: graceful,
      peerClosed: () =>
        this.#peerHasClosed
          ? Promise.resolve()
          : (this.#peerClosed ??= Promise.withResolvers()).promise,
      reason: end,
      graceMs: FAREWELL_GRACE_MS,
    });
    return end;
  }

  // What each end defines.

  /** The connection ended (called once, from the first `terminate`). */
  protected abstract onEnded(end: ConnectionEnd): void;
  /** The goodbye to write before closing (`END`, `end\n`), or `null` for none. */
  protected abstract goodbye(end: ConnectionEnd): Uint8Array | null;
  /** A mode-2 frame from the peer. */
  protected abstract onFrame(type: FrameTypeValue, payload: Uint8Array): void;
  /** A mode-1 read from the peer (a view into the read buffer: copy what is kept). */
  protected abstract onMode1(chunk: Uint8Array): void;
  /** The peer closed its end while the connection was open. */
  protected abstract onPeerLeft(): void;
  /** The device's UUID, at either end: every log record carries it. */
  abstract get uuid(): string;
  /** Who the peer is, for the log (`"Device 1862cfe1-…"`, `"The manager"`). */
  protected abstract get peerName(): string;

  /** Whether a goodbye and a half-close make sense now. @default true */
  protected mayCloseGracefully(): boolean {
    return true;
  }

  /**
   * Reads the peer's `END` payload: `reason: message` from a peer that gives a
   * reason code (`encodeEnd`), else free text.
   *
   * @returns The code, if any, and what the peer said, whole.
   */
  protected readGoodbye(payload: Uint8Array): { reason?: string; said: string } {
    const { reason, message } = parseEnd(payload);
    return { reason, said: reason ? `${reason}: ${message}` : message };
  }

  /** A frame type this end does not accept from its peer here: a protocol error. */
  protected rejectFrame(type: number, where: string): void {
    this.protocolError(`frame type 0x${type.toString(16)} is not allowed ${where}`);
  }

  /** Cuts bytes from the peer into the mode's messages. */
  protected decode(bytes: Uint8Array, length: number = bytes.length): void {
    if (!this.#decoder) return this.onMode1(bytes.subarray(0, length));
    try {
      // The connection itself receives the frames: no closure per read on this hot path.
      this.#decoder.push(bytes, this, length);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.protocolError(error.message, error.reason);
    }
  }

  /** The peer broke the protocol: logged with the reason, and the connection ends (`protocol`). */
  protected protocolError(message: string, reason: string = "protocol"): void {
    this.log.warn("{peer} broke the protocol: {message}", {
      peer: this.peerName,
      uuid: this.uuid,
      reason,
      message,
    });
    this.terminate("protocol", message);
  }

  /** Reading waits for `promise` (an application that is behind) after the current bytes. */
  protected stallOn(promise: Promise<unknown>): void {
    (this.#stalls ??= []).push(promise);
  }

  // The read loop's side (lib/read_loop.ts).

  /** @internal True once the connection has ended. */
  get ended(): boolean {
    return this.#end !== null;
  }

  /** @internal Bytes from the peer: the first `length` of `bytes`. */
  received(bytes: Uint8Array, length: number): void {
    this.decode(bytes, length);
  }

  /** @internal A frame the decoder completed (mode 2). */
  frame(type: FrameTypeValue, payload: Uint8Array): void {
    // Once ended (an END, an offence), the frames after it in the same read go nowhere.
    if (this.#end === null) this.onFrame(type, payload);
  }

  /** @internal The peer closed its end. */
  peerClosed(): void {
    this.#peerHasClosed = true;
    this.#peerClosed?.resolve();
  }

  /** @internal The peer closed while the connection was open. */
  peerLeft(): void {
    if (this.#decoder?.partial) {
      this.log.warn("{peer} closed the connection in the middle of a frame", {
        peer: this.peerName,
        uuid: this.uuid,
        reason: "closed",
      });
    }
    this.onPeerLeft();
  }

  /** @internal What reading waits for: the consumers the last bytes filled up. */
  takeStall(): Promise<unknown> | undefined {
    const stalls = this.#stalls;
    if (stalls === null) return undefined;
    this.#stalls = null;
    return stalls.length === 1 ? stalls[0] : Promise.all(stalls);
  }

  /** @internal Reading paused for the consumers (no liveness verdict meanwhile). */
  paused(paused: boolean): void {
    this.#readPaused = paused;
  }

  /** @internal Resolves when the connection ends. */
  whenEnded(): Promise<void> {
    if (this.#end) return Promise.resolve();
    return (this.#ended ??= Promise.withResolvers()).promise;
  }

  /** @internal Reading failed. */
  failed(message: string, error: unknown, internal: boolean): void {
    if (internal) {
      this.log.error("The connection with {peer} failed unexpectedly: {error}", {
        peer: this.peerName,
        uuid: this.uuid,
        error,
      });
    }
    this.terminate("io", message, { farewell: false });
  }
}
