/**
 * Acknowledged delivery in mode 2 (feature `ack`), as MQTT's QoS 1 does it
 * with PUBLISH and PUBACK: the manager sends a `MESSAGE` frame carrying an id
 * and the device answers `ACK` with the same id once it has received it. And
 * the negotiation that keeps older devices working: `WELCOME` lists the
 * features the manager offers, a device that knows them answers `FEATURES`
 * before anything else, and one that does not is never sent these frames.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import { encodeFrame, FRAME_HEADER_SIZE, FrameType } from "./frames.ts";
import { decodeUtf8 } from "./handshake_text.ts";

/** The optional features of mode 2. */
export type Feature = "ack" | "state";

/** Every feature this implementation speaks. */
export const FEATURES: readonly Feature[] = ["ack", "state"];

/** Bytes of a `MESSAGE` or `ACK` id. */
export const ACK_ID_SIZE = 4;

/**
 * Encodes a `MESSAGE` frame: `id` (uint32, big-endian) then the data.
 *
 * @example
 * ```ts
 * import { encodeAckedMessage, parseAckedMessage } from "@iot-manager/core/protocol";
 * const frame = encodeAckedMessage(7, "lock");
 * const { id, data } = parseAckedMessage(frame.subarray(5));
 * console.log(id, new TextDecoder().decode(data)); // 7 lock
 * ```
 */
export function encodeAckedMessage(id: number, data: string | Uint8Array): Uint8Array {
  const body = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const frame = new Uint8Array(FRAME_HEADER_SIZE + ACK_ID_SIZE + body.length);
  frame.set(encodeAckedHeader(id, body.length));
  frame.set(body, FRAME_HEADER_SIZE + ACK_ID_SIZE);
  return frame;
}

/**
 * The first 9 bytes of a `MESSAGE` frame (type, length, id) for a message of
 * `length` bytes: a fan-out sends this per device and the message bytes,
 * encoded once, after it.
 */
export function encodeAckedHeader(id: number, length: number): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_SIZE + ACK_ID_SIZE);
  header[0] = FrameType.MESSAGE;
  writeUint32(header, 1, ACK_ID_SIZE + length);
  writeUint32(header, FRAME_HEADER_SIZE, id);
  return header;
}

/**
 * Reads a `MESSAGE` payload.
 *
 * @throws {ProtocolError} With reason `payload` when it is shorter than an id.
 */
export function parseAckedMessage(payload: Uint8Array): { id: number; data: Uint8Array } {
  return { id: readId(payload, "MESSAGE"), data: payload.subarray(ACK_ID_SIZE) };
}

/**
 * Encodes an `ACK` frame for the `MESSAGE` with this id.
 *
 * @example
 * ```ts
 * import { encodeAck } from "@iot-manager/core/protocol";
 * console.log(encodeAck(7)); // Uint8Array(9) [18, 0, 0, 0, 4, 0, 0, 0, 7]
 * ```
 */
export function encodeAck(id: number): Uint8Array {
  const frame = encodeFrame(FrameType.ACK, new Uint8Array(ACK_ID_SIZE));
  new DataView(frame.buffer).setUint32(FRAME_HEADER_SIZE, id);
  return frame;
}

/**
 * Reads an `ACK` payload.
 *
 * @throws {ProtocolError} With reason `payload` unless it is exactly an id.
 */
export function parseAck(payload: Uint8Array): number {
  if (payload.length !== ACK_ID_SIZE) {
    throw new ProtocolError(
      "payload",
      `ACK carries a ${ACK_ID_SIZE}-byte id, got ${payload.length} bytes`,
    );
  }
  return readId(payload, "ACK");
}

/**
 * Encodes a `FEATURES` frame: the features the device uses.
 *
 * @example
 * ```ts
 * import { encodeFeatures } from "@iot-manager/core/protocol";
 * console.log(new TextDecoder().decode(encodeFeatures(["ack"]).subarray(5))); // {"features":["ack"]}
 * ```
 */
export function encodeFeatures(features: readonly Feature[]): Uint8Array {
  return encodeFrame(FrameType.FEATURES, JSON.stringify({ features }));
}

/**
 * Reads a `FEATURES` payload (or `WELCOME`'s `features` list); unknown names are ignored.
 *
 * @throws {ProtocolError} With reason `payload` when it is not `{"features": [...]}`.
 */
export function parseFeatures(payload: Uint8Array): Feature[] {
  let value: unknown;
  try {
    value = JSON.parse(decodeUtf8(payload));
  } catch (error) {
    throw new ProtocolError("payload", `FEATURES is not JSON: ${(error as Error).message}`);
  }
  const list = (value as { features?: unknown } | null)?.features;
  if (!Array.isArray(list)) {
    throw new ProtocolError("payload", 'FEATURES must be {"features": [...]}');
  }
  return knownFeatures(list);
}

/** The entries of `list` that are features this implementation knows. */
export function knownFeatures(list: readonly unknown[]): Feature[] {
  return FEATURES.filter((feature) => list.includes(feature));
}

function readId(payload: Uint8Array, frame: string): number {
  if (payload.length < ACK_ID_SIZE) {
    throw new ProtocolError("payload", `${frame} is shorter than its ${ACK_ID_SIZE}-byte id`);
  }
  return new DataView(payload.buffer, payload.byteOffset, ACK_ID_SIZE).getUint32(0);
}

/** Big-endian, without a DataView (a fan-out writes one header per device). */
function writeUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}
