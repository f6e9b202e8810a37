/**
 * How a device retries after its connection drops: the reconnect options,
 * their defaults, and the wait before each attempt.
 *
 * @module
 */

/**
 * How a device retries after its connection drops: exponential backoff with
 * decorrelated jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter", 2015). Each wait is uniform between `initialDelay` and three times
 * the previous wait (the first: three times `initialDelay`), capped at
 * `maxDelay`; `jitter` scales the random part, and at 0 each wait is simply
 * three times the last. Spread this way, a fleet that loses its manager does
 * not come back in one wave: for 2,000 devices and a manager back after 3 s,
 * the backoff alone puts about 3.3 % of the fleet (4.1 % in the worst of 200
 * draws) in the busiest 100 ms and all of it back within about 12 s;
 * `bench/herd.ts` measures it on real sockets with the manager in a process of
 * its own (`bench/RESULTS-herd.md`: 3.2-3.7 %, all back within 12 s).
 *
 * After the manager says another connection took over the device's UUID
 * (`replaced`), the next attempt waits `maxDelay` (half of it random), and
 * after `maxReplaced` such takeovers in a row the device stops with reason
 * `"replaced"`: two live devices with one UUID settle instead of displacing
 * each other for ever.
 *
 * @example
 * ```ts
 * import type { ReconnectOptions } from "@iot-manager/core";
 * const reconnect: ReconnectOptions = { initialDelay: 1, maxDelay: 10, jitter: 1 };
 * ```
 */
export interface ReconnectOptions {
  /** Shortest wait before an attempt, in seconds. @default 1 */
  readonly initialDelay?: number;
  /** Longest wait before an attempt, in seconds. @default 10 */
  readonly maxDelay?: number;
  /** How much of each wait is random, 0 (none: each wait three times the last) to 1. @default 1 */
  readonly jitter?: number;
  /** Attempts after one drop before giving up (the device then ends for good). @default Infinity */
  readonly maxAttempts?: number;
  /**
   * Takeovers of this device's UUID by another connection, in a row, after
   * which it stops reconnecting (reason `"replaced"`). A connection that lasts
   * a minute resets the count. @default 3
   */
  readonly maxReplaced?: number;
}

/**
 * The wait before the next reconnection attempt, in milliseconds: decorrelated
 * jitter, uniform between `initialDelay` and three times the previous wait,
 * capped at `maxDelay` (see {@linkcode ReconnectOptions}).
 *
 * @param previousMs The previous wait; `initialDelay` (in ms) before the first attempt.
 * @param options Backoff settings, all given.
 * @param random A source of numbers in [0, 1).
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./lib/backoff.ts";
 * const settings = { initialDelay: 0.5, maxDelay: 30, jitter: 0, maxAttempts: Infinity, maxReplaced: 3 };
 * console.log(backoffDelay(500, settings)); // 1500
 * ```
 */
export function backoffDelay(
  previousMs: number,
  options: Required<ReconnectOptions>,
  random: () => number = Math.random,
): number {
  const lower = options.initialDelay * 1000;
  const upper = Math.max(lower, previousMs * 3);
  return Math.min(options.maxDelay * 1000, upper - options.jitter * random() * (upper - lower));
}

/** The reconnect option with every default filled in; `null` when reconnecting is off. */
export function reconnectSettings(
  option: boolean | ReconnectOptions | undefined,
): Required<ReconnectOptions> | null {
  if (!option) return null;
  const given = option === true ? {} : option;
  return {
    initialDelay: given.initialDelay ?? 1,
    maxDelay: given.maxDelay ?? 10,
    jitter: given.jitter ?? 1,
    maxReplaced: given.maxReplaced ?? 3,
    maxAttempts: given.maxAttempts ?? Infinity,
  };
}
