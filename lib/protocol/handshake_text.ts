/**
 * The handshake answer's text, `UUID##TYPE##JSON`, the same in both modes (a
 * mode-1 answer, a mode-2 `INFO` payload): parsing, encoding, and the checks
 * that name the first field that is wrong.
 *
 * @module
 */

import { validate as isUuid } from "uuid";
import { InvalidInfo } from "../errors.ts";
import { encodeFrame, FrameType, MODE2_PREAMBLE } from "./frames.ts";
import type { DeviceInfo, ProtocolMode } from "./types.ts";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

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
 * import { parseHandshake } from "@iot-manager/core/protocol";
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
 * import { encodeHandshake } from "@iot-manager/core/protocol";
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
