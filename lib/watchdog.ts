/**
 * Fleet-wide write watchdog: one timer checks every connection for a write
 * that has made no progress for `timeout` seconds (a device that stopped
 * reading while its kernel buffers are full), instead of a timer per write.
 *
 * @module
 */

/** What the watchdog needs from a connection. */
import { type StallClock, stallClock } from "./stall_clock.ts";

export interface WriteTarget {
  /** When the write in progress started (`performance.now()`), or 0 when none is. */
  readonly writeStartedAt: number;
  /** Called when that write has been stuck for longer than the timeout. */
  writeTimedOut(timeoutSeconds: number): void;
}

/**
 * Periodically disconnects connections whose writes are stuck.
 *
 * @example
 * ```ts
 * import { WriteWatchdog } from "./lib/watchdog.ts";
 * const watchdog = new WriteWatchdog({ timeout: 30, targets: () => [] });
 * watchdog.start();
 * watchdog.stop();
 * ```
 */
export class WriteWatchdog {
  readonly #timeout: number;
  readonly #targets: () => Iterable<WriteTarget>;
  readonly #clock: StallClock;
  #interval: ReturnType<typeof setInterval> | undefined;

  /**
   * @param options.timeout Seconds a write may make no progress.
   * @param options.targets The live fleet, read afresh at each check.
   */
  constructor(
    options: { timeout: number; targets: () => Iterable<WriteTarget>; clock?: StallClock },
  ) {
    this.#timeout = options.timeout;
    this.#targets = options.targets;
    this.#clock = options.clock ?? stallClock;
  }

  /** Starts checking, four times per timeout (at most every 5 s, at least every 50 ms). */
  start(): void {
    if (this.#interval !== undefined) return;
    this.#clock.acquire();
    const period = Math.min(5000, Math.max(50, (this.#timeout * 1000) / 4));
    this.#interval = setInterval(() => this.check(), period);
  }

  /** Checks every connection now. */
  check(): void {
    // Running time only: a write cannot progress while this process is stalled.
    const limit = this.#timeout * 1000;
    const now = performance.now();
    const stuck: WriteTarget[] = [];
    for (const target of this.#targets()) {
      const since = target.writeStartedAt;
      if (since !== 0 && now - since > limit && this.#clock.elapsedSince(since, now) > limit) {
        stuck.push(target);
      }
    }
    for (const target of stuck) target.writeTimedOut(this.#timeout);
  }

  /** Stops checking. Idempotent. */
  stop(): void {
    if (this.#interval === undefined) return;
    clearInterval(this.#interval);
    this.#interval = undefined;
    this.#clock.release();
  }
}
