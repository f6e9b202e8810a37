/**
 * The device of `--segmentation`: a raw socket that answers the handshake
 * with a mode-1 answer of a given size, cut into writes of a given size and
 * pace, and waits for the server to close.
 *
 * @module
 */

import { DEVICE_TYPE, GETINFO } from "./handshake_server.ts";

/** How a device cuts its answer into writes. */
export interface Cutting {
  /** Bytes per write; `null` for the whole answer in one write. */
  readonly segmentSize: number | null;
  /** Microseconds between a write completing and the next one. */
  readonly gapMicroseconds: number;
}

const encoder = new TextEncoder();

/** A mode-1 answer of exactly `size` bytes: `UUID##light##{"pad":"xxx…"}`, with a new UUID. */
export function deviceAnswer(size: number): Uint8Array {
  const head = `${crypto.randomUUID()}##${DEVICE_TYPE}##{"pad":"`;
  const tail = `"}`;
  const pad = size - head.length - tail.length;
  if (pad < 0) throw new Error(`an answer cannot be as small as ${size} bytes`);
  return encoder.encode(head + "x".repeat(pad) + tail);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Spins until `microseconds` have passed: a timer cannot wait less than a millisecond. */
function spin(microseconds: number): void {
  const until = performance.now() + microseconds / 1000;
  while (performance.now() < until) { /* busy */ }
}

/**
 * One device: connects, waits for `getinfo`, writes its answer as `cut` says
 * (each write awaited), half-closes, and waits for the server to close. The
 * manager closes only after the handshake completed and it read the end of
 * stream; whether it registered the device is checked on its counters after
 * the case. A deadline closes the socket.
 */
export async function handshake(
  port: number,
  answer: Uint8Array,
  cut: Cutting,
  timeoutMs: number,
): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed meanwhile */ }
  }, timeoutMs);
  let step = "getinfo";
  try {
    conn.setNoDelay(true);
    const first = new Uint8Array(1);
    if (await conn.read(first) !== 1 || first[0] !== GETINFO) {
      throw new Error(`expected getinfo (0x01), got ${first[0]}`);
    }
    step = "writing the answer";
    const { segmentSize, gapMicroseconds } = cut;
    if (segmentSize === null) await writeAll(conn, answer);
    else {
      for (let offset = 0; offset < answer.length; offset += segmentSize) {
        if (offset > 0 && gapMicroseconds > 0) spin(gapMicroseconds);
        await writeAll(conn, answer.subarray(offset, offset + segmentSize));
      }
    }
    step = "the server to close";
    await conn.closeWrite();
    const rest = new Uint8Array(256);
    while (await conn.read(rest) !== null) { /* mode 1 sends nothing more */ }
  } catch (error) {
    if (timedOut) throw new Error(`a device timed out after ${timeoutMs} ms waiting for ${step}`);
    throw error;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the deadline */ }
  }
}
