/**
 * Mode 1, the seed's protocol: single command bytes from the manager (`getinfo`,
 * heartbeat), text from the device, no message boundaries. How each end tells
 * control bytes and heartbeat answers from messages, as pure functions.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";

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
 * import { splitMode1Chunk } from "@iot-manager/core/protocol";
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
 * import { partialBeatAtEnd } from "./lib/protocol/mod.ts";
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

const END_BYTES = new TextEncoder().encode(END_TEXT);

/**
 * Splits one mode-1 read from the manager: the control bytes `0x01`
 * (`getinfo`) and `0x02` (heartbeat), wherever they are (the manager may
 * coalesce them with a message), and the message that remains. A message
 * ending in `end\n` is held back (`heldEnd`): if the manager then closes, it
 * was the goodbye; if more bytes come, it is put back in front of them.
 *
 * @param chunk One read's bytes (not retained; the message is a copy).
 * @param heldEnd Whether `end\n` was held back from the previous read.
 * @returns The control bytes in order, the message, and whether `end\n` is now held back.
 *
 * @example
 * ```ts
 * import { splitManagerChunk } from "./lib/protocol/mod.ts";
 * const split = splitManagerChunk(new TextEncoder().encode("on\x02end\n"), false);
 * console.log(split.controls, new TextDecoder().decode(split.message), split.heldEnd); // [2] "on" true
 * ```
 */
export function splitManagerChunk(
  chunk: Uint8Array,
  heldEnd: boolean,
): { controls: number[]; message: Uint8Array; heldEnd: boolean } {
  const parts: Uint8Array[] = heldEnd ? [END_BYTES] : [];
  const controls: number[] = [];
  let start = 0;
  for (let i = 0; i < chunk.length; i++) {
    const byte = chunk[i];
    if (byte !== GETINFO_BYTE && byte !== HEARTBEAT_BYTE) continue;
    if (i > start) parts.push(chunk.subarray(start, i));
    start = i + 1;
    controls.push(byte);
  }
  if (start < chunk.length) parts.push(chunk.subarray(start));
  let message = parts.length === 1 ? parts[0].slice() : concatBytes(parts);
  const holds = endsWith(message, END_BYTES);
  if (holds) message = message.subarray(0, message.length - END_BYTES.length);
  return { controls, message, heldEnd: holds };
}

function endsWith(bytes: Uint8Array, suffix: Uint8Array): boolean {
  if (bytes.length < suffix.length) return false;
  const offset = bytes.length - suffix.length;
  for (let i = 0; i < suffix.length; i++) if (bytes[offset + i] !== suffix[i]) return false;
  return true;
}

/**
 * The manager's reading of one mode-1 device, read by read: each read is one
 * message, except that a `beat` answering an outstanding heartbeat is taken
 * out (also when a read boundary cuts it: its start is held for the next
 * read), and the newline the protocol allows after a `getinfo` answer is
 * dropped even when it arrives in the next read.
 *
 * @example
 * ```ts
 * import { Mode1Reader } from "@iot-manager/core/protocol";
 * const reader = new Mode1Reader();
 * const te = new TextEncoder();
 * console.log(reader.push(te.encode("be"), true)); // { beat: false, message: <empty> }
 * console.log(reader.push(te.encode("at"), true).beat); // true
 * ```
 */
export class Mode1Reader {
  /** The start of a `beat` the last read ended with, while a heartbeat is outstanding. */
  #heldBeat: Uint8Array | null = null;
  /** A newline may still follow the last `getinfo` answer. */
  #afterAnswer: boolean;

  /**
   * Creates a reader for one connection.
   *
   * @param afterAnswer Whether reading starts right after a `getinfo` answer. @default true
   */
  constructor(afterAnswer = true) {
    this.#afterAnswer = afterAnswer;
  }

  /**
   * Reads one socket read (not retained: the message is a copy).
   *
   * @param beatPending Whether a heartbeat is outstanding (only then is `beat` an answer).
   * @returns Whether a `beat` arrived, and the message (empty when there is none).
   */
  push(read: Uint8Array, beatPending: boolean): { beat: boolean; message: Uint8Array } {
    let chunk: Uint8Array = read.slice();
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
    const split = splitMode1Chunk(chunk, beatPending);
    let message = split.message;
    if (!split.beat && beatPending) {
      // A `beat` cut by a read boundary: hold its start until the next read.
      const held = partialBeatAtEnd(message);
      if (held > 0) {
        this.#heldBeat = message.slice(message.length - held);
        message = message.subarray(0, message.length - held);
      }
    }
    return { beat: split.beat, message };
  }

  /** A `getinfo` answer ended the last read: a newline may still follow in the next. */
  answered(): void {
    this.#afterAnswer = true;
  }
}
