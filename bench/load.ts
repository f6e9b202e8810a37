/**
 * The load generator: thousands of raw sockets in one process, written for
 * speed rather than with the library's {@linkcode Device} class. Each socket
 * has one reusable read buffer and a few counters; frames are cut in place
 * without copying payloads; heartbeats are answered with preallocated bytes,
 * and (mode 2 with `ack`) each `MESSAGE` with an `ACK` written into one of two
 * buffers per socket that take turns.
 *
 * {@linkcode Fleet} holds what every kind of client shares (the connect
 * window, delivery targets, closing); {@linkcode DeviceFleet} speaks the
 * iot-manager protocol in mode 1 or 2 (or nothing, for the bare server), and
 * `mqtt.ts` adds MQTT.
 *
 * @module
 */

import type { ProtocolMode } from "@iot-manager/core";
import {
  ACK_ID_SIZE,
  encodeAck,
  encodeFeatures,
  encodeFrame,
  encodeHandshake,
  FRAME_HEADER_SIZE,
  FrameType,
} from "@iot-manager/core/protocol";
import { connectTransport } from "../lib/transport.ts";
import { within } from "./control.ts";
import { PAYLOAD_SIZE, wallClock } from "./wire.ts";

/** Where a fleet connects. */
export interface Endpoint {
  readonly port: number;
  /** CA certificates to connect with TLS. */
  readonly caCerts?: readonly string[];
  /**
   * Connect from this loopback address (e.g. `127.0.0.12`), through `node:net`
   * (`Deno.connect` cannot choose it): one source address has about 28,000
   * ports to one destination, so a larger fleet spreads over several
   * (`bench --scale`).
   */
  readonly localAddress?: string;
}

/** State every client socket has. */
export class FleetSocket {
  /** Messages counted so far. */
  received = 0;
  /** Count at which this socket is done for the current phase. */
  target = Infinity;
  /** False once the socket has closed. */
  open = true;
  /** Resolves when the socket is ready for the benchmark (handshake done). */
  readonly ready: PromiseWithResolvers<void> = Promise.withResolvers<void>();

  constructor(
    readonly conn: Deno.Conn,
    readonly index: number,
    readonly buffer: Uint8Array,
  ) {}
}

/** How long a connect phase took. */
export interface ConnectTiming {
  readonly startedAt: number;
  readonly seconds: number;
}

const READ_BUFFER_SIZE = 16 * 1024;

/**
 * Many client sockets and the bookkeeping to know when each got what it was
 * sent: `expect()` sets a per-socket target and resolves (with the wall-clock
 * time) when the last socket reaches its own.
 */
export abstract class Fleet<S extends FleetSocket> implements AsyncDisposable {
  readonly sockets: S[] = [];
  /** Sockets the server closed while the fleet was not closing. */
  serverClosed = 0;
  readonly #endpoint: Endpoint;
  readonly #loops: Promise<void>[] = [];
  #closing = false;
  #pending = 0;
  #waiter: PromiseWithResolvers<number> | null = null;

  constructor(endpoint: Endpoint) {
    this.#endpoint = endpoint;
  }

  /** Wraps a fresh connection; called once per socket. */
  protected abstract create(conn: Deno.Conn, index: number, buffer: Uint8Array): S;
  /** Starts the socket's handshake, if its protocol has one. */
  protected abstract greet(socket: S): void;
  /** Handles `count` new bytes in `socket.buffer`. */
  protected abstract onBytes(socket: S, count: number): void;

  /** Number of sockets. */
  get size(): number {
    return this.sockets.length;
  }

  /** Sockets still short of their target, for error messages. */
  get progress(): string {
    return `${this.#pending} of ${this.sockets.length} sockets still short of their target`;
  }

  /**
   * Opens `count` more sockets, at most `concurrency` handshakes at a time,
   * and resolves once every one is ready.
   */
  async connect(
    count: number,
    options: {
      concurrency: number;
      timeoutMs: number;
      /** Connect these sockets here rather than to the fleet's endpoint (another cluster node). */
      endpoint?: Endpoint;
    },
  ): Promise<ConnectTiming> {
    const startedAt = wallClock();
    const first = this.sockets.length;
    const endpoint = options.endpoint ?? this.#endpoint;
    let next = first;
    const end = first + count;
    const worker = async (): Promise<void> => {
      while (next < end) {
        const socket = await this.#open(next++, endpoint);
        await socket.ready.promise;
      }
    };
    const workers = Array.from({ length: Math.min(options.concurrency, count) }, worker);
    await within(Promise.all(workers), options.timeoutMs, `connecting ${count} sockets`);
    return { startedAt, seconds: (wallClock() - startedAt) / 1000 };
  }

