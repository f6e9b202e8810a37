/**
 * Reading a handshake answer as it arrives, in work linear in the bytes
 * received however the peer cuts them: each byte is examined once, the bytes
 * are kept in one buffer that doubles as it grows, and the text is decoded
 * once, when the answer is complete. Pure: no sockets, no timers.
 *
 * The same reader serves the handshake on a new connection and the answer to
 * a later `getinfo` (`client.getData()`), so both obey one size limit:
 * `maxSize` counts the answer itself (`UUID##TYPE##JSON`, or a mode-2 `INFO`
 * payload), not the whitespace the protocol allows after it, nor a first
 * message that follows it, nor the mode-2 preamble and frame header.
 *
 * @module
 */

import { InvalidInfo } from "../errors.ts";
import { FRAME_HEADER_SIZE, FrameType, isFrameType, MODE2_PREAMBLE } from "./frames.ts";
import { parseHandshake, preview, scanHandshakeText } from "./handshake_text.ts";
import type { DeviceInfo, ProtocolMode } from "./types.ts";

/** The outcome of {@linkcode HandshakeReader.push} (and of `readHandshake`). */
export type HandshakeScan =
  | { readonly status: "incomplete"; readonly missing: string }
  | {
    readonly status: "complete";
    readonly mode: ProtocolMode;
    readonly info: DeviceInfo;
    /** Bytes of the input the handshake used; anything after is the device's next bytes. */
    readonly consumed: number;
    /** A copy of the bytes received after the answer (`consumed` onwards). */
    readonly leftover: Uint8Array;
  };

/** What a {@linkcode HandshakeReader} accepts. */
export interface HandshakeReaderOptions {
  /** The device types the manager accepts. */
  readonly validTypes: readonly string[];
  /** Largest answer accepted, in bytes (the answer alone; see the module doc). @default Infinity */
  readonly maxSize?: number;
  /**
   * Which answers to accept: `"any"` tells the mode from the first byte (a new
   * connection); `1` reads a mode-1 text answer only (a mode-1 `getinfo`).
   * @default "any"
   */
  readonly mode?: "any" | 1;
}

const UUID_LENGTH = 36;
/** The first byte of a TLS handshake record (a ClientHello sent to a plain manager). */
const TLS_HANDSHAKE_RECORD = 0x16;
const HASH = 0x23;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const INITIAL_CAPACITY = 256;
const encoder = new TextEncoder();

/**
 * Reads one handshake answer from successive reads. Throws
 * {@linkcode InvalidInfo} as soon as no continuation could make the bytes
 * valid, and once it has thrown or completed it must not be fed again.
 *
 * @example
 * ```ts
 * import { HandshakeReader } from "./lib/protocol/mod.ts";
 * const reader = new HandshakeReader({ validTypes: ["light"], maxSize: 4096 });
 * const answer = new TextEncoder().encode("1862cfe1-5dab-4d8e-a946-50d6728f830f##light##{}\n");
 * console.log(reader.push(answer.subarray(0, 10)).status); // "incomplete"
 * const scan = reader.push(answer.subarray(10));
 * if (scan.status === "complete") console.log(scan.info.type, scan.consumed); // light 49
 * ```
 */
export class HandshakeReader {
  readonly #validTypes: readonly string[];
  readonly #maxSize: number;
  readonly #only1: boolean;
  /** Longest prefix `UUID##TYPE##` of any acceptable answer, in bytes. */
  readonly #headerBound: number;
  readonly #utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #buffer = new Uint8Array(0);
  #length = 0;
  #mode: ProtocolMode | 0 = 0;
  // Mode 1: where the JSON starts (0 until the header is read) and the scanner's state.
  #jsonStart = 0;
  // UTF-8 validation state: continuation bytes still expected, and the next one's bounds.
  #utf8Needed = 0;
  #utf8Lower = 0x80;
  #utf8Upper = 0xbf;
  #headerChecked = false;
  #depth = 0;
  #inString = false;
  #escaped = false;
  // Mode 2: the INFO payload's length once its header is in (-1 before).
  #payloadLength = -1;

