/**
 * Memory over time: samples of `Deno.memoryUsage()` taken every few seconds
 * (after a forced GC when the runtime exposes one), and the verdict on whether
 * the heap stayed flat after a warm-up. The process holds the manager and the
 * whole fleet, so the figures are for both together.
 *
 * @module
 */

/** The heap may grow by at most this share of its warm-up size before the run counts as leaking. */
export const HEAP_GROWTH_LIMIT = 0.1;
/** Samples on each side of the comparison; their median damps a sample taken mid-broadcast. */
const SAMPLES_PER_SIDE = 3;

/** One memory sample. Sizes in bytes. */
export interface MemorySample {
  /** Seconds since the run started. */
  readonly elapsed: number;
  /** The run's phase when sampled, e.g. `"steady"`. */
  readonly phase: string;
  /** Devices connected (embedded: registered by the manager). */
  readonly connected: number;
  /** Resident set size of the whole process. */
  readonly rss: number;
  /** V8 heap in use (after a forced GC when `forcedGc`). */
  readonly heapUsed: number;
  /** Memory held outside the V8 heap by JS objects (ArrayBuffers: read buffers, queued bytes). */
  readonly external: number;
}

/** Whether the heap stayed flat after the warm-up. Sizes in bytes, times in seconds since the start. */
export interface MemoryVerdict {
  /** False when no verdict is possible: no forced GC, or too few samples after the warm-up. */
  readonly judged: boolean;
  /** Samples taken after the warm-up, in the steady phase: the ones the verdict reads (2 needed). */
  readonly samplesAfterWarmUp: number;
  /** True when judged and the growth stayed within `limit`. */
  readonly ok: boolean;
  /** Why it was not judged; empty when it was. */
  readonly reason: string;
  /** Median heapUsed of the first samples after the warm-up. */
  readonly baseline: number;
  /** When the last of those was taken. */
  readonly baselineAt: number;
  /** Median heapUsed of the last samples of the steady phase. */
  readonly end: number;
  /** When the last of those was taken. */
  readonly endAt: number;
  /** `end - baseline`. */
  readonly growth: number;
  /** Growth allowed: {@linkcode HEAP_GROWTH_LIMIT} of `baseline`. */
  readonly limit: number;
  /** Least-squares slope of heapUsed over the samples after the warm-up, in bytes per minute. */
  readonly trendPerMinute: number;
  /** RSS of the same samples, baseline and end (reported, not judged). */
  readonly rssBaseline: number;
  readonly rssEnd: number;
}

/** The memory section of a report. */
export interface MemoryReport {
  /** Seconds between samples. */
  readonly every: number;
  /** True when each sample followed a forced GC (`--v8-flags=--expose-gc`). */
  readonly forcedGc: boolean;
  /** Seconds of the steady phase counted as warm-up. */
  readonly warmUp: number;
  /** When the steady phase started and ended, in seconds since the start (0 if it never ran). */
  readonly steadyStart: number;
  readonly steadyEnd: number;
  /** The timeline, oldest first. */
  readonly samples: readonly MemorySample[];
  readonly verdict: MemoryVerdict;
}

/** The window the verdict looks at. */
export interface VerdictWindow {
  /** Seconds since the start when the steady phase began and ended. */
  readonly steadyStart: number;
  readonly steadyEnd: number;
  /** Seconds of the steady phase that are warm-up. */
  readonly warmUp: number;
  /** True when the samples followed a forced GC; without it heapUsed includes garbage. */
  readonly forcedGc: boolean;
}

/**
 * Judges whether heapUsed stayed flat after the warm-up: the median of the
 * first three samples from `steadyStart + warmUp` on against the median of the
 * last three up to `steadyEnd`, growth at most {@linkcode HEAP_GROWTH_LIMIT}.
 * Without a forced GC the figures are computed but not judged.
 *
 * @example
 * ```ts
 * import { judgeMemory } from "./memory.ts";
 * const mib = 1048576;
 * const samples = [0, 10, 20, 30, 40, 50].map((elapsed) => ({
 *   elapsed, phase: "steady", connected: 10, rss: 90 * mib, heapUsed: 40 * mib, external: 0,
 * }));
 * const verdict = judgeMemory(samples, { steadyStart: 0, steadyEnd: 50, warmUp: 10, forcedGc: true });
 * console.log(verdict.ok, verdict.growth); // true 0
 * ```
 */
