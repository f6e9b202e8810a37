/**
 * The figures every measurement reports in (latency percentiles, fan-out
 * bursts, memory per device, heartbeats over a while) and how they are made
 * from samples. The systems fill them in, the report reads them.
 *
 * @module
 */

/** Percentiles of a set of samples, in milliseconds. */
export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
}

/** Memory with the fleet connected, minus memory with nobody connected, per device. */
export interface MemoryFigures {
  /** Resident set size per device, in bytes: the figure reported. */
  readonly rssPerDevice: number;
  /** V8 heap per device (part of the RSS). */
  readonly heapPerDevice?: number;
  /** Array buffers and other memory V8 knows of outside its heap, per device. */
  readonly externalPerDevice?: number;
  readonly idleRss: number;
  readonly loadedRss: number;
}

/** A fan-out: how many messages reached how many sockets in how long. */
export interface FanOut {
  readonly deliveries: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** CPU seconds the server process used meanwhile. */
  readonly serverCpuSeconds: number;
  /** CPU seconds the load generator used meanwhile. */
  readonly loadCpuSeconds: number;
  /** Deliveries per second of every run; `perSecond` is their median. */
  readonly runs: readonly number[];
}

/** Heartbeats (or MQTT keep-alives) at 1 s for a while. */
export interface HeartbeatSoak {
  readonly seconds: number;
  /** Devices the server dropped although they answered every heartbeat. */
  readonly falseDisconnects: number;
  /** Heartbeats the devices answered (or PINGRESPs received). */
  readonly roundTrips: number;
  /** Server CPU time over wall time: 0.05 is 5 % of one core. */
  readonly cpuShare: number;
}

/** Value at percentile `p` (nearest rank) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** p50, p99 and max of `samples` (milliseconds). */
export function latencyOf(samples: readonly number[]): Latency {
  return {
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    max: Math.max(...samples),
    samples: samples.length,
  };
}

/** A Deno server's memory per device, from its usage before and after `devices` connected. */
export function memoryOf(
  idle: Deno.MemoryUsage,
  loaded: Deno.MemoryUsage,
  devices: number,
): MemoryFigures {
  return {
    rssPerDevice: (loaded.rss - idle.rss) / devices,
    heapPerDevice: (loaded.heapUsed - idle.heapUsed) / devices,
    externalPerDevice: (loaded.external - idle.external) / devices,
    idleRss: idle.rss,
    loadedRss: loaded.rss,
  };
}
