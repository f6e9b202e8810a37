/**
 * Time the process itself was not running. A garbage-collection pause, a
 * blocked event loop, a paused VM or a SIGSTOP delays every timer; a liveness
 * check that then compares wall-clock times blames the peer for the pause.
 * One pulse per process (a timer every 250 ms, unreferenced, running only
 * while some manager or device uses it) notes how late it fires, and the
 * liveness checks (heartbeats, the write watchdog, a device's keepalive)
 * measure their deadlines in running time: wall time minus those stalls.
 *
 * @module
 */

/** How often the pulse looks at the clock (ms). */
const PULSE_MS = 250;
/** Lateness below this is scheduling noise, not a stall (ms). */
const NOISE_MS = 50;
/** Most stalls remembered; older ones are forgotten first. */
const MEMORY = 4096;

/**
 * Remembers the stalls the pulse revealed. Use {@linkcode stallClock}, the
 * process's one instance.
 *
 * @example
 * ```ts
 * import { stallClock } from "./lib/stall_clock.ts";
 * stallClock.acquire();
 * const since = performance.now();
 * console.log(stallClock.elapsedSince(since) >= 0); // true
 * stallClock.release();
 * ```
 */
export class StallClock {
  /** Stalls as [start, end) in `performance.now()` milliseconds, oldest first. */
  #stalls: [number, number][] = [];
  #users = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastRan = 0;

  /** Starts the pulse for one more user (a manager, a device connection). */
  acquire(): void {
    if (this.#users++ === 0) this.#schedule();
  }

  /** Stops the pulse once its last user has released it. */
  release(): void {
    if (this.#users === 0) return;
    if (--this.#users === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /**
   * Records that the process did not run between `due` and `now` (a timer
   * due at `due` ran only at `now`).
   *
   * @param due When the timer was due (`performance.now()`).
   * @param now When it ran. @default performance.now()
   */
  timerFired(due: number, now: number = performance.now()): void {
    if (now <= due) return;
    const last = this.#stalls.at(-1);
    if (last && due <= last[1]) last[1] = Math.max(last[1], now);
    else this.#stalls.push([due, now]);
    if (this.#stalls.length > MEMORY) this.#stalls.shift();
  }

  /**
   * Milliseconds between `from` and `now` during which the process ran.
   *
   * @param from A `performance.now()` time.
   * @param now The end of the span. @default performance.now()
   */
  elapsedSince(from: number, now: number = performance.now()): number {
    let stalled = 0;
    for (let i = this.#stalls.length - 1; i >= 0; i--) {
      const [start, end] = this.#stalls[i];
      if (end <= from) break;
      stalled += Math.max(0, Math.min(end, now) - Math.max(start, from));
    }
    return now - from - stalled;
  }

  #schedule(): void {
    this.#lastRan = performance.now();
    const timer = setTimeout(() => {
      // The process ran at #lastRan and now; when it stopped in between is unknown, so the
      // whole late gap counts as the stall: a peer gets the benefit of the doubt, never less.
      const now = performance.now();
      if (now - this.#lastRan - PULSE_MS >= NOISE_MS) this.timerFired(this.#lastRan, now);
      if (this.#users > 0) this.#schedule();
    }, PULSE_MS);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }
}

/** The process's stall clock, shared by every manager and device in it. */
export const stallClock: StallClock = new StallClock();
