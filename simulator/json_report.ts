/**
 * The report as `--json` prints it: every figure that has a unit says it in
 * its name (`p99Ms`, `durationSeconds`, `peakRssBytes`) and is rounded to what
 * the measurement can tell (milliseconds to 0.01, seconds to 0.001, bytes to
 * whole bytes, shares to 0.0001). Counts keep their names. The HTML page
 * (`--html`) keeps the report as the run made it.
 *
 * @module
 */

import type { SimulationReport } from "./report.ts";

/** How one field is renamed and rounded: its new name and the decimals kept. */
type Rule = readonly [name: string, decimals: number];

const MS: Rule[1] = 2;
const SECONDS: Rule[1] = 3;
const BYTES: Rule[1] = 0;
const SHARE: Rule[1] = 4;

const inMs = (name: string): Rule => [`${name}Ms`, MS];
const inSeconds = (name: string): Rule => [`${name}Seconds`, SECONDS];
const inBytes = (name: string): Rule => [`${name}Bytes`, BYTES];

/**
 * Fields by their path in the report (`[]` for any element of a list). A
 * latency summary (`count`, `p50`, `p99`, `max`, in milliseconds) is found by
 * its shape wherever it is; with no samples its figures are `null`.
 */
const RULES: Readonly<Record<string, Rule>> = {
  "seconds": ["durationSeconds", SECONDS],
  "peakRss": inBytes("peakRss"),
  "desired.worst": inMs("worst"),
  "desired.every": inSeconds("every"),
  "memory.every": inSeconds("every"),
  "memory.warmUp": inSeconds("warmUp"),
  "memory.steadyStart": inSeconds("steadyStart"),
  "memory.steadyEnd": inSeconds("steadyEnd"),
  "memory.samples[].elapsed": inSeconds("elapsed"),
  "memory.samples[].rss": inBytes("rss"),
  "memory.samples[].heapUsed": inBytes("heapUsed"),
  "memory.samples[].external": inBytes("external"),
  "memory.verdict.baseline": ["baselineHeapBytes", BYTES],
  "memory.verdict.baselineAt": inSeconds("baselineAt"),
  "memory.verdict.end": ["endHeapBytes", BYTES],
  "memory.verdict.endAt": inSeconds("endAt"),
  "memory.verdict.growth": ["growthHeapBytes", BYTES],
  "memory.verdict.limit": ["limitHeapBytes", BYTES],
  "memory.verdict.trendPerMinute": ["trendHeapBytesPerMinute", BYTES],
  "memory.verdict.rssBaseline": inBytes("rssBaseline"),
  "memory.verdict.rssEnd": inBytes("rssEnd"),
  "restart.closedAt": inSeconds("closedAt"),
  "restart.closeSeconds": ["closeSeconds", SECONDS],
  "restart.upAfter": inSeconds("upAfter"),
  "restart.backAfter.p50": inSeconds("p50"),
  "restart.backAfter.p90": inSeconds("p90"),
  "restart.backAfter.last": inSeconds("last"),
  "restart.busiest.from": inSeconds("from"),
  "restart.busiest.share": ["share", SHARE],
  "restart.reconnect.initialDelay": inSeconds("initialDelay"),
  "restart.reconnect.maxDelay": inSeconds("maxDelay"),
  "restart.reconnect.jitter": ["jitter", SHARE],
  "restart.perWindow": ["per100MsWindow", 0],
};

/** Paths left exactly as they are: the raw material of plots. */
const UNTOUCHED = new Set(["plots"]);

/**
 * The report as `--json` prints it (see the module doc for the naming).
 *
 * @example
 * ```ts
 * import { jsonReport } from "./json_report.ts";
 * import { runSimulation } from "./scenario.ts";
 * const json = jsonReport(await runSimulation({ lights: 2, locks: 1, heartbeat: 0.1 })) as {
 *   handshake: { count: number; p99Ms: number };
 *   durationSeconds: number;
 * };
 * console.log(json.handshake.count, typeof json.handshake.p99Ms); // 3 "number"
 * ```
 */
export function jsonReport(report: SimulationReport): unknown {
  return convert(report, "");
}

function convert(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((item) => convert(item, `${path}[]`));
  if (value === null || typeof value !== "object") return value;
  if (isLatencySummary(value)) {
    // Nothing measured is null, as the table's "n/a": a 0 would read as instant.
    const figure = (ms: number) => value.count === 0 ? null : round(ms, MS);
    return {
      count: value.count,
      p50Ms: figure(value.p50),
      p99Ms: figure(value.p99),
      maxMs: figure(value.max),
    };
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    const fieldPath = path === "" ? key : `${path}.${key}`;
    if (UNTOUCHED.has(fieldPath)) {
      out[key] = field;
      continue;
    }
    const rule = RULES[fieldPath];
    if (rule && typeof field === "number") out[rule[0]] = round(field, rule[1]);
    else if (rule) out[rule[0]] = convert(field, fieldPath);
    else out[key] = convert(field, fieldPath);
  }
  return out;
}

function isLatencySummary(
  value: object,
): value is { count: number; p50: number; p99: number; max: number } {
  const keys = Object.keys(value);
  return keys.length === 4 && ["count", "p50", "p99", "max"].every((key) => keys.includes(key));
}

function round(value: number, decimals: number): number {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}
