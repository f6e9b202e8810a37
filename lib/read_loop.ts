/**
 * The read side of one connection, shared by both ends (the manager's
 * `Connection` and the device's `Link`): read, hand the bytes over, pause
 * while the application is behind, and once the connection has ended read on
 * only to discard what the peer still sends until it closes (closing with
 * unread input would reset the connection and lose the goodbye; see
 * `graceful.ts`). One async function per connection: its suspended frame is
 * part of every idle device's cost.
 *
 * @module
 */

import type { Transport } from "./transport.ts";

/** What the read loop needs from the end of the connection that owns it. */
export interface ReadLoopOwner {
  /** True once the connection has ended (its `terminate` ran). */
  readonly ended: boolean;
  /**
   * Bytes arrived while the connection is open: the first `length` of
   * `bytes`, a buffer the next read reuses (so not to be kept).
   */
  received(bytes: Uint8Array, length: number): void;
  /** The peer closed its end (end of stream, or the read failed). */
  peerClosed(): void;
  /** The peer closed while the connection was open. */
  peerLeft(): void;
  /** A wait for the application to catch up, if the last bytes asked for one (taken). */
  takeStall(): Promise<unknown> | undefined;
  /** Reading is paused (`true`) or resumes (`false`) around a stall. */
  paused(paused: boolean): void;
  /** Resolves when the connection ends, so a stall does not outlive it. */
  whenEnded(): Promise<void>;
  /** Ends the connection after a read failure or an internal error (no farewell). */
  failed(message: string, error: unknown, internal: boolean): void;
}

/**
 * Runs the read loop until the peer closes or the read fails.
 *
 * @param conn The socket.
 * @param owner The end of the connection reading it.
 * @param sizes Read buffer sizes: it starts at `smallest` and grows (×8, up to
 *   `largest`) while reads fill it, and shrinks back when they do not, so an
 *   idle connection holds a small buffer while its read is pending.
 * @param first Bytes that arrived before the loop started (with the handshake).
 */
export async function readLoop(
  conn: Transport,
  owner: ReadLoopOwner,
  sizes: { readonly smallest: number; readonly largest: number },
  first?: Uint8Array,
): Promise<void> {
  const { smallest, largest } = sizes;
  try {
    if (first && first.length > 0) owner.received(first, first.length);
    // The suspended loop keeps its locals: let the handshake's leftover (and its buffer) go.
    first = undefined;
    let stall = owner.takeStall();
    if (stall) await pause(owner, stall);
    let buffer = new Uint8Array(smallest);
    while (true) {
      let count: number | null;
      try {
        count = await conn.read(buffer);
      } catch (error) {
        owner.peerClosed();
        if (!owner.ended) owner.failed(`read failed: ${(error as Error).message}`, error, false);
        return;
      }
      if (count === null) owner.peerClosed();
      // Once ended, read on only to discard what the peer still sends until it closes.
      if (owner.ended) {
        if (count === null) return;
        continue;
      }
      if (count === null) {
        owner.peerLeft();
        return;
      }
      owner.received(buffer, count);
      if (count === buffer.length && buffer.length < largest) {
        buffer = new Uint8Array(Math.min(largest, buffer.length * 8));
      } else if (count < smallest && buffer.length > smallest) {
        buffer = new Uint8Array(smallest);
      }
      stall = owner.takeStall();
      if (stall) await pause(owner, stall);
    }
  } catch (error) {
    owner.failed(`internal error: ${String(error)}`, error, true);
  }
}

async function pause(owner: ReadLoopOwner, stall: Promise<unknown>): Promise<void> {
  owner.paused(true);
  await Promise.race([stall, owner.whenEnded()]);
  owner.paused(false);
}
