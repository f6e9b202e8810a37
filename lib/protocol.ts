/**
 * The wire protocol as pure functions: no sockets, no timers. The manager and
 * the device side both build on these; `docs/PROTOCOL.md` describes the same
 * bytes for people writing devices in other languages.
 *
 * Mode 1 is the seed's protocol: single command bytes from the manager, text
 * from the device, no message boundaries. Mode 2 is negotiated by the device's
 * handshake answer starting with {@linkcode MODE2_PREAMBLE}; after that every
 * byte in both directions travels in a frame: `type (1 byte) | length (4 bytes,
 * big-endian) | payload`.
 *
 * @module
 */

import { validate as isUuid } from "uuid";
import { InvalidInfo, ProtocolError } from "./errors.ts";

/** Mode 1: the byte the manager sends to ask a device who it is (`getinfo`). */
export const GETINFO_BYTE = 0x01;
/** Mode 1: the byte the manager sends as a heartbeat request (`heart`). */
export const HEARTBEAT_BYTE = 0x02;
/** Mode 1: what a device answers to a heartbeat. */
export const BEAT_TEXT = "beat";
/** Mode 1: what the manager sends before it closes a connection. */
export const END_TEXT = "end\n";

/**
 * Separates a heartbeat answer from a mode-1 chunk. A chunk that is only
 * `beat`s (each optionally followed by `\r\n` or `\n`) is a heartbeat answer.
 * While a heartbeat is outstanding, the first `beat` anywhere in a chunk
 * answers it and the bytes around it are a message: TCP glued the answer
 * before, after or between the device's messages. (The price: a message that
 * contains the word `beat` while a heartbeat is outstanding loses it. Mode 2
 * has no such ambiguity.) Anything else is a message.
 *
 * @param chunk One read's bytes.
 * @param heartbeatPending Whether a heartbeat request is unanswered.
 * @returns Whether the chunk answered a heartbeat, and the message bytes (maybe empty).
 *
 * @example
 * ```ts
 * import { splitMode1Chunk } from "@iot-manager/core";
 * const { beat, message } = splitMode1Chunk(new TextEncoder().encode("temp 21beat"), true);
 * console.log(beat, new TextDecoder().decode(message)); // true "temp 21"
 * ```
 */
export function splitMode1Chunk(
  chunk: Uint8Array,
  heartbeatPending: boolean,
): { beat: boolean; message: Uint8Array } {
  let end = 0;
  while (startsWithBeat(chunk, end)) end = skipNewline(chunk, end + 4);
  if (end > 0 && end === chunk.length) return { beat: true, message: chunk.subarray(end) };
  if (!heartbeatPending) return { beat: false, message: chunk };
  for (let at = 0; at + 4 <= chunk.length; at++) {
    if (!startsWithBeat(chunk, at)) continue;
    const after = skipNewline(chunk, at + 4);
    if (at === 0) return { beat: true, message: chunk.subarray(after) };
    if (after === chunk.length) return { beat: true, message: chunk.subarray(0, at) };
    const message = new Uint8Array(chunk.length - (after - at));
    message.set(chunk.subarray(0, at));
    message.set(chunk.subarray(after), at);
    return { beat: true, message };
  }
  return { beat: false, message: chunk };
}

const BEAT_BYTES = [0x62, 0x65, 0x61, 0x74]; // "beat"

/**
 * How many bytes at the end of a mode-1 chunk could be the start of a `beat`
 * cut by a read boundary (`b`, `be` or `bea`), 0 if none. While a heartbeat
 * is outstanding the manager holds those bytes back and reads them again in
 * front of the next chunk, so a `beat` split anywhere answers it.
 *
 * @param chunk One read's bytes, after {@linkcode splitMode1Chunk} found no `beat` in it.
 * @returns 0 to 3.
 *
 * @example
 * ```ts
 * import { partialBeatAtEnd } from "./lib/protocol.ts";
 * console.log(partialBeatAtEnd(new TextEncoder().encode("on be"))); // 2
 * ```
 */
export function partialBeatAtEnd(chunk: Uint8Array): number {
  for (let length = Math.min(3, chunk.length); length > 0; length--) {
    let match = true;
    for (let i = 0; i < length && match; i++) {
      match = chunk[chunk.length - length + i] === BEAT_BYTES[i];
    }
    if (match) return length;
  }
  return 0;
}

function startsWithBeat(chunk: Uint8Array, at: number): boolean {
  return chunk[at] === BEAT_BYTES[0] && chunk[at + 1] === BEAT_BYTES[1] &&
    chunk[at + 2] === BEAT_BYTES[2] && chunk[at + 3] === BEAT_BYTES[3];
}

function skipNewline(chunk: Uint8Array, at: number): number {
  if (chunk[at] === 0x0d) at++;
  if (chunk[at] === 0x0a) at++;
  return at;
}

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
 * import { encodeFrame, FrameType } from "@iot-manager/core";
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
  /** Either way: one application message, any bytes. */
  DATA: 0x10,
} as const;

/** One of the {@linkcode FrameType} values. */
export type FrameTypeValue = typeof FrameType[keyof typeof FrameType];

