/**
 * Closing a connection without losing the goodbye. Shared by the manager's
 * connections and the device client: both ends face the same kernel rule.
 *
 * @module
 */

import type { Transport } from "./transport.ts";
import type { Outbox } from "./outbox.ts";

/** How long either end waits for its goodbye to be written, and then for the peer to close (ms). */
export const FAREWELL_GRACE_MS = 1000;

/**
 * Waits for `promise`, but no longer than `ms`; never rejects and leaves no timer behind.
 *
 * @example
 * ```ts
 * import { withGrace } from "./lib/graceful.ts";
 * await withGrace(new Promise(() => {}), 10); // gives up after 10 ms
 * ```
 */
export async function withGrace(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.then(() => {}, () => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

/** What {@linkcode closeGracefully} needs from a connection. */
export interface GracefulClose {
  readonly conn: Transport;
  readonly outbox: Outbox;
  /** The goodbye to write first (`END` or `end\n`), if any. */
  readonly farewell: Uint8Array | null;
  /** Half-close and wait for the peer to close its end before closing. */
  readonly halfClose: boolean;
  /** Resolves when the peer has closed its end (the read loop saw end of stream). */
  readonly peerClosed: () => Promise<void>;
  /** Why the outbox stops: what pending flushes reject with. */
  readonly reason: Error;
  /** Longest wait for each step, in milliseconds. */
  readonly graceMs: number;
}

/**
 * Writes the goodbye, stops the outbox, and closes. Closing a socket with
 * unread input makes the kernel reset the connection, and the peer loses the
 * goodbye already written: so with `halfClose` it shuts the write side first and
 * waits (within the grace) for the peer to close its end, while the read loop
 * discards whatever still arrives.
 *
 * @example
 * ```ts ignore
 * await closeGracefully({ conn, outbox, farewell, halfClose: true, peerClosed, reason, graceMs: 1000 });
 * ```
 */
export async function closeGracefully(close: GracefulClose): Promise<void> {
  if (close.farewell && close.outbox.enqueue(close.farewell)) {
    await withGrace(close.outbox.flushed(), close.graceMs);
  }
  close.outbox.fail(close.reason);
  if (close.halfClose) {
    await withGrace(close.conn.closeWrite().then(close.peerClosed), close.graceMs);
  }
  try {
    close.conn.close();
  } catch {
    // already closed by the peer or the runtime
  }
}
