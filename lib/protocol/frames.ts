/**
 * Mode 2: frames of `type (1 byte) | length (4 bytes, big-endian) | payload`,
 * negotiated by the device's answer starting with {@linkcode MODE2_PREAMBLE}:
 * encoding, decoding whatever the split of the stream into reads, and the
 * `END` payload's `reason: message`.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import type { ProtocolMode } from "./types.ts";

/**
 * The four bytes a mode-2 device sends before its handshake frame: NUL, `I`,
 * `M`, version 2. A mode-1 answer starts with a UUID character, never NUL, so
 * a mode-1 device can never select mode 2 by accident.
 */
export const MODE2_PREAMBLE: Uint8Array = Uint8Array.of(0x00, 0x49, 0x4d, 0x02);

/** Length of a mode-2 frame header: one type byte and a 32-bit big-endian length. */
export const FRAME_HEADER_SIZE = 5;

/**
 * Mode-2 frame types. Application data only ever travels in `DATA` frames, so
 * control frames can never be confused with it.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameType } from "@iot-manager/core/protocol";
 * const ping = encodeFrame(FrameType.HEARTBEAT); // 02 00 00 00 00
 * ```
 */
export const FrameType = {
  /** Manager to device: send your handshake info again (an `INFO` frame). */
  GETINFO: 0x01,
  /** Manager to device: heartbeat request; answer with `BEAT`. */
  HEARTBEAT: 0x02,
  /** Device to manager: heartbeat answer. */
  BEAT: 0x03,
  /** Either way: the sender is closing; the payload is an optional UTF-8 reason. */
  END: 0x04,
  /** Device to manager: `uuid##type##{json}` in UTF-8. */
  INFO: 0x05,
  /** Manager to device: handshake accepted; the payload is a JSON object of settings. */
  WELCOME: 0x06,
  /** Manager to device, during the handshake when authentication is on: a 32-byte nonce. */
  CHALLENGE: 0x07,
  /** Device to manager: HMAC-SHA256(secret, nonce + UUID), the answer to `CHALLENGE`. */
  PROOF: 0x08,
  /**
   * Device to manager, right after `WELCOME` and only if `WELCOME` listed
   * `features`: the JSON `{"features": [...]}` the device uses of them.
   */
  FEATURES: 0x09,
  /** Either way: one application message, any bytes. */
  DATA: 0x10,
  /** Manager to device (feature `ack`): a 4-byte id (big-endian) then one message; answer `ACK`. */
  MESSAGE: 0x11,
  /** Device to manager (feature `ack`): the 4-byte id of a `MESSAGE` received. */
  ACK: 0x12,
  /** Manager to device (feature `state`): JSON `{"version": n, "state": {...}}`, desired minus reported. */
  DELTA: 0x13,
  /** Device to manager (feature `state`): a JSON object merged into its reported state. */
  REPORT: 0x14,
} as const;

/** One of the {@linkcode FrameType} values. */
export type FrameTypeValue = typeof FrameType[keyof typeof FrameType];

const knownFrameTypes = new Set<number>(Object.values(FrameType));

/**
 * Whether `byte` is one of the {@linkcode FrameType} values.
 *
 * @example
 * ```ts
 * import { isFrameType } from "@iot-manager/core/protocol";
 * console.log(isFrameType(0x10), isFrameType(0x7f)); // true false
 * ```
 */
export function isFrameType(byte: number): boolean {
  return knownFrameTypes.has(byte);
}

const encoder = new TextEncoder();

/**
 * Encodes one mode-2 frame.
 *
 * @param type The frame type.
 * @param payload The payload bytes (or text, sent as UTF-8).
 * @returns The header followed by the payload.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameType } from "@iot-manager/core/protocol";
 * const frame = encodeFrame(FrameType.DATA, "on");
 * console.log(frame); // Uint8Array(7) [16, 0, 0, 0, 2, 111, 110]
 * ```
 */
export function encodeFrame(
  type: FrameTypeValue,
  payload: Uint8Array | string = EMPTY,
): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const frame = new Uint8Array(FRAME_HEADER_SIZE + body.length);
  frame[0] = type;
  const length = body.length;
  frame[1] = length >>> 24;
  frame[2] = (length >>> 16) & 0xff;
  frame[3] = (length >>> 8) & 0xff;
  frame[4] = length & 0xff;
  frame.set(body, FRAME_HEADER_SIZE);
  return frame;
}

