/**
 * The device's watch on the manager's silence (MQTT clients keep the same
 * watch with their keepalive): longer than the limit, in this process's
 * running time, without a byte from the manager, and it counts as gone. One
 * timer per connection, re-armed only when it fires; a read paused because the
 * application is behind is not the manager's silence.
 *
 * @module
 */

import { stallClock } from "./stall_clock.ts";

/**
 * The keepalive limit for a manager's promise of `seconds`: 10 % more, and at
 * least 1 s more, so that a short pause of the manager (which it forgives
 * itself) does not drop a whole fleet at once. The Python device uses the same.
 *
 * @example
 * ```ts
 * import { withSlack } from "./lib/keepalive.ts";
 * console.log(withSlack(30 + 10)); // 44
 * ```
 */
export function withSlack(seconds: number): number {
  return seconds + Math.max(1, seconds * 0.1);
}

/** Watches one connection's incoming bytes; calls `onSilent` once when the limit passes. */
export class Keepalive {
  readonly #onSilent: (silentMs: number, limitMs: number) => void;
  /** When the peer last sent anything (`performance.now()`). */
  #lastHeard = performance.now();
  #limitMs = 0;
  #paused = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param onSilent Called once, with the silence and the limit in milliseconds. */
  constructor(onSilent: (silentMs: number, limitMs: number) => void) {
    this.#onSilent = onSilent;
  }

  /** Bytes arrived. */
  heard(): void {
    this.#lastHeard = performance.now();
  }

  /** Reading paused for the application (no verdict meanwhile) or resumed. */
  pause(paused: boolean): void {
    this.#paused = paused;
    if (!paused) this.heard(); // bytes may be waiting unread
  }

  /** Starts watching with a limit of `ms`; ignored when not positive and finite, or once started. */
  start(ms: number): void {
    if (!(ms > 0) || !Number.isFinite(ms) || this.#limitMs !== 0) return;
    this.#limitMs = ms;
    stallClock.acquire();
    this.#arm(ms);
  }

  /** Stops watching for good. Idempotent. */
  stop(): void {
    if (this.#limitMs <= 0) {
      this.#limitMs = -1;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#limitMs = -1;
    stallClock.release();
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => {
      const silent = stallClock.elapsedSince(this.#lastHeard);
      if (this.#paused || silent < this.#limitMs) {
        return this.#arm(this.#paused ? this.#limitMs : this.#limitMs - silent);
      }
      const limit = this.#limitMs;
      this.stop();
      this.#onSilent(silent, limit);
    }, Math.max(1, delayMs));
  }
}
