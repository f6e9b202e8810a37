/**
 * Runs application handlers with a cap on how many are in flight: the seed's
 * `max_workers` thread pool, for async functions. Calls past the cap wait in
 * arrival order. A handler that throws or rejects is reported and never
 * affects the others. A handler still running after `slotTimeout` is reported
 * and stops counting against the cap (it cannot be cancelled, but it no longer
 * blocks the handlers behind it); one timer checks all running handlers.
 *
 * Lifecycle calls (`connect`, `disconnect`) wait in a lane of their own that is
 * served before the message backlog, and {@linkcode HandlerPool.close} drops
 * the message backlog (returning its size) while still running every
 * lifecycle call, at once, whatever the limit: a shutdown never waits for
 * thousands of queued messages and never skips a `disconnect`.
 *
 * @module
 */

/** A handler call waiting for a slot. */
type Task = () => unknown;
/** What a failing task is reported with. */
type TaskContext = Record<string, unknown>;
/** An async handler call in flight. */
type InFlight = { readonly startedAt: number; readonly context: TaskContext; released: boolean };

/**
 * A FIFO of handler calls with a concurrency limit.
 *
 * @example
 * ```ts
 * import { HandlerPool } from "./lib/pool.ts";
 * const pool = new HandlerPool({ concurrency: 2, onError: (error) => console.error(error) });
 * pool.run(async () => console.log("handled"));
 * await pool.idle();
 * ```
 */
export class HandlerPool {
  readonly #concurrency: number;
  readonly #highWaterMark: number;
  readonly #onError: (error: unknown, context: TaskContext) => void;
  #running = 0;
  #queue: { task: Task; context: TaskContext }[] = [];
  #head = 0;
  /** Lifecycle calls waiting for a slot; few, so a plain array. */
  #lifecycle: { task: Task; context: TaskContext }[] = [];
  #closed = false;
  #idle: PromiseWithResolvers<void> | null = null;
  #space: PromiseWithResolvers<void> | null = null;
  readonly #slotTimeoutMs: number;
  readonly #onSlow: (context: TaskContext, seconds: number) => void;
  readonly #inFlight = new Set<InFlight>();
  #sweep: ReturnType<typeof setInterval> | undefined;

  /**
   * @param options.concurrency Most calls in flight at once.
   * @param options.highWaterMark Waiting calls before `run` asks producers to pause. @default 10000
   * @param options.onError Called with whatever a handler threw or rejected with.
   * @param options.slotTimeout Seconds before a running handler stops holding a slot. @default 30
   * @param options.onSlow Called when a handler passes `slotTimeout`.
   */
  constructor(
    options: {
      concurrency: number;
      highWaterMark?: number;
      onError: (error: unknown, context: TaskContext) => void;
      slotTimeout?: number;
      onSlow?: (context: TaskContext, seconds: number) => void;
    },
  ) {
    this.#concurrency = Math.max(1, options.concurrency);
    this.#highWaterMark = options.highWaterMark ?? 10_000;
    this.#onError = options.onError;
    this.#slotTimeoutMs = (options.slotTimeout ?? 30) * 1000;
    this.#onSlow = options.onSlow ?? (() => {});
  }

  /** Stops the slow-handler check (call on shutdown). */
  stop(): void {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** Calls in flight. */
  get running(): number {
    return this.#running;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.#queue.length - this.#head + this.#lifecycle.length;
  }

  /**
   * Starts `task` now if a slot is free, else queues it in its lane (lifecycle
   * calls go before waiting message calls). After {@linkcode HandlerPool.close}
   * a message call is dropped and a lifecycle call starts at once.
   *
   * @param context Reported with the error if the task fails.
   * @param lane `"lifecycle"` for `connect`/`disconnect` handlers. @default "message"
   * @returns `false` when the message queue is at its high-water mark: await `writable()`.
   */
  run(task: Task, context: TaskContext = {}, lane: "message" | "lifecycle" = "message"): boolean {
    if (lane === "lifecycle") {
      // After close() lifecycle calls start at once: the shutdown grace is all they get.
      if (this.#closed || this.#running < this.#concurrency) this.#start(task, context);
      else this.#lifecycle.push({ task, context });
      return true;
    }
    if (this.#closed) return true; // dropped: the pool is shutting down
    if (this.#running < this.#concurrency) this.#start(task, context);
    else this.#queue.push({ task, context });
    return this.#messagesWaiting() < this.#highWaterMark;
  }

  writable(): Promise<void> {
    if (this.#messagesWaiting() < this.#highWaterMark) return Promise.resolve();
    this.#space ??= Promise.withResolvers<void>();
    return this.#space.promise;
  }

  /** Resolves when nothing is running or waiting. */
  idle(): Promise<void> {
    if (this.#running === 0 && this.waiting === 0) return Promise.resolve();
    this.#idle ??= Promise.withResolvers<void>();
    return this.#idle.promise;
  }

  /**
   * Stops taking message calls: drops the ones still waiting and starts every
   * waiting lifecycle call now. Calls already running go on. Idempotent.
   *
   * @returns How many message calls were dropped.
   */
  close(): number {
    if (this.#closed) return 0;
    this.#closed = true;
    const dropped = this.#queue.length - this.#head;
    this.#queue = [];
    this.#head = 0;
    for (const { task, context } of this.#lifecycle.splice(0)) this.#start(task, context);
    this.#space?.resolve();
    this.#space = null;
    if (this.#running === 0) {
      this.#idle?.resolve();
      this.#idle = null;
    }
    return dropped;
  }

  #messagesWaiting(): number {
    return this.#queue.length - this.#head;
  }

  #start(task: Task, context: TaskContext): void {
    this.#running++;
    let result: unknown;
    try {
      result = task();
    } catch (error) {
      this.#onError(error, context);
    }
    if (result instanceof Promise) {
      const entry: InFlight = { startedAt: performance.now(), context, released: false };
      this.#inFlight.add(entry);
      this.#sweep ??= setInterval(
        () => this.#releaseSlow(),
        Math.min(1000, Math.max(10, this.#slotTimeoutMs / 2)),
      );
      const settle = () => {
        this.#inFlight.delete(entry);
        if (this.#inFlight.size === 0) this.stop();
        if (!entry.released) this.#finish();
      };
      result.then(settle, (error) => {
        this.#onError(error, context);
        settle();
      });
    } else {
      this.#running--;
    }
  }

  #releaseSlow(): void {
    const limit = performance.now() - this.#slotTimeoutMs;
    for (const entry of this.#inFlight) {
      if (entry.released || entry.startedAt > limit) continue;
      entry.released = true;
      this.#onSlow(entry.context, this.#slotTimeoutMs / 1000);
      this.#finish();
    }
  }

  #finish(): void {
    this.#running--;
    // A loop, not recursion: a run of synchronous handlers must not grow the stack.
    while (this.#running < this.#concurrency && this.#lifecycle.length > 0) {
      const next = this.#lifecycle.shift()!;
      this.#start(next.task, next.context);
    }
    while (this.#running < this.#concurrency && this.#head < this.#queue.length) {
      const next = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined as unknown as { task: Task; context: TaskContext };
      this.#start(next.task, next.context);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#space && this.#messagesWaiting() < this.#highWaterMark) {
      this.#space.resolve();
      this.#space = null;
    }
    if (this.#running === 0 && this.waiting === 0 && this.#idle) {
      this.#idle.resolve();
      this.#idle = null;
    }
  }
}
