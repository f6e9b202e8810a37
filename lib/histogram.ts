/**
 * A fixed-bucket histogram, as Prometheus and OpenTelemetry keep them:
 * recording a value is a short scan of a small array, with no allocation, so
 * it can sit on a hot path. Quantiles are estimated from the buckets (linear
 * within the bucket), as Prometheus' `histogram_quantile` does.
 *
 * @module
 */

/** A histogram's state at one moment. */
export interface HistogramSnapshot {
  /** Upper bounds of the buckets, ascending (the last bucket, `+Inf`, is implicit). */
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; one more entry than `bounds` (the `+Inf` bucket). */
  readonly counts: readonly number[];
  /** Observations in all. */
  readonly count: number;
  /** Their sum. */
  readonly sum: number;
}

/** Fixed buckets, counted. */
export class Histogram {
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #count = 0;
  #sum = 0;

  /** @param bounds Upper bounds of the buckets, ascending. */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.#counts = new Array(bounds.length + 1).fill(0);
  }

  /** Records one observation. */
  record(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.#counts[i]++;
    this.#count++;
    this.#sum += value;
  }

  /** A copy of the state. */
  snapshot(): HistogramSnapshot {
    return { bounds: this.bounds, counts: [...this.#counts], count: this.#count, sum: this.#sum };
  }
}

/**
 * Estimates the `q` quantile (0..1) of a snapshot: the bucket holding it,
 * interpolated linearly; `NaN` with no observations; the largest finite
 * bound when it falls in the `+Inf` bucket.
 *
 * @example
 * ```ts
 * import { Manager, quantile } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * const p99 = quantile(manager.stats().heartbeat.rttMs, 0.99); // NaN until a beat is timed
 * ```
 */
export function quantile(snapshot: HistogramSnapshot, q: number): number {
  if (snapshot.count === 0) return NaN;
  const rank = q * snapshot.count;
  let seen = 0;
  for (let i = 0; i < snapshot.counts.length; i++) {
    const inBucket = snapshot.counts[i];
    if (seen + inBucket >= rank && inBucket > 0) {
      if (i === snapshot.bounds.length) return snapshot.bounds.at(-1) ?? NaN;
      const lower = i === 0 ? 0 : snapshot.bounds[i - 1];
      return lower + (snapshot.bounds[i] - lower) * ((rank - seen) / inBucket);
    }
    seen += inBucket;
  }
  return snapshot.bounds.at(-1) ?? NaN;
}
