/**
 * The restart scenario's figures: how a fleet that lost its manager came back
 * to a new one on the same port. Pure functions over the times at which each
 * device was registered again; `restart_phase.ts` closes and restarts the
 * manager, `judge.ts` holds the return to its targets, `report.ts` renders the
 * section.
 *
 * @module
 */

import { nearestRank } from "./stats.ts";

/** Width of the windows handshakes are counted in, in milliseconds. */
export const RETURN_WINDOW_MS = 100;
/** Target: no {@linkcode RETURN_WINDOW_MS} window holds more than this share of the fleet. */
export const RETURN_BUSIEST_LIMIT = 0.05;
/** Target: every device is back within this many seconds of losing its manager. */
export const RETURN_ALL_BACK_LIMIT = 15;

/** How the fleet came back after the restart. Times are seconds from the loss. */
export interface ReturnFigures {
  /** Devices registered when the manager closed: the fleet that should come back. */
  readonly expected: number;
  /** Of them, devices the new manager registered. */
  readonly back: number;
  /** Nearest-rank percentiles of the devices back, and the last of them (0 when none is back). */
  readonly backAfter: { readonly p50: number; readonly p90: number; readonly last: number };
  /** The busiest window (sliding, any start): handshakes in it, their share of `expected`, its start. */
  readonly busiest: { readonly count: number; readonly share: number; readonly from: number };
  /** Handshakes per window from the loss: element `i` counts `[i × 0.1 s, (i + 1) × 0.1 s)`. */
  readonly perWindow: readonly number[];
}

/** The restart section of a report. */
export interface RestartReport extends ReturnFigures {
  /** Seconds into the run at which the manager was closed: the moment the devices lost it. */
  readonly closedAt: number;
  /** Seconds `manager.close()` took. */
  readonly closeSeconds: number;
  /** Seconds from the loss until the new manager listened on the same port. */
  readonly upAfter: number;
  /** The devices' reconnect backoff (the library's defaults unless the run set them). */
  readonly reconnect: {
    readonly initialDelay: number;
    readonly maxDelay: number;
    readonly jitter: number;
  };
  /** Lines the devices wrote that the closed manager never read (telemetry in flight). */
  readonly linesLost: number;
}

/**
 * Measures a fleet's return from the times its devices were registered again.
 *
 * @param backAfter Seconds from the loss to each returning device's registration, one per device.
 * @param expected Devices that should come back.
 *
 * @example
 * ```ts
 * import { measureReturn } from "./restart.ts";
 * const figures = measureReturn([3.01, 3.05, 3.12, 4.5], 4);
 * console.log(figures.busiest); // { count: 2, share: 0.5, from: 3.01 }
 * console.log(figures.perWindow.length, figures.backAfter.last); // 46 4.5
 * ```
 */
export function measureReturn(backAfter: readonly number[], expected: number): ReturnFigures {
  const sorted = Float64Array.from(backAfter).sort();
  let busiest = { count: 0, from: 0 };
  for (let first = 0, last = 0; last < sorted.length; last++) {
    while ((sorted[last] - sorted[first]) * 1000 >= RETURN_WINDOW_MS) first++;
    if (last - first + 1 > busiest.count) {
      busiest = { count: last - first + 1, from: sorted[first] };
    }
  }
  const perWindow: number[] = [];
  for (const seconds of sorted) {
    // In milliseconds, where window edges are exact (3.0 / 0.1 is 29.999...).
    const index = Math.floor((seconds * 1000) / RETURN_WINDOW_MS);
    while (perWindow.length <= index) perWindow.push(0);
    perWindow[index]++;
  }
  return {
    expected,
    back: sorted.length,
    backAfter: {
      p50: nearestRank(sorted, 0.5),
      p90: nearestRank(sorted, 0.9),
      last: nearestRank(sorted, 1),
    },
    busiest: {
      count: busiest.count,
      share: expected > 0 ? busiest.count / expected : 0,
      from: busiest.from,
    },
    perWindow,
  };
}