const knownFrameTypes = new Set<number>(Object.values(FrameType));

/**
 * Whether `byte` is one of the {@linkcode FrameType} values.
 *
 * @example
 * ```ts
 * import { isFrameType } from "./lib/protocol.ts";
 * console.log(isFrameType(0x10), isFrameType(0x7f)); // true false
 * ```
 */
export function isFrameType(byte: number): boolean {
  return knownFrameTypes.has(byte);
}

/** Protocol mode of a connection: 1 (the seed's) or 2 (framed). */
export type ProtocolMode = 1 | 2;

/**
 * A device's identity as sent in the handshake: the seed's `Data`.
 *
 * @example
 * ```ts
 * import type { DeviceInfo } from "@iot-manager/core";
 * const info: DeviceInfo = { uuid: crypto.randomUUID(), type: "light", data: { room: "hall" } };
 * ```
 */
export interface DeviceInfo {
  /** The device's UUID in its 36-character form. */
  readonly uuid: string;
  /** One of the manager's valid types. */
  readonly type: string;
  /** The JSON object the device sent. */
  readonly data: Record<string, unknown>;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Encodes one mode-2 frame.
 *
 * @param type The frame type.
 * @param payload The payload bytes (or text, sent as UTF-8).
 * @returns The header followed by the payload.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameType } from "@iot-manager/core";
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
 * import { encodeEnd } from "@iot-manager/core";
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
 * import { parseEnd } from "@iot-manager/core";
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
 * import { encodeMessage } from "@iot-manager/core";
 * console.log(encodeMessage("on", 1)); // Uint8Array(2) [111, 110]
 * console.log(encodeMessage("on", 2)); // Uint8Array(7) [16, 0, 0, 0, 2, 111, 110]
 * ```
 */
export function encodeMessage(data: string | Uint8Array, mode: ProtocolMode): Uint8Array {
  if (mode === 2) return encodeFrame(FrameType.DATA, data);
  return typeof data === "string" ? encoder.encode(data) : data.slice();
}

/**
 * Cuts a mode-2 byte stream into frames, whatever the split of the stream into
 * reads. Payloads handed to the callback are fresh copies the caller may keep.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder, FrameType } from "@iot-manager/core";
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
   * @param onFrame Called with each complete frame.
   * @throws {ProtocolError} On an unknown frame type or a frame over the limit.
   */
  push(
    chunk: Uint8Array,
    onFrame: (type: FrameTypeValue, payload: Uint8Array) => void,
  ): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#payload === null) {
        let header: Uint8Array;
        let at: number;
        if (this.#headerFilled === 0 && chunk.length - offset >= FRAME_HEADER_SIZE) {
          header = chunk; // the common case: the whole header is in this read
          at = offset;
          offset += FRAME_HEADER_SIZE;
        } else {
          header = this.#header ??= new Uint8Array(FRAME_HEADER_SIZE);
          const take = Math.min(FRAME_HEADER_SIZE - this.#headerFilled, chunk.length - offset);
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
      const take = Math.min(payload.length - this.#payloadFilled, chunk.length - offset);
      if (take > 0) {
        payload.set(chunk.subarray(offset, offset + take), this.#payloadFilled);
        this.#payloadFilled += take;
        offset += take;
      }
      if (this.#payloadFilled === payload.length) {
        this.#payload = null;
        onFrame(this.#type as FrameTypeValue, payload.length === 0 ? new Uint8Array(0) : payload);
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
 * import { encodeFrame, FrameType, readFrameAt } from "@iot-manager/core";
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

/**
 * Parses a complete handshake answer `uuid##type##{json}` (the text of a
 * mode-1 answer or of a mode-2 `INFO` frame).
 *
 * @param text The answer.
 * @param validTypes The device types the manager accepts.
 * @returns The device's info.
 * @throws {InvalidInfo} Naming the first field that is wrong.
 *
 * @example
 * ```ts
 * import { parseHandshake } from "@iot-manager/core";
 * const info = parseHandshake(
 *   '1862cfe1-5dab-4d8e-a946-50d6728f830f##lock##{"locked":true}',
 *   ["light", "lock"],
 * );
 * console.log(info.data.locked); // true
 * ```
 */
export function parseHandshake(text: string, validTypes: readonly string[]): DeviceInfo {
  const result = scanHandshakeText(text, validTypes);
  if (result.status === "incomplete") {
    throw new InvalidInfo("fields", `incomplete handshake: ${result.missing}`);
  }
  if (result.rest !== "") {
    throw new InvalidInfo(
      "fields",
      `unexpected ${preview(result.rest)} after the JSON data: expected exactly uuid##type##{json}`,
    );
  }
  return result.info;
}

/**
 * Encodes a device's handshake answer, as a device sends it after `getinfo`.
 *
 * @param info The device's identity.
 * @param mode 1 for the seed's text answer, 2 for preamble plus `INFO` frame.
 * @returns The bytes to write.
 *
 * @example
 * ```ts
 * import { encodeHandshake } from "@iot-manager/core";
 * const bytes = encodeHandshake({ uuid: crypto.randomUUID(), type: "light", data: {} }, 2);
 * console.log(bytes[0]); // 0 (the mode-2 preamble)
 * ```
 */
