/**
 * What each kind of run produced, as `--json` prints it and the report reads
 * it: the main run's scenarios and targets, `--cluster`'s and
 * `--segmentation`'s figures, the machine they ran on, and a failure in place
 * of the figures a system could not give.
 *
 * @module
 */

import type { ClusterFigures, ClusterSettings } from "../cluster.ts";
import type { CompareFigures } from "../compare.ts";
import type { Latency } from "../figures.ts";
import type { Scenario, Settings } from "../phases.ts";
import type { SegmentationFigures, SegmentationSettings } from "../segmentation.ts";
import type { BareFigures } from "../systems/bare.ts";
import type { ManagerFigures } from "../systems/manager.ts";
import type { MosquittoFigures } from "../systems/mosquitto.ts";

/** What one scenario produced; a system that failed or was skipped has a reason instead. */
export interface ScenarioResult {
  readonly scenario: Scenario;
  readonly manager: ManagerFigures | Failure;
  readonly bare: BareFigures | Failure;
  /** Absent for scenarios without a Mosquitto counterpart. */
  readonly mosquitto?: MosquittoFigures | Failure;
}

/** Why a system has no figures. */
export interface Failure {
  readonly skipped?: string;
  readonly error?: string;
}

/** The machine and tools the run used. */
export interface Environment {
  readonly date: string;
  readonly deno: string;
  readonly v8: string;
  readonly typescript: string;
  readonly os: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly openFiles: number | null;
  readonly mosquitto: string | null;
  /** `--cluster` runs only. */
  readonly redis?: string | null;
}

/** What every kind of run records about itself. */
export interface Run {
  readonly command: string;
  readonly seconds: number;
  readonly environment: Environment;
}

/** Everything a run produced, as `--json` prints it. */
export interface BenchResults extends Run {
  readonly quick: boolean;
  readonly settings: Omit<Settings, "tls">;
  readonly scenarios: readonly ScenarioResult[];
  readonly targets: readonly TargetResult[];
}

/** What a `--cluster` run produced, as `--cluster --json` prints it. */
export interface ClusterResults extends Run {
  readonly settings: Omit<Settings, "tls"> & ClusterSettings;
  readonly cluster: ClusterFigures | Failure;
}

/** What a `--segmentation` run produced, as `--segmentation --json` prints it. */
export interface SegmentationResults extends Run {
  readonly settings: SegmentationSettings;
  readonly segmentation: SegmentationFigures | Failure;
}

/** What a `--compare` run produced, as `--compare --json` prints it. */
export interface CompareResults extends Run {
  readonly settings: Omit<Settings, "tls"> & { readonly rounds: number };
  readonly compare: CompareFigures | Failure;
}

/** One target and how this run did against it. */
export interface TargetResult {
  readonly target: string;
  readonly where: string;
  readonly measured: string;
  readonly verdict: Verdict;
}

/** PASS, MISS, or NOT RUN when the figures it needs are missing. */
export type Verdict = "PASS" | "MISS" | "NOT RUN";

/** Whether `value` holds figures, rather than a failure or nothing. */
export function ok<T extends object>(value: T | Failure | undefined): value is T {
  return value !== undefined && !("skipped" in value || "error" in value);
}

/** What stands in a table cell where figures are missing: "skipped", "error" or "—". */
export function why(value: object | undefined): string {
  if (value === undefined) return "—";
  const failure = value as Failure;
  return failure.skipped ? "skipped" : failure.error ? "error" : "—";
}

/** The figures every system reports, read alike by the rows, the targets and the chart. */
export const figures = {
  fanOut: (f: { fanOut: { perSecond: number } }): number => f.fanOut.perSecond,
  p50: (f: { latency: Latency }): number => f.latency.p50,
  p99: (f: { latency: Latency }): number => f.latency.p99,
  memory: (f: { memory: { rssPerDevice: number } }): number => f.memory.rssPerDevice,
};
