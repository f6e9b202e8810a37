/**
 * The manager's side of the handshake on a fresh connection: send `getinfo`,
 * read until the answer is complete, invalid, too large or too late.
 *
 * @module
 */

import { ConnectionEnd, InvalidInfo } from "./errors.ts";
import { CHALLENGE_SIZE } from "./auth.ts";
import { HandshakeReader } from "./handshake_reader.ts";
import {
  type DeviceInfo,
  encodeFrame,
  FRAME_HEADER_SIZE,
  FrameType,
  GETINFO_BYTE,
  type ProtocolMode,
} from "./protocol.ts";

/** A handshake that succeeded. */
export interface Handshake {
  /** The mode the device chose. */
  readonly mode: ProtocolMode;
  /** Who the device says it is. */
  readonly info: DeviceInfo;
  /** Bytes that arrived after the answer (mode-2 frames), for the read loop. */
  readonly leftover: Uint8Array;
  /** The nonce sent in `CHALLENGE` (mode 2 with `challenge` on). */
  readonly challenge?: Uint8Array;
  /** The device's `PROOF` payload. */
  readonly proof?: Uint8Array;
}

/** Limits on one handshake. */
export interface HandshakeLimits {
  readonly validTypes: readonly string[];
  /** Seconds the device has to answer completely. */
  readonly timeout: number;
  /** Largest answer, in bytes. */
  readonly maxSize: number;
  /** Send mode-2 devices a `CHALLENGE` and wait for their `PROOF`. */
  readonly challenge?: boolean;
}

const MAX_PROOF_SIZE = 1024;

const GETINFO = Uint8Array.of(GETINFO_BYTE);
const READ_SIZE = 4096;

/**
 * Runs the handshake on `conn`. On failure the connection is left open for the
 * caller to say goodbye and close, except after a timeout, which closes it.
 *
 * @param conn A freshly accepted connection.
 * @param limits What the answer must respect.
 * @throws {InvalidInfo} When the answer is malformed, too large or too late.
 * @throws {ConnectionEnd} When the device leaves first.
 */
export async function acceptHandshake(
  conn: Deno.Conn,
  limits: HandshakeLimits,
): Promise<Handshake> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, limits.timeout * 1000);
  const reader = new HandshakeReader({ validTypes: limits.validTypes, maxSize: limits.maxSize });
  let missing = "nothing received yet";
  try {
    await writeAll(conn, GETINFO);
    const buffer = new Uint8Array(READ_SIZE);
    while (true) {
      const count = await conn.read(buffer);
      if (count === null) {
        throw new ConnectionEnd(
          "closed",
          `the device closed the connection (waiting for ${missing})`,
        );
      }
      const scan = reader.push(buffer.subarray(0, count));
      if (scan.status === "complete") {
        if (scan.mode === 2 && limits.challenge) {
          missing = "the PROOF frame";
          return { mode: 2, info: scan.info, ...await readProof(conn, scan.leftover) };
        }
        return { mode: scan.mode, info: scan.info, leftover: scan.leftover };
      }
      missing = scan.missing;
    }
  } catch (error) {
    if (timedOut) {
      const got = reader.received > 0 ? `${reader.received} bytes received, ` : "";
      throw new InvalidInfo(
        "timeout",
        `no complete handshake within ${limits.timeout} s (${got}waiting for ${missing})`,
      );
    }
    if (error instanceof InvalidInfo || error instanceof ConnectionEnd) throw error;
    throw new ConnectionEnd("io", `handshake failed: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
}

/** Sends a fresh nonce and reads the device's `PROOF` frame (at most {@linkcode MAX_PROOF_SIZE} bytes). */
async function readProof(
  conn: Deno.Conn,
  leftover: Uint8Array,
): Promise<{ leftover: Uint8Array; challenge: Uint8Array; proof: Uint8Array }> {
  const challenge = crypto.getRandomValues(new Uint8Array(CHALLENGE_SIZE));
  await writeAll(conn, encodeFrame(FrameType.CHALLENGE, challenge));
  // One fixed buffer for the frame: the work is linear in the bytes, whatever their split.
  const frame = new Uint8Array(FRAME_HEADER_SIZE + MAX_PROOF_SIZE);
  let filled = 0;
  let total = FRAME_HEADER_SIZE;
  let headerRead = false;
  let chunk = leftover;
  const buffer = new Uint8Array(READ_SIZE);
  while (true) {
    const take = Math.min(chunk.length, total - filled);
    frame.set(chunk.subarray(0, take), filled);
    filled += take;
    if (filled > 0 && frame[0] !== FrameType.PROOF) {
      throw new InvalidInfo(
        "auth",
        `expected a PROOF frame (0x08) after the CHALLENGE, got 0x${frame[0].toString(16)}`,
      );
    }
    if (!headerRead && filled === FRAME_HEADER_SIZE) {
      headerRead = true;
      const length = new DataView(frame.buffer).getUint32(1);
      if (length > MAX_PROOF_SIZE) {
        throw new InvalidInfo("auth", `PROOF frame of ${length} bytes is over ${MAX_PROOF_SIZE}`);
      }
      total += length;
      chunk = chunk.subarray(take);
      continue;
    }
    if (filled === total) {
      return {
        leftover: chunk.slice(take),
        challenge,
        proof: frame.slice(FRAME_HEADER_SIZE, total),
      };
    }
    const count = await conn.read(buffer);
    if (count === null) {
      throw new ConnectionEnd("closed", "the device closed the connection before its PROOF");
    }
    chunk = buffer.subarray(0, count);
  }
}

/** Writes every byte (a `Deno.Conn` write may be partial). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