const EMPTY = new Uint8Array(0);

/**
 * Encodes an `END` frame whose payload carries a machine-readable reason first:
 * `reason: message` in UTF-8 (for example `type: type "fridge" is not one of
 * "light", "lock"`). A device that only logs the payload still reads a sentence.
 *
 * @param reason A machine-readable code: `[a-z][a-z0-9-]*`.
 * @param message Human-readable detail.
 * @returns The frame.
 *
 * @example
 * ```ts
 * import { encodeEnd } from "@iot-manager/core/protocol";
 * const frame = encodeEnd("heartbeat", "no beat within 15 s");
 * console.log(new TextDecoder().decode(frame.subarray(5))); // "heartbeat: no beat within 15 s"
 * ```
 */
export function encodeEnd(reason: string, message: string): Uint8Array {
  return encodeFrame(FrameType.END, `${reason}: ${message}`);
}

/**
 * Reads an `END` payload: the reason code before the first `": "` when there
 * is one ({@linkcode encodeEnd}), and the rest as the message. A payload
 * without a code (an older peer) has `reason` undefined.
 *
 * @param payload The `END` frame's payload.
 * @returns The reason code, if any, and the message.
 *
 * @example
 * ```ts
 * import { parseEnd } from "@iot-manager/core/protocol";
 * const end = parseEnd(new TextEncoder().encode("replaced: replaced by a new connection"));
 * console.log(end.reason, end.message); // replaced replaced by a new connection
 * ```
 */
export function parseEnd(payload: Uint8Array): { reason?: string; message: string } {
  const text = new TextDecoder().decode(payload);
  const match = /^([a-z][a-z0-9-]*): ([^]*)$/.exec(text);
  return match ? { reason: match[1], message: match[2] } : { message: text };
}

/**
 * Encodes one application message for a connection in `mode`: the bytes
 * themselves in mode 1 (the seed's `send`), a `DATA` frame in mode 2.
 *
 * @param data The message; text is sent as UTF-8.
 * @param mode The connection's protocol mode.
 * @returns Bytes the caller may queue on any number of connections of that mode.
 *
 * @example
 * ```ts
 * import { encodeMessage } from "@iot-manager/core/protocol";
 * console.log(encodeMessage("on", 1)); // Uint8Array(2) [111, 110]
 * console.log(encodeMessage("on", 2)); // Uint8Array(7) [16, 0, 0, 0, 2, 111, 110]
 * ```
 */
export function encodeMessage(data: string | Uint8Array, mode: ProtocolMode): Uint8Array {
  if (mode === 2) return encodeFrame(FrameType.DATA, data);
  return typeof data === "string" ? encoder.encode(data) : data.slice();
}

/** Where {@linkcode FrameDecoder.push} hands each complete frame. */
export interface FrameReceiver {
  /** A complete frame: its type and its payload. */
  frame(type: FrameTypeValue, payload: Uint8Array): void;
}

/** A function called with each complete frame, or a {@linkcode FrameReceiver}. */
export type FrameHandler =
  | ((type: FrameTypeValue, payload: Uint8Array) => void)
  | FrameReceiver;

/**
 * Cuts a mode-2 byte stream into frames, whatever the split of the stream into
 * reads. Payloads handed to the callback are fresh copies the caller may keep
 * (an empty payload is one shared empty array).
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder, FrameType } from "@iot-manager/core/protocol";
 * const decoder = new FrameDecoder(1024);
 * const bytes = encodeFrame(FrameType.DATA, "hello");
 * decoder.push(bytes.subarray(0, 3), () => {});
 * decoder.push(bytes.subarray(3), (type, payload) => console.log(type, payload.length)); // 16 5
 * ```
 */
export class FrameDecoder {
  readonly #maxFrameSize: number;
  readonly #limits: Readonly<Record<number, number>> | undefined;
  /** Only allocated when a header arrives split across reads, which is rare. */
  #header: Uint8Array | null = null;
  #headerFilled = 0;
  #type = 0;
  #payload: Uint8Array | null = null;
  #payloadFilled = 0;