export function encodeHandshake(info: DeviceInfo, mode: ProtocolMode): Uint8Array {
  const text = `${info.uuid}##${info.type}##${JSON.stringify(info.data)}`;
  if (mode === 1) return encoder.encode(text);
  const frame = encodeFrame(FrameType.INFO, text);
  const bytes = new Uint8Array(MODE2_PREAMBLE.length + frame.length);
  bytes.set(MODE2_PREAMBLE);
  bytes.set(frame, MODE2_PREAMBLE.length);
  return bytes;
}

/** The outcome of {@linkcode scanHandshakeText}. */
export type TextScan =
  | { readonly status: "incomplete"; readonly missing: string }
  | {
    readonly status: "complete";
    readonly info: DeviceInfo;
    /** What follows the JSON object and the whitespace after it. */
    readonly rest: string;
  };

const UUID_LENGTH = 36;
const UUID_SHAPE = /^[0-9a-fA-F]{0,8}(-[0-9a-fA-F]{0,4}){0,3}(-[0-9a-fA-F]{0,12})?$/;

/**
 * Checks handshake text (`uuid##type##{json}`, or a prefix of it) and parses it
 * once the JSON object closes. Internal to the handshake readers.
 *
 * @throws {InvalidInfo} As soon as no continuation of `text` could be valid.
 */
export function scanHandshakeText(text: string, validTypes: readonly string[]): TextScan {
  if (text.length < UUID_LENGTH) {
    if (!UUID_SHAPE.test(text)) throw badUuid(text);
    return { status: "incomplete", missing: "the rest of the UUID" };
  }
  const uuid = text.slice(0, UUID_LENGTH);
  if (!isUuid(uuid)) throw badUuid(uuid);
  const delimiter = text.slice(UUID_LENGTH, UUID_LENGTH + 2);
  if (!"##".startsWith(delimiter)) {
    throw new InvalidInfo(
      "fields",
      `expected "##" after the UUID, got ${JSON.stringify(delimiter)}`,
    );
  }
  if (delimiter.length < 2) return { status: "incomplete", missing: "the type field" };
  const rest = text.slice(UUID_LENGTH + 2);
  const typeEnd = rest.indexOf("##");
  if (typeEnd < 0) {
    if (rest.trimStart().startsWith("{")) {
      throw new InvalidInfo("fields", "the type field is missing: expected uuid##type##{json}");
    }
    if (!validTypes.some((type) => (type + "##").startsWith(rest))) throw badType(rest, validTypes);
    return {
      status: "incomplete",
      missing: rest.length === 0 ? "the type field" : "the JSON data field",
    };
  }
  const type = rest.slice(0, typeEnd);
  if (!validTypes.includes(type)) throw badType(type, validTypes);
  const json = rest.slice(typeEnd + 2);
  const start = json.length - json.trimStart().length;
  if (start === json.length) return { status: "incomplete", missing: "the JSON data field" };
  if (json[start] !== "{") {
    throw new InvalidInfo("data", `device data must be a JSON object, got ${preview(json)}`);
  }
  const end = findJsonObjectEnd(json, start);
  if (end < 0) return { status: "incomplete", missing: "the end of the JSON data" };
  const trailing = json.slice(end + 1).trimStart();
  if (trailing.startsWith("#")) {
    throw new InvalidInfo(
      "fields",
      `unexpected ${preview(trailing)} after the JSON data: expected exactly uuid##type##{json}`,
    );
  }
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(json.slice(start, end + 1));
  } catch (error) {
    throw new InvalidInfo("data", `device data is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { status: "complete", info: { uuid: uuid.toLowerCase(), type, data }, rest: trailing };
}

/** Index of the `}` closing the object that starts at `start`, or -1 while unclosed. */
function findJsonObjectEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c) i++; // backslash: skip the escaped character
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) inString = true;
    else if (char === 0x7b || char === 0x5b) depth++;
    else if (char === 0x7d || char === 0x5d) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function badUuid(text: string): InvalidInfo {
  return new InvalidInfo(
    "uuid",
    `answer must start with a 36-character UUID, got ${preview(text)}`,
  );
}

function badType(type: string, validTypes: readonly string[]): InvalidInfo {
  return new InvalidInfo(
    "type",
    `type ${preview(type)} is not one of ${validTypes.map((t) => JSON.stringify(t)).join(", ")}`,
  );
}

/** A short, printable rendering of untrusted text for log messages. */
export function preview(text: string, limit = 40): string {
  const shown = text.length > limit ? text.slice(0, limit) + "…" : text;
  return JSON.stringify(shown);
}

/**
 * Decodes UTF-8 strictly.
 *
 * @throws {InvalidInfo} With reason `"encoding"` on malformed input.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch (error) {
    throw new InvalidInfo("encoding", "handshake answer is not valid UTF-8", { cause: error });
  }
}