export function judgeMemory(
  samples: readonly MemorySample[],
  window: VerdictWindow,
): MemoryVerdict {
  const after = samples.filter((sample) =>
    sample.elapsed >= window.steadyStart + window.warmUp && sample.elapsed <= window.steadyEnd
  );
  const side = Math.min(SAMPLES_PER_SIDE, Math.floor(after.length / 2));
  const first = after.slice(0, side);
  const last = after.slice(after.length - side);
  const baseline = median(first.map((sample) => sample.heapUsed));
  const end = median(last.map((sample) => sample.heapUsed));
  const limit = baseline * HEAP_GROWTH_LIMIT;
  const figures = {
    samplesAfterWarmUp: after.length,
    baseline,
    baselineAt: first.at(-1)?.elapsed ?? 0,
    end,
    endAt: last.at(-1)?.elapsed ?? 0,
    growth: end - baseline,
    limit,
    trendPerMinute: slope(after) * 60,
    rssBaseline: median(first.map((sample) => sample.rss)),
    rssEnd: median(last.map((sample) => sample.rss)),
  };
  let reason = "";
  if (side === 0) {
    reason = `${after.length} sample(s) after the warm-up, 2 needed: ` +
      `the steady phase (${(window.steadyEnd - window.steadyStart).toFixed(0)} s) ` +
      `must outlast the warm-up (${window.warmUp} s) by two samples`;
  } else if (!window.forcedGc) {
    reason = "no forced GC (run with --v8-flags=--expose-gc): heapUsed includes garbage";
  }
  const judged = reason === "";
  return { judged, ok: judged && figures.growth <= limit, reason, ...figures };
}

/**
 * Samples memory every `every` seconds, after a forced GC when `globalThis.gc`
 * exists (`--v8-flags=--expose-gc`).
 *
 * @example
 * ```ts
 * import { MemorySampler } from "./memory.ts";
 * const sampler = new MemorySampler(10, performance.now(), () => ({ phase: "steady", connected: 0 }));
 * sampler.sample();
 * console.log(sampler.samples.length); // 1
 * ```
 */
export class MemorySampler {
  readonly samples: MemorySample[] = [];
  readonly every: number;
  readonly #startedAt: number;
  readonly #context: () => { phase: string; connected: number };
  readonly #gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param every Seconds between samples.
   * @param startedAt `performance.now()` of the run's start, for `elapsed`.
   * @param context The phase and the devices connected, at sampling time.
   */
  constructor(
    every: number,
    startedAt: number,
    context: () => { phase: string; connected: number },
  ) {
    this.every = every;
    this.#startedAt = startedAt;
    this.#context = context;
  }

  /** True when samples follow a forced GC. */
  get forcedGc(): boolean {
    return this.#gc !== undefined;
  }

  /** Takes a sample now and then one every `every` seconds until {@linkcode stop}. */
  start(): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), this.every * 1000);
  }

  /** Takes one sample now. */
  sample(): void {
    // V8 frees dead ArrayBuffers' memory in a sweep that ends after the collection that found
    // them: the second collection makes `external` current (heapUsed is the same after one).
    this.#gc?.();
    this.#gc?.();
    const { rss, heapUsed, external } = Deno.memoryUsage();
    this.samples.push({
      elapsed: (performance.now() - this.#startedAt) / 1000,
      ...this.#context(),
      rss,
      heapUsed,
      external,
    });
  }

  /** Stops the periodic samples. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Least-squares slope of heapUsed over elapsed, in bytes per second. */
function slope(samples: readonly MemorySample[]): number {
  if (samples.length < 2) return 0;
  const n = samples.length;
  const meanX = samples.reduce((sum, sample) => sum + sample.elapsed, 0) / n;
  const meanY = samples.reduce((sum, sample) => sum + sample.heapUsed, 0) / n;
  let numerator = 0;
  let denominator = 0;
  for (const sample of samples) {
    numerator += (sample.elapsed - meanX) * (sample.heapUsed - meanY);
    denominator += (sample.elapsed - meanX) ** 2;
  }
  return denominator === 0 ? 0 : numerator / denominator;
}
