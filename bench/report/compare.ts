/**
 * The `--compare` figures as a table: the manager's fan-out at two revisions,
 * each scenario's rounds summed up as a median and its spread, the ratio of
 * the two taken round by round (both sides of a round ran back to back), and
 * the verdict on the cost a change may have.
 *
 * @module
 */

import type { CompareFigures, CompareRun } from "../compare.ts";
import { percentile } from "../figures.ts";
import { count, markdownTable, ms } from "./format.ts";
import { type Failure, ok } from "./results.ts";
import { verdict } from "./targets.ts";

/** What the measured revision may cost in fan-out throughput against the baseline: 3 %. */
export const COMPARE_COST_LIMIT = 0.03;

/** A median and the least and most of `values`. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function spreadOf(values: readonly number[]): Spread {
  return {
    median: percentile(values, 0.5),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** One scenario, summed up. */
export interface CompareSummary {
  readonly label: string;
  readonly baseline: Spread;
  readonly measured: Spread;
  /** Measured ÷ baseline deliveries/s, round by round. */
  readonly ratio: Spread;
  /** Manager CPU seconds per million deliveries. */
  readonly cpuBaseline: Spread;
  readonly cpuMeasured: Spread;
  /** Measured ÷ baseline CPU per delivery, round by round. */
  readonly cpuRatio: Spread;
  /** Measured ÷ baseline broadcast latency p50, round by round. */
  readonly latencyRatio: Spread;
}

/** Each scenario's rounds as medians and spreads, the ratios paired by round. */
export function compareSummaries(f: CompareFigures): CompareSummary[] {
  return f.scenarios.map(({ scenario, measured, baseline }) => {
    const rate = (run: CompareRun) => run.fanOut.perSecond;
    const paired = (value: (run: CompareRun) => number) =>
      spreadOf(measured.map((run, i) => value(run) / value(baseline[i])));
    return {
      label: scenario.label,
      baseline: spreadOf(baseline.map(rate)),
      measured: spreadOf(measured.map(rate)),
      ratio: paired(rate),
      cpuBaseline: spreadOf(baseline.map((run) => run.cpuPerMillion)),
      cpuMeasured: spreadOf(measured.map((run) => run.cpuPerMillion)),
      cpuRatio: paired((run) => run.cpuPerMillion),
      latencyRatio: paired((run) => run.latency.p50),
    };
  });
}

/** The cost of the measured revision (1 − the median paired ratio), as a signed percentage. */
export function cost(summary: CompareSummary): number {
  return 1 - summary.ratio.median;
}

function signedPercent(share: number): string {
  if (!Number.isFinite(share)) return "—";
  return `${share < 0 ? "−" : "+"}${Math.abs(share * 100).toFixed(1)} %`;
}

/** The table of `--compare`, one row per scenario. */
export function compareTable(f: CompareFigures): string {
  const a = f.baseline.revision;
  const b = f.measured.revision;
  const range = (s: Spread, write: (value: number) => string) =>
    `${write(s.median)} (${write(s.min)} – ${write(s.max)})`;
  const seconds = (value: number) => `${value.toFixed(3)} s`;
  const factor = (value: number) => `${value.toFixed(3)}×`;
  return markdownTable(
    [
      "200 × sendAll 64 B",
      `deliveries/s at ${a}`,
      `deliveries/s at ${b}`,
      `${b} ÷ ${a}, per round`,
      "cost",
      `manager CPU per million deliveries at ${a}`,
      `at ${b}`,
      `CPU ${b} ÷ ${a}`,
      `broadcast p50 ${b} ÷ ${a}`,
      `target: cost ≤ ${COMPARE_COST_LIMIT * 100} %`,
    ],
    compareSummaries(f).map((s) => [
      s.label,
      range(s.baseline, count),
      range(s.measured, count),
      range(s.ratio, factor),
      signedPercent(cost(s)),
      range(s.cpuBaseline, seconds),
      range(s.cpuMeasured, seconds),
      range(s.cpuRatio, factor),
      range(s.latencyRatio, factor),
      verdict(Number.isFinite(cost(s)) ? cost(s) <= COMPARE_COST_LIMIT : null),
    ]),
  );
}

/** Every run's figure, round by round: the raw material of the table. */
export function compareRounds(f: CompareFigures): string {
  return markdownTable(
    ["scenario", "round", "first", `${f.baseline.revision}`, `${f.measured.revision}`],
    f.scenarios.flatMap(({ scenario, measured, baseline }) =>
      measured.map((run, round) => [
        scenario.label,
        String(round + 1),
        round % 2 === 0 ? f.measured.revision : f.baseline.revision,
        `${count(baseline[round].fanOut.perSecond)}/s, p50 ${ms(baseline[round].latency.p50)}`,
        `${count(run.fanOut.perSecond)}/s, p50 ${ms(run.latency.p50)}`,
      ])
    ),
  );
}

/** Errors of a `--compare` run. */
export function compareProblems(figures: CompareFigures | Failure): string[] {
  if (ok<CompareFigures>(figures)) return [];
  const failure = figures as Failure;
  return [`compare: error: ${failure.error ?? failure.skipped}`];
}
