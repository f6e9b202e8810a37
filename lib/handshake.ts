/**
 * The manager's side of the handshake on a fresh connection: send `getinfo`,
 * read until the answer is complete, invalid, too large or too late.
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";
import { ConnectionEnd, InvalidInfo } from "./errors.ts";
import { type DeviceInfo, GETINFO_BYTE, type ProtocolMode, readHandshake } from "./protocol.ts";

/** A handshake that succeeded. */
export interface Handshake {
  /** The mode the device chose. */
  readonly mode: ProtocolMode;
  /** Who the device says it is. */
  readonly info: DeviceInfo;
  /** Bytes that arrived after the answer (mode-2 frames), for the read loop. */
  readonly leftover: Uint8Array;
}

/** Limits on one handshake. */
export interface HandshakeLimits {
  readonly validTypes: readonly string[];
  /** Seconds the device has to answer completely. */
  readonly timeout: number;
  /** Largest answer, in bytes. */
  readonly maxSize: number;
}

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
        throw new ConnectionEnd("closed", `the device closed the connection (${missing})`);
      }
      chunks.push(buffer.slice(0, count));
      const received = chunks.length === 1 ? chunks[0] : concatBytes(chunks);
      chunks.length = 0;
      chunks.push(received);
      const scan = readHandshake(received, limits.validTypes, limits.maxSize);
      if (scan.status === "complete") {
        return { mode: scan.mode, info: scan.info, leftover: received.subarray(scan.consumed) };
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

/** Writes every byte (a `Deno.Conn` write may be partial). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
