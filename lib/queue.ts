/**
 * The bounded async queue behind every iterator the library hands out.
 *
 * Modelled on nats.js `QueuedIterator`: pending items sit in one array that the
 * consumer swaps out whole per wake-up (no promise per item), one deferred
 * signal wakes the consumer, and `stop()` ends iteration (with an error, if
 * given) and resolves `closed`. Unlike nats.js the queue is bounded: `push`
 * says when it holds `highWaterMark` items, and producers wait on `writable()`
 * before sending more. That is how a slow consumer pauses the socket reads
 * feeding it instead of growing memory without limit.
 *
 * @module
 */

/**
 * A single-consumer async queue with a high-water mark.
 *
 * @example
 * ```ts
 * import { AsyncQueue } from "./lib/queue.ts";
 * const queue = new AsyncQueue<number>();
 * queue.push(1);
 * queue.push(2);
 * queue.stop();
 * for await (const n of queue) console.log(n); // 1, then 2
 * ```
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #highWaterMark: number;
  readonly #onStop: (() => void) | undefined;
  #items: T[] = [];
  #wake: PromiseWithResolvers<void> | null = null;
  #space: PromiseWithResolvers<void> | null = null;
  #stopped = false;
  #error: unknown = undefined;
  #iterating = false;
  readonly #closed = Promise.withResolvers<void>();

  /**
   * @param options.highWaterMark Items held before `push` reports the queue full. @default 1024
   * @param options.onStop Called once when the queue stops, by `stop()` or by the consumer's `break`.
   * @param options.signal Stops the queue when aborted, waking a waiting consumer.
   */
  constructor(
    options: { highWaterMark?: number; onStop?: () => void; signal?: AbortSignal } = {},
  ) {
    this.#highWaterMark = options.highWaterMark ?? 1024;
    const signal = options.signal;
    if (signal) {
      const abort = () => this.stop();
      signal.addEventListener("abort", abort, { once: true });
      this.#onStop = () => {
        signal.removeEventListener("abort", abort);
        options.onStop?.();
      };
      if (signal.aborted) this.stop();
    } else {
      this.#onStop = options.onStop;
    }
  }

  /** Items waiting for the consumer. */
  get size(): number {
    return this.#items.length;
  }

  /** True while the queue holds `highWaterMark` items or more (producers should wait on `writable()`). */
  get full(): boolean {
    return !this.#stopped && this.#items.length >= this.#highWaterMark;
  }

  /** True once stopped; pushes are then ignored. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Resolves when the queue has stopped and its consumer is gone. */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /**
   * Adds an item for the consumer.
   *
   * @returns `false` when the queue is now at its high-water mark: wait on `writable()`.
   */
  push(item: T): boolean {
    if (this.#stopped) return true;
    this.#items.push(item);
    if (this.#wake) {
      this.#wake.resolve();
      this.#wake = null;
    }
    return this.#items.length < this.#highWaterMark;
  }

  /** Resolves when the queue is below its high-water mark again, or stopped. */
  writable(): Promise<void> {
    if (this.#stopped || this.#items.length < this.#highWaterMark) return Promise.resolve();
    this.#space ??= Promise.withResolvers<void>();
    return this.#space.promise;
  }

  /**
   * Ends the queue: the consumer gets what is pending, then `done` (or `error`, thrown).
   * Idempotent.
   */
  stop(error?: unknown): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#error = error;
    this.#wake?.resolve();
    this.#wake = null;
    this.#releaseSpace();
    this.#onStop?.();
    if (!this.#iterating) this.#closed.resolve();
  }

  /** The consumer's side; a queue has one consumer. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    if (this.#iterating) throw new TypeError("AsyncQueue has a single consumer");
    this.#iterating = true;
    try {
      while (true) {
        if (this.#items.length === 0) {
          if (this.#stopped) break;
          this.#wake = Promise.withResolvers<void>();
          await this.#wake.promise;
          continue;
        }
        const batch = this.#items;
        this.#items = [];
        this.#releaseSpace();
        for (const item of batch) yield item;
      }
      if (this.#error !== undefined) throw this.#error;
    } finally {
      this.#items = [];
      this.stop();
      this.#closed.resolve();
    }
  }

  #releaseSpace(): void {
    if (this.#space) {
      this.#space.resolve();
      this.#space = null;
    }
  }
}