  /**
   * Creates a decoder for one stream.
   *
   * @param maxFrameSize Largest payload accepted, in bytes.
   * @param limits Smaller limits for some frame types (e.g. `INFO`, bounded by
   *   the handshake size), checked as soon as the header is in.
   */
  constructor(maxFrameSize: number, limits?: Readonly<Record<number, number>>) {
    this.#maxFrameSize = maxFrameSize;
    this.#limits = limits;
  }

  /** True when a frame has started but not yet completed. */
  get partial(): boolean {
    return this.#headerFilled > 0 || this.#payload !== null;
  }

  /**
   * Feeds bytes; calls `onFrame` for every frame they complete.
   *
   * @param chunk The next bytes of the stream (not retained).
   * @param onFrame Called with each complete frame: a function, or an object
   *   whose `frame` method is called (which saves a closure per read).
   * @param end How many bytes of `chunk` to take (a read's count into a reused
   *   buffer). @default chunk.length
   * @throws {ProtocolError} On an unknown frame type or a frame over the limit.
   * @throws {RangeError} When `end` is not a whole number from 0 to `chunk.length`.
   */
  push(chunk: Uint8Array, onFrame: FrameHandler, end: number = chunk.length): void {
    if (!(Number.isInteger(end) && end >= 0 && end <= chunk.length)) {
      throw new RangeError(`end must be a whole number from 0 to ${chunk.length}, got ${end}`);
    }
    let offset = 0;
    while (offset < end) {
      if (this.#payload === null) {
        let header: Uint8Array;
        let at: number;
        if (this.#headerFilled === 0 && end - offset >= FRAME_HEADER_SIZE) {
          header = chunk; // the common case: the whole header is in this read
          at = offset;
          offset += FRAME_HEADER_SIZE;
        } else {
          header = this.#header ??= new Uint8Array(FRAME_HEADER_SIZE);
          const take = Math.min(FRAME_HEADER_SIZE - this.#headerFilled, end - offset);
          header.set(chunk.subarray(offset, offset + take), this.#headerFilled);
          this.#headerFilled += take;
          offset += take;
          if (this.#headerFilled < FRAME_HEADER_SIZE) return;
          this.#headerFilled = 0;
          at = 0;
        }
        this.#startFrame(header[at], readUint32(header, at + 1));
      }
      const payload: Uint8Array = this.#payload!;
      const take = Math.min(payload.length - this.#payloadFilled, end - offset);
      if (take > 0) {
        payload.set(chunk.subarray(offset, offset + take), this.#payloadFilled);
        this.#payloadFilled += take;
        offset += take;
      }
      if (this.#payloadFilled === payload.length) {
        this.#payload = null;
        if (typeof onFrame === "function") onFrame(this.#type as FrameTypeValue, payload);
        else onFrame.frame(this.#type as FrameTypeValue, payload);
      }
    }
  }

  #startFrame(type: number, length: number): void {
    if (!knownFrameTypes.has(type)) {
      throw new ProtocolError("frame-type", `unknown frame type 0x${hex(type)}`);
    }
    const limit = this.#limits?.[type] ?? this.#maxFrameSize;
    if (length > limit) {
      throw new ProtocolError(
        "frame-size",
        `frame of ${length} bytes is over the ${limit}-byte limit`,
      );
    }
    this.#type = type;
    this.#payload = length === 0 ? EMPTY : new Uint8Array(length);
    this.#payloadFilled = 0;
  }
}

/** Reads a big-endian unsigned 32-bit integer without allocating a DataView. */
function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/**
 * Reads one complete frame starting at `offset`, without copying the payload.
 *
 * @returns The frame and the offset just past it, or `null` while incomplete.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameType, readFrameAt } from "@iot-manager/core/protocol";
 * const frame = readFrameAt(encodeFrame(FrameType.DATA, "hi"), 0);
 * console.log(frame?.type, frame?.end); // 16 7
 * ```
 */
export function readFrameAt(
  bytes: Uint8Array,
  offset: number,
): { type: number; payload: Uint8Array; end: number } | null {
  if (bytes.length < offset + FRAME_HEADER_SIZE) return null;
  const length = readUint32(bytes, offset + 1);
  const end = offset + FRAME_HEADER_SIZE + length;
  if (bytes.length < end) return null;
  return { type: bytes[offset], payload: bytes.subarray(offset + FRAME_HEADER_SIZE, end), end };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
