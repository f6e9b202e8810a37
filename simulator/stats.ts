/**
 * Small numeric helpers for the simulator: latency summaries and a seeded
 * random source, so a run's chaos assignment can be replayed.
 *
 * @module
 */

/** Percentiles of a set of latencies, in milliseconds. */
export interface LatencySummary {
  /** Number of samples. */
  readonly count: number;
  /** Median (nearest rank); 0 without samples. */
  readonly p50: number;
  /** 99th percentile (nearest rank); 0 without samples. */
  readonly p99: number;
  /** Largest sample; 0 without samples. */
  readonly max: number;
}

/**
 * Summarises samples with nearest-rank percentiles.
 *
 * @example
 * ```ts
 * import { summarize } from "./stats.ts";
 * console.log(summarize([5, 1, 3])); // { count: 3, p50: 3, p99: 5, max: 5 }
 * ```
 */
export function summarize(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  return {
    count: sorted.length,
    p50: round(nearestRank(sorted, 0.5)),
    p99: round(nearestRank(sorted, 0.99)),
    max: round(sorted[sorted.length - 1]),
  };
}

/**
 * The nearest-rank percentile `p` (0 to 1) of samples sorted in ascending order.
 *
 * @example
 * ```ts
 * import { nearestRank } from "./stats.ts";
 * console.log(nearestRank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9)); // 9
 * ```
 */
export function nearestRank(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1))];
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/**
 * A seeded pseudo-random source in [0, 1) (mulberry32): the same seed gives
 * the same chaos assignment.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./stats.ts";
 * const random = seededRandom(1);
 * console.log(random() === seededRandom(1)()); // true
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Shuffles a copy of `items` (Fisher–Yates) with `random`.
 *
 * @example
 * ```ts
 * import { seededRandom, shuffled } from "./stats.ts";
 * console.log(shuffled([1, 2, 3], seededRandom(7)).length); // 3
 * ```
 */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/** Counts by key, e.g. disconnects by reason. */
export type Tally = Record<string, number>;

/**
 * Adds one to `tally[key]`.
 *
 * @example
 * ```ts
 * import { count } from "./stats.ts";
 * const tally = {};
 * count(tally, "heartbeat");
 * console.log(tally); // { heartbeat: 1 }
 * ```
 */
export function count(tally: Tally, key: string): void {
  tally[key] = (tally[key] ?? 0) + 1;
}

/** Smallest latency a {@linkcode LatencyHistogram} bucket tells apart, in milliseconds. */
const HISTOGRAM_FLOOR_MS = 0.01;
/** Each bucket is this much wider than the one before: percentiles are within 2 %. */
const HISTOGRAM_RATIO = 1.02;
/** Enough buckets to reach past 10 minutes. */
const HISTOGRAM_BUCKETS = Math.ceil(Math.log(6e5 / HISTOGRAM_FLOOR_MS) / Math.log(HISTOGRAM_RATIO));

/**
 * Latencies kept as counts in log-spaced buckets, so a long run's millions of
 * deliveries take a fixed few kilobytes. Percentiles are the upper edge of
 * their bucket (at most 2 % high, never above the largest sample); `max` is
 * exact.
 *
 * @example
 * ```ts
 * import { LatencyHistogram } from "./stats.ts";
 * const histogram = new LatencyHistogram();
 * for (const ms of [5, 1, 3]) histogram.add(ms);
 * console.log(histogram.summary().max); // 5
 * ```
 */
export class LatencyHistogram {
  readonly #counts = new Uint32Array(HISTOGRAM_BUCKETS + 1);
  #count = 0;
  #max = 0;

