/**
 * The send side of one connection: a bounded byte buffer and one write pump.
 *
 * Messages queued while a write is in flight are coalesced into the next
 * write, so a burst of broadcasts costs one syscall per device, not one per
 * message. When the buffer would pass its limit the connection is reported as
 * a slow reader instead of growing memory.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { concatBytes } from "./bytes.ts";

let taskEnd: Promise<void> | null = null;

/**
 * Resolves once the current task and its microtasks are done: one `setImmediate`
 * however many outboxes wait. (`setTimeout(0)` costs milliseconds in Deno.)
 */
function afterThisTask(): Promise<void> {
  return taskEnd ??= new Promise((resolve) =>
    setImmediate(() => {
      taskEnd = null;
      resolve();
    })
  );
}

/** The last batch joined from several chunks, and the chunks it was joined from. */
let lastJoined: { readonly chunks: readonly Uint8Array[]; readonly batch: Uint8Array } | null =
  null;

/**
 * Joins queued chunks into one write. After a burst of broadcasts every outbox
 * holds the same chunks (the same arrays: a broadcast is encoded once), so the
 * join done for the first outbox is reused by the rest instead of copying the
 * burst again for each device. Chunks are never modified once queued.
 */
function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const last = lastJoined;
  if (last !== null && last.chunks.length === chunks.length) {
    let same = true;
    for (let i = 0; i < chunks.length && same; i++) same = chunks[i] === last.chunks[i];
    if (same) return last.batch;
  }
  const batch = concatBytes(chunks);
  lastJoined = { chunks, batch };
  return batch;
}

/** The writable half of a connection. */
export interface ByteSink {
  /** Writes some of `bytes`, returning how many were written. */
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * A per-connection send buffer with a single write loop.
 *
 * @example
 * ```ts
 * import { Outbox } from "./lib/outbox.ts";
 * const written: Uint8Array[] = [];
 * const outbox = new Outbox({ write: async (b) => (written.push(b), b.length) }, {
 *   maxBufferedBytes: 1024,
 *   onError: console.error,
 * });
 * outbox.enqueue(new TextEncoder().encode("hi"));
 * await outbox.flushed();
 * ```
 */
export class Outbox {
  readonly #sink: ByteSink;
  readonly #maxBufferedBytes: number;
  readonly #onError: (error: Error, overflow: boolean) => void;
  readonly #coalesceWithinTask: boolean;
  /** Bytes queued behind the write in progress; `null` when none (an idle device's usual state). */
  #chunks: Uint8Array[] | null = null;
  #buffered = 0;
  #enqueuedTotal = 0;
  #writtenTotal = 0;
  #writing = false;
  #writeStartedAt = 0;
  #failed: Error | null = null;
  #flushWaiters: { at: number; resolve: () => void; reject: (error: Error) => void }[] | null =
    null;

  /**
   * @param sink Where bytes go.
   * @param options.maxBufferedBytes Bytes held unsent before the connection counts as a slow reader.
   * @param options.onError Called once when a write fails or the buffer overflows.
   * @param options.coalesceWithinTask Hold what queues behind a write until the current task
   *   ends. For sinks whose writes complete within the task that started them (TLS), where a
   *   burst of awaited sends would otherwise leave one message per write. @default false
   */
  constructor(
    sink: ByteSink,
    options: {
      maxBufferedBytes: number;
      onError: (error: Error, overflow: boolean) => void;
      coalesceWithinTask?: boolean;
    },
  ) {
    this.#sink = sink;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#onError = options.onError;
    this.#coalesceWithinTask = options.coalesceWithinTask ?? false;
  }

  /** When the write now in progress started (`performance.now()`), or 0 when none is. */
  get writeStartedAt(): number {
    return this.#writeStartedAt;
  }

  /** Bytes queued and not yet written. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Queues bytes for writing. The array must not be modified afterwards; the
   * same array may be queued on many outboxes (broadcasts encode once).
   *
   * @returns `false` when the outbox has failed or the bytes would overflow it.
   */
  enqueue(bytes: Uint8Array): boolean {
    if (this.#failed) return false;
    if (this.#buffered + bytes.length > this.#maxBufferedBytes) {
      this.#fail(
        new Error(`send buffer full: ${this.#buffered} bytes unsent, the device is not reading`),
        true,
      );
      return false;
    }
    (this.#chunks ??= []).push(bytes);
    this.#buffered += bytes.length;
    this.#enqueuedTotal += bytes.length;
    if (!this.#writing) this.#pump();
    return true;
  }

  /** Resolves when everything queued so far has been written; rejects if writing fails first. */
  flushed(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#writtenTotal >= this.#enqueuedTotal) return Promise.resolve();
    const waiter = { at: this.#enqueuedTotal, ...Promise.withResolvers<void>() };
    (this.#flushWaiters ??= []).push(waiter);
    return waiter.promise;
  }

  /** Stops writing; pending flushes reject with `error`. Idempotent. */
  fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = error;
    this.#chunks = null;
    this.#buffered = 0;
    for (const waiter of this.#flushWaiters ?? []) waiter.reject(error);
    this.#flushWaiters = null;
  }

  #fail(error: Error, overflow: boolean): void {
    if (this.#failed) return;
    this.fail(error);
    this.#onError(error, overflow);
  }

  /**
   * The write loop, as callbacks rather than an async function: a write costs
   * its op's promise and one `then`, with no suspended frame per write (each
   * heartbeat and each device of a broadcast is one).
   */
  #pump(): void {
    this.#writing = true;
    this.#take();
  }

  /** Joins what is queued into one batch and starts writing it; ends the loop when nothing is. */
  #take(): void {
    if (this.#chunks === null || this.#failed) return this.#idle();
    const batch = joinChunks(this.#chunks);
    this.#chunks = null;
    this.#write(batch, 0);
  }

  #write(batch: Uint8Array, offset: number): void {
    this.#writeStartedAt = performance.now();
    let written: Promise<number>;
    try {
      written = this.#sink.write(offset === 0 ? batch : batch.subarray(offset));
    } catch (error) {
      return this.#writeFailed(error);
    }
    written.then(
      (count) => this.#wrote(batch, offset, count),
      (error) => this.#writeFailed(error),
    );
  }

  #wrote(batch: Uint8Array, offset: number, count: number): void {
    try {
      this.#writeStartedAt = 0;
      if (this.#failed) return this.#idle();
      // The limit counts bytes not yet written: a partial write frees what it wrote.
      this.#buffered -= count;
      if (offset + count < batch.length) return this.#write(batch, offset + count);
      this.#writtenTotal += batch.length;
      this.#resolveFlushes();
      if (this.#chunks === null) return this.#idle();
      if (!this.#coalesceWithinTask) return this.#take();
      afterThisTask().then(() => this.#take()).catch((error) => this.#writeFailed(error));
    } catch (error) {
      this.#writeFailed(error);
    }
  }

  #writeFailed(error: unknown): void {
    this.#idle();
    this.#fail(error instanceof Error ? error : new Error(String(error)), false);
  }

  #idle(): void {
    this.#writing = false;
    this.#writeStartedAt = 0;
  }

  #resolveFlushes(): void {
    const waiters = this.#flushWaiters;
    if (waiters === null) return;
    let done = 0;
    while (done < waiters.length && waiters[done].at <= this.#writtenTotal) {
      waiters[done++].resolve();
    }
    if (done === waiters.length) this.#flushWaiters = null;
    else if (done > 0) waiters.splice(0, done);
  }
}