  /**
   * Creates a reader for one answer.
   *
   * @param options What to accept; see {@linkcode HandshakeReaderOptions}.
   */
  constructor(options: HandshakeReaderOptions) {
    this.#validTypes = options.validTypes;
    this.#maxSize = options.maxSize ?? Infinity;
    this.#only1 = options.mode === 1;
    const longestType = Math.max(0, ...options.validTypes.map((t) => encoder.encode(t).length));
    this.#headerBound = UUID_LENGTH + 2 + longestType + 2;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#length;
  }

  /**
   * Feeds the next bytes the device sent.
   *
   * @param chunk One read's bytes (not retained: the reader copies what it keeps).
   * @returns `complete` with the info once the answer is whole, else `incomplete`.
   * @throws {InvalidInfo} When the answer is malformed or over `maxSize`.
   */
  push(chunk: Uint8Array): HandshakeScan {
    const start = this.#length;
    if (this.#mode === 0 && chunk.length > 0) {
      const first = chunk[0];
      if (!this.#only1 && first === TLS_HANDSHAKE_RECORD) {
        throw new InvalidInfo(
          "encoding",
          "answer is not valid UTF-8: it starts like a TLS ClientHello, but this manager listens " +
            "without TLS (start it with the tls option, or connect without TLS)",
        );
      }
      if (!this.#only1 && isFrameType(first)) {
        // A frame type cannot start a UUID: a framed answer that forgot the preamble.
        throw new InvalidInfo(
          "preamble",
          `answer starts with frame type 0x${
            first.toString(16).padStart(2, "0")
          }: a mode-2 answer starts with the preamble 00 49 4d 02, a mode-1 answer with the UUID`,
        );
      }
      this.#mode = first === MODE2_PREAMBLE[0] && !this.#only1 ? 2 : 1;
    }
    if (this.#mode === 2) return this.#push2(chunk);
    if (this.#mode === 1) return this.#push1(chunk, start);
    return { status: "incomplete", missing: "nothing received yet" };
  }

  #append(chunk: Uint8Array, capacityHint: number): void {
    const needed = this.#length + chunk.length;
    if (needed > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(needed, capacityHint, this.#buffer.length * 2));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(chunk, this.#length);
    this.#length = needed;
  }

  #push1(chunk: Uint8Array, start: number): HandshakeScan {
    this.#append(chunk, INITIAL_CAPACITY);
    // Only bytes up to the answer's end belong to it (and are checked); the rest is a first
    // message, any bytes.
    const end = this.#findEnd(start);
    const answerEnd = end < 0 ? this.#length : end + 1;
    if (end < 0) {
      if (this.#length > this.#maxSize) throw tooLarge(`more than ${this.#maxSize}`, this.#maxSize);
      const missing = this.#headerChecked ? this.#missing() : this.#checkHeader();
      return { status: "incomplete", missing };
    }
    if (answerEnd > this.#maxSize) throw tooLarge(String(answerEnd), this.#maxSize);
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      this.#buffer.subarray(0, answerEnd),
    );
    const scan = scanHandshakeText(text, this.#validTypes);
    if (scan.status !== "complete") throw new Error("unreachable: the JSON object closed");
    // Whitespace after the answer belongs to it; a fourth field is refused.
    let next = answerEnd;
    while (next < this.#length && isWhitespace(this.#buffer[next])) next++;
    if (next < this.#length && this.#buffer[next] === HASH) {
      const rest = new TextDecoder().decode(
        this.#buffer.subarray(next, Math.min(this.#length, next + 64)),
      );
      throw new InvalidInfo(
        "fields",
        `unexpected ${preview(rest)} after the JSON data: expected exactly uuid##type##{json}`,
      );
    }
    return {
      status: "complete",
      mode: 1,
      info: scan.info,
      consumed: next,
      leftover: this.#buffer.slice(next, this.#length),
    };
  }

  /**
   * Scans the bytes from `from` on for the end of the answer: first the
   * `UUID##TYPE##` header (checked as soon as it is in), then the JSON object,
   * byte by byte, keeping the scanner's state between reads. (`"`, `\`,
   * braces and brackets are ASCII, and UTF-8 never uses ASCII byte values
   * inside a multi-byte character, so bytes will do.)
   *
   * @returns The index of the closing `}` (or `]`) in the stream, or -1.
   */
  #findEnd(from: number): number {
    const b = this.#buffer;
    for (let at = from; at < this.#length; at++) {
      const byte = b[at];
      if (byte >= 0x80 || this.#utf8Needed > 0) this.#checkUtf8(byte);
      if (this.#jsonStart === 0) {
        // The header: the second "##" after the UUID ends the type field.
        if (at > UUID_LENGTH + 2 && byte === HASH && b[at - 1] === HASH) {
          this.#jsonStart = at + 1;
          this.#checkHeader();
        }
        continue;
      }
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (byte === BACKSLASH) this.#escaped = true;
        else if (byte === QUOTE) this.#inString = false;
        continue;
      }
      if (this.#depth === 0) {
        if (isWhitespace(byte)) continue;
        if (byte !== 0x7b) this.#refuseData(at);
      }
      if (byte === QUOTE) this.#inString = true;
      else if (byte === 0x7b || byte === 0x5b) this.#depth++;
      else if (byte === 0x7d || byte === 0x5d) {
        if (--this.#depth === 0) return at;
      }
    }
    return -1;
  }

  /**
   * One step of UTF-8 validation (the WHATWG decoder's rules: no overlong
   * forms, no surrogates, nothing past U+10FFFF), so invalid bytes are refused
   * as they arrive without decoding each read.
   */
  #checkUtf8(byte: number): void {
    if (this.#utf8Needed === 0) {
      if (byte >= 0xc2 && byte <= 0xdf) this.#utf8Needed = 1;
      else if (byte >= 0xe0 && byte <= 0xef) {
        this.#utf8Needed = 2;
        if (byte === 0xe0) this.#utf8Lower = 0xa0;
        if (byte === 0xed) this.#utf8Upper = 0x9f;
      } else if (byte >= 0xf0 && byte <= 0xf4) {
        this.#utf8Needed = 3;
        if (byte === 0xf0) this.#utf8Lower = 0x90;
        if (byte === 0xf4) this.#utf8Upper = 0x8f;
      } else throw notUtf8();
      return;
    }
    if (byte < this.#utf8Lower || byte > this.#utf8Upper) throw notUtf8();
    this.#utf8Lower = 0x80;
    this.#utf8Upper = 0xbf;
    this.#utf8Needed--;
  }

  /**
   * Runs the full text checks on the header received so far (a bounded prefix).
   *
   * @returns What is still missing.
   */
  #checkHeader(): string {
    const upTo = Math.min(this.#length, this.#jsonStart || this.#headerBound + 4);
    const text = this.#decodePrefix(upTo);
    const scan = scanHandshakeText(text, this.#validTypes);
    if (scan.status === "complete") throw new Error("unreachable: the header is not complete");
    if (this.#jsonStart === 0 && this.#length > this.#headerBound) {
      // No valid type is this long; scanHandshakeText has refused it unless the type is invalid.
      throw new InvalidInfo("type", `type field longer than any valid type in ${preview(text)}`);
    }
    this.#headerChecked = this.#jsonStart > 0;
    return this.#headerChecked ? this.#missing() : scan.missing;
  }

  #refuseData(at: number): never {
    const rest = new TextDecoder().decode(
      this.#buffer.subarray(at, Math.min(this.#length, at + 64)),
    );
    throw new InvalidInfo("data", `device data must be a JSON object, got ${preview(rest)}`);
  }

  #decodePrefix(length: number): string {
    // The prefix may end inside a multi-byte character: decode it as a stream.
    try {
      return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
        this.#buffer.subarray(0, length),
        { stream: true },
      );
    } catch (error) {
      throw new InvalidInfo("encoding", "handshake answer is not valid UTF-8", { cause: error });
    }
  }

  /** What is missing once the header is in. */
  #missing(): string {
    return this.#depth === 0 ? "the JSON data field" : "the end of the JSON data";
  }

  #push2(chunk: Uint8Array): HandshakeScan {
    const headerEnd = MODE2_PREAMBLE.length + FRAME_HEADER_SIZE;
    if (this.#payloadLength < 0) {
      // Preamble and INFO header: 9 bytes, checked as they come.
      const take = Math.min(chunk.length, headerEnd - this.#length);
      this.#append(chunk.subarray(0, take), INITIAL_CAPACITY);
      this.#checkPreamble();
      if (this.#length < headerEnd) {
        return { status: "incomplete", missing: "the mode-2 INFO frame" };
      }
      const b = this.#buffer;
      const length = ((b[5] << 24) | (b[6] << 16) | (b[7] << 8) | b[8]) >>> 0;
      if (length > this.#maxSize) throw tooLarge(String(length), this.#maxSize);
      this.#payloadLength = length;
      chunk = chunk.subarray(take);
    }
    const total = headerEnd + this.#payloadLength;
    const take = Math.min(chunk.length, total - this.#length);
    this.#append(chunk.subarray(0, take), 0);
    if (this.#length < total) {
      return { status: "incomplete", missing: `${total - this.#length} more bytes` };
    }
    const text = this.#decodeAll(this.#buffer.subarray(headerEnd, total));
    return {
      status: "complete",
      mode: 2,
      info: parseHandshake(text, this.#validTypes),
      consumed: total,
      leftover: chunk.slice(take),
    };
  }

  #checkPreamble(): void {
    const b = this.#buffer;
    for (let i = 1; i < Math.min(this.#length, MODE2_PREAMBLE.length); i++) {
      if (b[i] !== MODE2_PREAMBLE[i]) {
        throw new InvalidInfo(
          "preamble",
          i === 3
            ? `unsupported protocol version ${b[i]} (this manager speaks 1 and 2)`
            : "answer starts with NUL but is not the mode-2 preamble 00 49 4d 02",
        );
      }
    }
    const typeAt = MODE2_PREAMBLE.length;
    if (this.#length > typeAt && b[typeAt] !== FrameType.INFO) {
      throw new InvalidInfo(
        "preamble",
        `expected an INFO frame (0x05) after the preamble, got 0x${
          b[typeAt].toString(16).padStart(2, "0")
        }`,
      );
    }
  }

  #decodeAll(bytes: Uint8Array): string {
    try {
      return this.#utf8.decode(bytes);
    } catch (error) {
      throw new InvalidInfo("encoding", "handshake answer is not valid UTF-8", { cause: error });
    }
  }
}

function notUtf8(): InvalidInfo {
  return new InvalidInfo("encoding", "handshake answer is not valid UTF-8");
}

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function tooLarge(size: string, maxSize: number): InvalidInfo {
  return new InvalidInfo(
    "size",
    `handshake answer of ${size} bytes is over the ${maxSize}-byte limit`,
  );
}

/**
 * Reads a handshake answer from all the bytes a device has sent so far, in
 * either mode: a one-shot {@linkcode HandshakeReader}. Says `incomplete` while
 * more bytes could still make it valid, and throws {@linkcode InvalidInfo} as
 * soon as no continuation could. In mode 1, bytes after the JSON object (other
 * than whitespace, or a `#` that starts a fourth field) are not part of the
 * answer: `consumed` stops before them and the manager treats them as the
 * device's first message.
 *
 * @param bytes Everything the device sent since `getinfo`.
 * @param validTypes The device types the manager accepts.
 * @param maxSize Largest answer accepted, in bytes (the answer alone).
 * @returns The parsed info and mode, or what is still missing.
 * @throws {InvalidInfo} When the bytes can never become a valid answer.
 *
 * @example
 * ```ts
 * import { readHandshake } from "@iot-manager/core/protocol";
 * const answer = new TextEncoder().encode(
 *   '1862cfe1-5dab-4d8e-a946-50d6728f830f##light##{"room":"hall"}',
 * );
 * const scan = readHandshake(answer, ["light"]);
 * if (scan.status === "complete") console.log(scan.mode, scan.info.type); // 1 light
 * ```
 */
export function readHandshake(
  bytes: Uint8Array,
  validTypes: readonly string[],
  maxSize: number = Infinity,
): HandshakeScan {
  return new HandshakeReader({ validTypes, maxSize }).push(bytes);
}