  /**
   * Sets a target of `perSocket` more messages on every socket `include`
   * accepts; resolves with the wall-clock time the last of them reached it.
   */
  expect(perSocket: number, include: (socket: S) => boolean = () => true): Promise<number> {
    this.#waiter = Promise.withResolvers<number>();
    this.#pending = 0;
    for (const socket of this.sockets) {
      if (socket.open && include(socket)) {
        socket.target = socket.received + perSocket;
        this.#pending++;
      } else {
        socket.target = Infinity;
      }
    }
    if (this.#pending === 0) this.#waiter.resolve(wallClock());
    return this.#waiter.promise;
  }

  /** Waits for an `expect()`, failing after `timeoutMs` with how far it got. */
  async arrival(expected: Promise<number>, timeoutMs: number, what: string): Promise<number> {
    try {
      return await within(expected, timeoutMs, what);
    } catch (error) {
      throw new Error(`${(error as Error).message} (${this.progress})`);
    }
  }

  /** Writes the same bytes to every open socket. */
  writeEach(bytes: Uint8Array): void {
    for (const socket of this.sockets) if (socket.open) this.write(socket, bytes);
  }

  /** Writes bytes to one socket without waiting; a failed write shows up as a close. */
  write(socket: FleetSocket, bytes: Uint8Array): void {
    socket.conn.write(bytes).then((written) => {
      if (written < bytes.length) return writeRest(socket.conn, bytes.subarray(written));
    }).catch(() => {});
  }

  /** Counts `count` messages for `socket` against its target. */
  protected delivered(socket: S, count: number): void {
    socket.received += count;
    if (socket.received >= socket.target) {
      socket.target = Infinity;
      if (--this.#pending === 0) this.#waiter?.resolve(wallClock());
    }
  }

  /** Closes every socket and waits for their read loops to end. Idempotent. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const socket of this.sockets) {
      try {
        socket.conn.close();
      } catch { /* closed by the server */ }
    }
    await Promise.all(this.#loops);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #open(index: number, endpoint: Endpoint): Promise<S> {
    const { port, caCerts, localAddress } = endpoint;
    const conn = localAddress
      // The library's node:net transport has the part of Deno.Conn the fleet uses.
      ? await connectTransport({ hostname: "127.0.0.1", port, localAddress }) as Deno.Conn
      : caCerts
      ? await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [...caCerts] })
      : await Deno.connect({ hostname: "127.0.0.1", port });
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const socket = this.create(conn, index, new Uint8Array(READ_BUFFER_SIZE));
    this.sockets.push(socket);
    this.#loops.push(this.#read(socket));
    this.greet(socket);
    return socket;
  }

  async #read(socket: S): Promise<void> {
    const { conn, buffer } = socket;
    try {
      while (true) {
        const count = await conn.read(buffer);
        if (count === null) break;
        this.onBytes(socket, count);
      }
    } catch { /* reset, or closed by us */ }
    socket.open = false;
    if (!this.#closing) {
      this.serverClosed++;
      socket.ready.reject(new Error(`socket ${socket.index} closed by the server`));
      socket.ready.promise.catch(() => {});
      if (socket.target !== Infinity) {
        this.#waiter?.reject(new Error(`socket ${socket.index} closed before its messages came`));
      }
    }
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

