/**
 * The figures behind the dashboard's charts: `manager.stats()` read once per
 * tick and turned into one {@linkcode Sample} (rates per second, heartbeat
 * round-trip percentiles, disconnects and refusals since the previous tick),
 * kept in a bounded history for browsers that connect later.
 *
 * @module
 */

import { type HistogramSnapshot, type ManagerStats, quantile } from "@iot-manager/core";

/** The fleet at one moment, and what happened since the sample before it. */
export interface Sample {
  /** When it was taken, in seconds since the epoch (what uPlot plots on x). */
  readonly time: number;
  /** Devices connected, in all and by type. */
  readonly connected: number;
  readonly byType: Readonly<Record<string, number>>;
  /** Application messages per second, from devices and to them; null in the first sample. */
  readonly receivedPerSecond: number | null;
  readonly sentPerSecond: number | null;
  /**
   * Heartbeat round trips in ms over the last two heartbeat rounds (a window
   * that follows the manager's heartbeat rate); null with no beats in it.
   */
  readonly rttMs: {
    readonly p50: number | null;
    readonly p90: number | null;
    readonly p99: number | null;
  };
  /** Connections ended since the previous sample, by reason. */
  readonly disconnects: Readonly<Record<string, number>>;
  /** Handshakes refused since the previous sample, by reason. */
  readonly refused: Readonly<Record<string, number>>;
}

/** Totals since the manager started, for the figures shown beside the charts. */
export interface Totals {
  readonly disconnects: Readonly<Record<string, number>>;
  readonly refused: Readonly<Record<string, number>>;
  readonly received: number;
  readonly sent: number;
  readonly rounds: number;
}

/** What the sampler keeps of each stats snapshot besides the sample. */
interface Reading {
  readonly at: number;
  readonly rounds: number;
  readonly rtt: HistogramSnapshot;
  readonly received: number;
  readonly sent: number;
  readonly disconnects: Readonly<Record<string, number>>;
  readonly refused: Readonly<Record<string, number>>;
}

/** Heartbeat rounds the round-trip percentiles look back over. */
const RTT_ROUNDS = 2;

/**
 * Samples a manager's stats into a bounded history: `capacity` samples, the
 * oldest dropped first.
 *
 * @example
 * ```ts ignore
 * const sampler = new StatsSampler(manager, { capacity: 300 });
 * setInterval(() => console.log(sampler.sample()), 1000);
 * ```
 */
export class StatsSampler {
  readonly #source: { stats(): ManagerStats };
  readonly #capacity: number;
  readonly #samples: Sample[] = [];
  readonly #readings: Reading[] = [];
  #totals: Totals = { disconnects: {}, refused: {}, received: 0, sent: 0, rounds: 0 };

  constructor(source: { stats(): ManagerStats }, options: { capacity?: number } = {}) {
    this.#source = source;
    this.#capacity = Math.max(2, options.capacity ?? 300);
  }

  /** How many samples it keeps. */
  get capacity(): number {
    return this.#capacity;
  }

  /** The samples kept, oldest first. */
  get history(): readonly Sample[] {
    return this.#samples;
  }

  /** Totals as of the latest sample. */
  get totals(): Totals {
    return this.#totals;
  }

  /** Reads the manager's stats now, keeps the sample and returns it. */
  sample(at: number = Date.now()): Sample {
    const stats = this.#source.stats();
    const reading: Reading = {
      at,
      rounds: stats.heartbeat.rounds,
      rtt: stats.heartbeat.rttMs,
      received: stats.messages.received,
      sent: stats.messages.sent,
      disconnects: stats.disconnects,
      refused: stats.handshakes.refused,
    };
    const previous = this.#readings.at(-1);
    const seconds = previous ? (at - previous.at) / 1000 : 0;
    const rate = (now: number, before: number | undefined) =>
      before === undefined || seconds <= 0 ? null : round(Math.max(0, now - before) / seconds);
    const window = windowed(reading.rtt, this.#rttBaseline(reading.rounds));
    const percentile = (q: number) => {
      const value = quantile(window, q);
      return Number.isNaN(value) ? null : round(value);
    };
    const sample: Sample = {
      time: at / 1000,
      connected: stats.devices.connected,
      byType: stats.devices.byType,
      receivedPerSecond: rate(reading.received, previous?.received),
      sentPerSecond: rate(reading.sent, previous?.sent),
      rttMs: { p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99) },
      disconnects: increase(reading.disconnects, previous?.disconnects ?? {}),
      refused: increase(reading.refused, previous?.refused ?? {}),
    };
    this.#samples.push(sample);
    this.#readings.push(reading);
    if (this.#samples.length > this.#capacity) {
      this.#samples.shift();
      this.#readings.shift();
    }
    this.#totals = {
      disconnects: reading.disconnects,
      refused: reading.refused,
      received: reading.received,
      sent: reading.sent,
      rounds: reading.rounds,
    };
    return sample;
  }

  /** The latest kept reading taken before the last `RTT_ROUNDS` rounds began, if any. */
  #rttBaseline(rounds: number): HistogramSnapshot | undefined {
    for (let i = this.#readings.length - 1; i >= 0; i--) {
      if (this.#readings[i].rounds <= rounds - RTT_ROUNDS) return this.#readings[i].rtt;
    }
    return undefined; // the history is shorter than the window: everything so far
  }
}

/** The observations recorded between `before` and `now` (the same buckets). */
function windowed(
  now: HistogramSnapshot,
  before: HistogramSnapshot | undefined,
): HistogramSnapshot {
  if (!before) return now;
  return {
    bounds: now.bounds,
    counts: now.counts.map((count, i) => count - (before.counts[i] ?? 0)),
    count: now.count - before.count,
    sum: now.sum - before.sum,
  };
}

/** How much each counter grew; counters that did not are left out. */
function increase(
  now: Readonly<Record<string, number>>,
  before: Readonly<Record<string, number>>,
): Record<string, number> {
  const grown: Record<string, number> = {};
  for (const [key, value] of Object.entries(now)) {
    const by = value - (before[key] ?? 0);
    if (by > 0) grown[key] = by;
  }
  return grown;
}

const round = (value: number) => Math.round(value * 1000) / 1000;