  /** Adds one sample, in milliseconds. */
  add(ms: number): void {
    const index = ms <= HISTOGRAM_FLOOR_MS ? 0 : Math.min(
      HISTOGRAM_BUCKETS,
      Math.ceil(Math.log(ms / HISTOGRAM_FLOOR_MS) / Math.log(HISTOGRAM_RATIO)),
    );
    this.#counts[index]++;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** The samples so far, summarised like {@linkcode summarize} does. */
  summary(): LatencySummary {
    if (this.#count === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
    const rank = (p: number) => {
      const wanted = Math.ceil(p * this.#count);
      let seen = 0;
      for (let i = 0; i < this.#counts.length; i++) {
        seen += this.#counts[i];
        if (seen >= wanted) return Math.min(this.#max, HISTOGRAM_FLOOR_MS * HISTOGRAM_RATIO ** i);
      }
      return this.#max;
    };
    return {
      count: this.#count,
      p50: round(rank(0.5)),
      p99: round(rank(0.99)),
      max: round(this.#max),
    };
  }

  /**
   * The samples so far as a {@linkcode LatencyDistribution}, for a plot: each
   * of this histogram's buckets counted where its upper edge falls (so a
   * sample may land one plot bucket high, never more than 2 % off).
   */
  distribution(): LatencyDistribution {
    const counts = new Map<number, number>();
    for (let i = 0; i < this.#counts.length; i++) {
      if (this.#counts[i] === 0) continue;
      const index = distributionBucket(
        Math.min(this.#max, HISTOGRAM_FLOOR_MS * HISTOGRAM_RATIO ** i),
      );
      counts.set(index, (counts.get(index) ?? 0) + this.#counts[i]);
    }
    return fromBuckets(counts);
  }
}

/** Buckets per decade of a {@linkcode LatencyDistribution}: each edge is 10^0.1 (about 1.26) times the one before. */
const DISTRIBUTION_PER_DECADE = 10;

/**
 * Latencies counted in log-spaced buckets, for a plot: ten per decade from
 * 0.01 ms, only the range from the first to the last bucket that holds any.
 */
export interface LatencyDistribution {
  /**
   * Upper edge of each bucket, in milliseconds, to three significant digits:
   * bucket `i` counts samples in `(upTo[i - 1], upTo[i]]`.
   */
  readonly upTo: readonly number[];
  /** Samples in each bucket. */
  readonly counts: readonly number[];
}

/**
 * Counts samples (in milliseconds) into a {@linkcode LatencyDistribution}.
 *
 * @example
 * ```ts
 * import { distribution } from "./stats.ts";
 * console.log(distribution([1, 1, 1.1, 1.9])); // { upTo: [1, 1.26, 1.58, 2], counts: [2, 1, 0, 1] }
 * ```
 */
export function distribution(samples: Iterable<number>): LatencyDistribution {
  const counts = new Map<number, number>();
  for (const ms of samples) {
    const index = distributionBucket(ms);
    counts.set(index, (counts.get(index) ?? 0) + 1);
  }
  return fromBuckets(counts);
}

/** The bucket of a {@linkcode LatencyDistribution} that `ms` falls in. */
function distributionBucket(ms: number): number {
  if (ms <= HISTOGRAM_FLOOR_MS) return 0;
  // Rounded first, so that an edge such as 1 ms falls in its own bucket, not the next one.
  const exact = Math.log10(ms / HISTOGRAM_FLOOR_MS) * DISTRIBUTION_PER_DECADE;
  return Math.ceil(Math.round(exact * 1e6) / 1e6);
}

function fromBuckets(counts: ReadonlyMap<number, number>): LatencyDistribution {
  if (counts.size === 0) return { upTo: [], counts: [] };
  const indices = [...counts.keys()];
  const first = Math.min(...indices);
  const last = Math.max(...indices);
  const upTo: number[] = [];
  const perBucket: number[] = [];
  for (let index = first; index <= last; index++) {
    upTo.push(
      Number((HISTOGRAM_FLOOR_MS * 10 ** (index / DISTRIBUTION_PER_DECADE)).toPrecision(3)),
    );
    perBucket.push(counts.get(index) ?? 0);
  }
  return { upTo, counts: perBucket };
}
