/**
 * The manager's side of the handshake on a fresh connection: send `getinfo`,
 * read until the answer is complete, invalid, too large or too late.
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";
import { ConnectionEnd, InvalidInfo } from "./errors.ts";
import { CHALLENGE_SIZE } from "./auth.ts";
import {
  type DeviceInfo,
  encodeFrame,
  FrameType,
  GETINFO_BYTE,
  type ProtocolMode,
  readFrameAt,
  readHandshake,
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
  const chunks: Uint8Array[] = [];
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
      chunks.push(buffer.slice(0, count));
      const received = chunks.length === 1 ? chunks[0] : concatBytes(chunks);
      chunks.length = 0;
      chunks.push(received);
      const scan = readHandshake(received, limits.validTypes, limits.maxSize);
      if (scan.status === "complete") {
        const leftover = received.subarray(scan.consumed);
        if (scan.mode === 2 && limits.challenge) {
          missing = "the PROOF frame";
          return { mode: 2, info: scan.info, ...await readProof(conn, leftover) };
        }
        return { mode: scan.mode, info: scan.info, leftover };
      }
      missing = scan.missing;
    }
  } catch (error) {
    if (timedOut) {
      const got = chunks.length ? `${chunks[0].length} bytes received, ` : "";
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

/** Sends a fresh nonce and reads the device's `PROOF` frame. */
async function readProof(
  conn: Deno.Conn,
  leftover: Uint8Array,
): Promise<{ leftover: Uint8Array; challenge: Uint8Array; proof: Uint8Array }> {
  const challenge = crypto.getRandomValues(new Uint8Array(CHALLENGE_SIZE));
  await writeAll(conn, encodeFrame(FrameType.CHALLENGE, challenge));
  let received = leftover;
  const buffer = new Uint8Array(READ_SIZE);
  while (true) {
    if (received.length > 0 && received[0] !== FrameType.PROOF) {
      throw new InvalidInfo(
        "auth",
        `expected a PROOF frame (0x08) after the CHALLENGE, got 0x${received[0].toString(16)}`,
      );
    }
    const frame = readFrameAt(received, 0);
    if (frame) {
      return { leftover: received.subarray(frame.end), challenge, proof: frame.payload.slice() };
    }
    if (
      received.length >= 5 &&
      new DataView(received.buffer, received.byteOffset).getUint32(1) > MAX_PROOF_SIZE
    ) {
      throw new InvalidInfo("auth", `PROOF frame over ${MAX_PROOF_SIZE} bytes`);
    }
    const count = await conn.read(buffer);
    if (count === null) {
      throw new ConnectionEnd("closed", "the device closed the connection before its PROOF");
    }
    received = concatBytes([received, buffer.subarray(0, count)]);
  }
}

/** Writes every byte (a `Deno.Conn` write may be partial). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