async function writeRest(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

const ACK_FRAME = encodeAck(0);
const ACK_FRAME_SIZE = FRAME_HEADER_SIZE + ACK_ID_SIZE;
/** ACKs a socket's buffers hold at first; one that fills up is replaced by one twice the size. */
const ACKS_AT_FIRST = 32;

/**
 * The `ACK`s a device owes, written once per read: they are filled into one
 * buffer while the other is being written, so at most one write is in flight
 * and the bytes it holds are never overwritten.
 */
class AckOutbox {
  #filling = new Uint8Array(ACK_FRAME_SIZE * ACKS_AT_FIRST);
  #writing = new Uint8Array(ACK_FRAME_SIZE * ACKS_AT_FIRST);
  #length = 0;
  #busy = false;

  constructor(readonly conn: Deno.Conn) {}

  /** Queues the `ACK` for the `MESSAGE` with this id. */
  add(id: number): void {
    if (this.#length + ACK_FRAME_SIZE > this.#filling.length) {
      const larger = new Uint8Array(this.#filling.length * 2);
      larger.set(this.#filling.subarray(0, this.#length));
      this.#filling = larger;
    }
    const bytes = this.#filling;
    const at = this.#length + FRAME_HEADER_SIZE;
    bytes.set(ACK_FRAME, this.#length);
    bytes[at] = id >>> 24;
    bytes[at + 1] = id >>> 16;
    bytes[at + 2] = id >>> 8;
    bytes[at + 3] = id;
    this.#length += ACK_FRAME_SIZE;
  }

  /** Writes what is queued, unless a write is in flight (its end writes the rest). */
  flush(): void {
    if (!this.#busy && this.#length > 0) this.#pump();
  }

  async #pump(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#length > 0) {
        const bytes = this.#filling.subarray(0, this.#length);
        [this.#filling, this.#writing] = [this.#writing, this.#filling];
        this.#length = 0;
        let offset = 0;
        while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
      }
    } catch { /* a failed write shows up as a close */ }
    this.#busy = false;
  }
}

/** One device socket: frame-cutting state on top of the counters. */
export class DeviceSocket extends FleetSocket {
  /** The handshake answer, until the manager's `getinfo` byte has been answered. */
  answer: Uint8Array | null = null;
  /** Mode 2: type of the frame being read, header bytes seen, payload bytes left. */
  frameType = 0;
  headerSeen = 0;
  frameLength = 0;
  payloadLeft = 0;
  /** Mode 2, a `MESSAGE` being read: bytes of its id still to come, and the id so far. */
  idLeft = 0;
  messageId = 0;
  /** Mode 2 with `ack`: the `ACK`s owed; `null` for a device that does not use the feature. */
  acks: AckOutbox | null = null;
  /** Mode 1: application bytes received (messages have no boundaries there). */
  messageBytes = 0;
  /** Heartbeats answered. */
  beats = 0;

  constructor(
    conn: Deno.Conn,
    index: number,
    buffer: Uint8Array,
    readonly type: "light" | "lock",
    readonly uuid: string,
  ) {
    super(conn, index, buffer);
  }
}

const MODE2_BEAT = encodeFrame(FrameType.BEAT);
const FEATURES_ACK = encodeFeatures(["ack"]);
const MODE1_BEAT = new TextEncoder().encode("beat");
const GETINFO_BYTE = 0x01;
const HEARTBEAT_BYTE = 0x02;

/**
 * Devices speaking the iot-manager protocol (or, with `handshake: false`,
 * plain sockets that only count what a bare server writes to them). With
 * `acks` (mode 2), each device sends `FEATURES` `["ack"]` right after
 * `WELCOME` and answers every `MESSAGE` with its `ACK`; without, it announces
 * nothing, as a device written before features existed.
 */
export class DeviceFleet extends Fleet<DeviceSocket> {
  readonly mode: ProtocolMode;
  readonly #handshake: boolean;
  readonly #acks: boolean;

  constructor(
    endpoint: Endpoint,
    options: { mode: ProtocolMode; handshake: boolean; acks?: boolean },
  ) {
    super(endpoint);
    this.mode = options.mode;
    this.#handshake = options.handshake;
    this.#acks = options.acks ?? false;
    if (this.#acks && !(options.mode === 2 && options.handshake)) {
      throw new Error("acknowledged delivery needs mode 2 and the manager's handshake");
    }
  }

  /** Heartbeats answered by every socket so far. */
  get beats(): number {
    let beats = 0;
    for (const socket of this.sockets) beats += socket.beats;
    return beats;
  }

  protected create(conn: Deno.Conn, index: number, buffer: Uint8Array): DeviceSocket {
    const type = index % 2 === 0 ? "light" : "lock";
    const socket = new DeviceSocket(conn, index, buffer, type, crypto.randomUUID());
    if (this.#handshake) {
      const info = { uuid: socket.uuid, type: socket.type, data: { n: index } };
      socket.answer = encodeHandshake(info, this.mode);
    }
    return socket;
  }

  protected greet(socket: DeviceSocket): void {
    // The manager speaks first; mode 1 has no acknowledgement, so a mode-1 socket is
    // ready once it has answered (the bench then waits for the manager's count).
    if (!this.#handshake) socket.ready.resolve();
  }

  protected onBytes(socket: DeviceSocket, count: number): void {
    let offset = 0;
    if (socket.answer !== null) {
      if (socket.buffer[0] !== GETINFO_BYTE) {
        const got = socket.buffer[0].toString(16);
        socket.ready.reject(new Error(`expected getinfo (0x01) first, got 0x${got}`));
        socket.conn.close();
        return;
      }
      this.write(socket, socket.answer);
      socket.answer = null;
      if (this.mode === 1) socket.ready.resolve();
      offset = 1;
    }
    if (this.mode === 2) {
      this.#onFrames(socket, offset, count);
      socket.acks?.flush();
    } else {
      this.#onMode1(socket, offset, count);
    }
  }

  /** Cuts mode-2 frames in place; payloads are skipped, only counted. */
  #onFrames(socket: DeviceSocket, start: number, count: number): void {
    const buffer = socket.buffer;
    let offset = start;
    while (offset < count) {
      if (socket.payloadLeft > 0) {
        if (socket.idLeft > 0) {
          // A MESSAGE's id, which a read may cut anywhere: a byte at a time.
          socket.messageId = socket.messageId * 256 + buffer[offset++];
          socket.idLeft--;
          socket.payloadLeft--;
        } else {
          const take = Math.min(socket.payloadLeft, count - offset);
          socket.payloadLeft -= take;
          offset += take;
        }
        if (socket.payloadLeft === 0) this.#onFrame(socket, socket.frameType);
        continue;
      }
      if (socket.headerSeen === 0 && offset + 5 <= count) {
        socket.frameType = buffer[offset];
        socket.frameLength = ((buffer[offset + 1] << 24) | (buffer[offset + 2] << 16) |
          (buffer[offset + 3] << 8) | buffer[offset + 4]) >>> 0;
        offset += 5;
      } else {
        const byte = buffer[offset++];
        if (socket.headerSeen === 0) socket.frameType = byte;
        else socket.frameLength = socket.frameLength * 256 + byte;
        if (++socket.headerSeen < 5) continue;
        socket.headerSeen = 0;
      }
      if (socket.frameType === FrameType.MESSAGE) {
        socket.idLeft = Math.min(ACK_ID_SIZE, socket.frameLength);
        socket.messageId = 0;
      }
      if (socket.frameLength === 0) this.#onFrame(socket, socket.frameType);
      else socket.payloadLeft = socket.frameLength;
      socket.frameLength = 0;
    }
  }

  #onFrame(socket: DeviceSocket, type: number): void {
    switch (type) {
      case FrameType.DATA:
        return this.delivered(socket, 1);
      case FrameType.MESSAGE:
        socket.acks?.add(socket.messageId);
        return this.delivered(socket, 1);
      case FrameType.HEARTBEAT:
        socket.beats++;
        return this.write(socket, MODE2_BEAT);
      case FrameType.WELCOME:
        if (this.#acks) {
          // FEATURES must be the first frame after WELCOME, before any BEAT.
          this.write(socket, FEATURES_ACK);
          socket.acks = new AckOutbox(socket.conn);
        }
        return socket.ready.resolve();
    }
  }

  /** Mode 1: answers each heartbeat byte and counts the rest as message bytes. */
  #onMode1(socket: DeviceSocket, start: number, count: number): void {
    const bytes = socket.buffer.subarray(start, count);
    let control = 0;
    for (
      let at = bytes.indexOf(HEARTBEAT_BYTE);
      at >= 0;
      at = bytes.indexOf(HEARTBEAT_BYTE, at + 1)
    ) {
      control++;
      socket.beats++;
      this.write(socket, MODE1_BEAT);
    }
    const messages = Math.floor((socket.messageBytes + bytes.length - control) / PAYLOAD_SIZE) -
      Math.floor(socket.messageBytes / PAYLOAD_SIZE);
    socket.messageBytes += bytes.length - control;
    if (messages > 0) this.delivered(socket, messages);
  }
}
