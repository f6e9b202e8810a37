/**
 * How a device retries after its connection drops: the reconnect options and
 * their defaults, the wait before each attempt, and when to stop (a refusal
 * that would repeat, a UUID another live device keeps taking over).
 *
 * @module
 */

import { ConnectionEnd, InvalidInfo } from "./errors.ts";

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
 * import { backoffDelay } from "./lib/reconnect.ts";
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

/** A connection that lasts this long resets the count of takeovers in a row (ms). */
const STABLE_CONNECTION_MS = 60_000;
/** Refusals that may pass on another attempt (the rest would repeat: the device stops). */
const TRANSIENT_REFUSALS: ReadonlySet<string> = new Set(["timeout", "auth", "conflict"]);

/**
 * One device's reconnect decisions: how long to wait before each attempt and
 * when to stop trying. Pure bookkeeping; the device runs the attempts.
 */
export class ReconnectPolicy {
  /** The options, every default filled in. */
  readonly settings: Required<ReconnectOptions>;
  readonly #random: () => number;
  #openedAt = 0;
  #replacedInARow = 0;

  constructor(settings: Required<ReconnectOptions>, random: () => number = Math.random) {
    this.settings = settings;
    this.#random = random;
  }

  /** A connection opened now. */
  opened(): void {
    this.#openedAt = performance.now();
  }

  /**
   * Judges a drop. A takeover of the UUID (`replaced`) after a short connection
   * counts toward `maxReplaced`; past it, the device stops.
   *
   * @returns The device's final end when it should stop, or `null` to reconnect.
   */
  stopsAfter(drop: ConnectionEnd, uuid: string): ConnectionEnd | null {
    const lasted = performance.now() - this.#openedAt >= STABLE_CONNECTION_MS;
    if (drop.reason !== "replaced") {
      if (lasted) this.#replacedInARow = 0;
      return null;
    }
    this.#replacedInARow = lasted ? 1 : this.#replacedInARow + 1;
    if (this.#replacedInARow < this.settings.maxReplaced) return null;
    return new ConnectionEnd(
      "replaced",
      `another device is using UUID ${uuid}: it took over ${this.#replacedInARow} ` +
        `times in a row, so this one stops reconnecting (${drop.message})`,
      { cause: drop },
    );
  }

  /**
   * The wait before `attempt` (1 for the first after a drop), in milliseconds.
   * After a takeover the first wait is long (`maxDelay`, half of it random):
   * the other holder of the UUID keeps it meanwhile.
   */
  delay(attempt: number, drop: ConnectionEnd, previousMs: number): number {
    if (attempt === 1 && drop.reason === "replaced") {
      return this.settings.maxDelay * 1000 * (1 - this.#random() / 2);
    }
    return backoffDelay(previousMs, this.settings, this.#random);
  }

  /** Whether a failed attempt ends the trying: a refusal that another attempt would repeat. */
  isFinal(error: unknown): error is InvalidInfo {
    return error instanceof InvalidInfo && !TRANSIENT_REFUSALS.has(error.reason);
  }
}
