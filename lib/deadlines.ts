/**
 * Many deadlines of one length under one timer: the manager's handshake
 * deadlines. Every handshake gets the same time (`handshakeTimeout`), so they
 * come due in the order they were set, and a queue with one timer armed for
 * its head replaces a timer per connection (in Deno a `setTimeout` allocates
 * about 1 KB and costs two ops; a burst of thousands of handshakes made one
 * each). A deadline cancelled early (the usual case: the handshake completed)
 * stays queued, emptied, until its time or the next compaction.
 *
 * @module
 */

/** One deadline: cancel it with {@linkcode DeadlineQueue.cancel}. */
export interface Deadline {
  /** When it comes due (`performance.now()` milliseconds). */
  readonly at: number;
  /** Called when it comes due; `null` once cancelled or called. */
  onExpire: (() => void) | null;
}

/** The longest delay a timer takes, in milliseconds (2³¹ − 1). */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** Queued deadlines past which cancelled ones are dropped when they are most of the queue. */
const COMPACT_AT = 1024;

/**
 * Deadlines of `ms` milliseconds each, in one queue with one timer.
 *
 * @example
 * ```ts
 * import { DeadlineQueue } from "./lib/deadlines.ts";
 * const deadlines = new DeadlineQueue(15_000);
 * const deadline = deadlines.add(() => console.log("too late"));
 * deadlines.cancel(deadline);
 * deadlines.close();
 * ```
 */
export class DeadlineQueue {
  readonly #ms: number;
  #queue: Deadline[] = [];
  /** Index of the first entry still in the queue (entries before it are done). */
  #head = 0;
  #cancelled = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param ms The length of every deadline, in milliseconds. */
  constructor(ms: number) {
    this.#ms = ms;
  }

  /** Deadlines queued and neither due nor cancelled. */
  get pending(): number {
    return this.#queue.length - this.#head - this.#cancelled;
  }

  /** Starts a deadline: `onExpire` runs `ms` from now unless it is cancelled first. */
  add(onExpire: () => void): Deadline {
    const deadline: Deadline = { at: performance.now() + this.#ms, onExpire };
    this.#queue.push(deadline);
    if (this.#timer === undefined) this.#arm(deadline.at);
    return deadline;
  }

  /** Cancels a deadline (nothing happens if it already came due). */
  cancel(deadline: Deadline): void {
    if (deadline.onExpire === null) return;
    deadline.onExpire = null;
    this.#cancelled++;
    const queued = this.#queue.length - this.#head;
    if (queued > COMPACT_AT && this.#cancelled * 2 > queued) this.#compact();
  }

  /** Stops the timer; deadlines still queued never run. Idempotent. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
    this.#head = 0;
    this.#cancelled = 0;
  }

  #arm(at: number): void {
    // A longer delay would fire at once (timers hold 32 bits); firing early just re-arms.
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, at - performance.now()));
    this.#timer = setTimeout(() => this.#due(), delay);
  }

  /** Runs every deadline that has come due, then arms the timer for the next one, if any. */
  #due(): void {
    this.#timer = undefined;
    const now = performance.now();
    const queue = this.#queue;
    // A callback that throws must not strand the deadlines behind it: the first error is
    // rethrown once the rest have run and the timer is armed again.
    let failure: { error: unknown } | null = null;
    while (this.#head < queue.length) {
      const deadline = queue[this.#head];
      if (deadline.onExpire !== null && deadline.at > now) break;
      this.#head++;
      const onExpire = deadline.onExpire;
      if (onExpire === null) {
        this.#cancelled--;
        continue;
      }
      deadline.onExpire = null;
      try {
        onExpire();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (this.#head === queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else {
      if (this.#head > COMPACT_AT) this.#compact();
      this.#arm(this.#queue[this.#head].at);
    }
    if (failure) throw failure.error;
  }

  /** Drops done and cancelled entries; the order of the rest is kept. */
  #compact(): void {
    this.#queue = this.#queue.slice(this.#head).filter((deadline) => deadline.onExpire !== null);
    this.#head = 0;
    this.#cancelled = 0;
  }
}
