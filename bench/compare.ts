/**
 * `deno task bench --compare`: the manager's fan-out at two git revisions,
 * measured in turns on the same machine in the same run, so that a change's
 * cost stands out of the machine's noise. Each round measures every scenario
 * at both revisions, one right after the other (which goes first alternates
 * from round to round), each in a fresh server process warmed up as the main
 * run's are; the figure per round is the median of its bursts, as there.
 *
 * @module
 */

import type { FanOut, Latency } from "./figures.ts";
import { type Log, type Scenario, type Settings, WARM_UP_MESSAGES } from "./phases.ts";
import { checkout, type Revisions } from "./revisions.ts";
import { connectWarm, MANAGER, timeSendAll } from "./systems/deno_server.ts";
import { processThreadsCpu, threadsCpuSince } from "./wire.ts";

/** How many turns `--compare` takes, and on which fleets. */
export interface CompareSettings {
  /** Rounds: each measures every scenario at both revisions. */
  readonly rounds: number;
  readonly scenarios: readonly Scenario[];
}

/** The manager measured, as the report names it. */
export interface Measured {
  /** The revision asked for, or "working tree". */
  readonly revision: string;
  readonly commit: string;
  /** Whether the working tree's `mod.ts` or `lib/` differ from `commit`. */
  readonly uncommitted: boolean;
}

/** One scenario at one revision in one round. */
export interface CompareRun {
  readonly fanOut: FanOut;
  readonly latency: Latency;
  /**
   * The manager's CPU over all the broadcast phases (warm-up, every burst, the
   * single calls), from its threads' scheduler statistics (nanoseconds, not
   * clock ticks), in seconds per million deliveries.
   */
  readonly cpuPerMillion: number;
}

/** One scenario's runs, round by round, at both revisions. */
export interface CompareScenario {
  readonly scenario: Scenario;
  /** At `revision` (or the working tree), one entry per round. */
  readonly measured: readonly CompareRun[];
  /** At `baseline`, one entry per round. */
  readonly baseline: readonly CompareRun[];
}

/** Everything `--compare` measures. */
export interface CompareFigures {
  readonly measured: Measured;
  readonly baseline: Measured;
  readonly rounds: number;
  readonly scenarios: readonly CompareScenario[];
}

/**
 * The manager's fan-out and broadcast latency at `revisions.revision` (the
 * working tree when `null`) and at `revisions.baseline`, round after round.
 */
export async function measureComparison(
  compare: CompareSettings,
  settings: Settings,
  revisions: Revisions & { readonly baseline: string },
  log: Log,
): Promise<CompareFigures> {
  await using stack = new AsyncDisposableStack();
  const current = await checkout(stack, revisions.revision, log);
  const before = await checkout(stack, revisions.baseline, log);
  const sides = [
    { key: "measured", name: revisions.revision ?? "working tree", tree: current },
    { key: "baseline", name: revisions.baseline, tree: before },
  ] as const;
  const runs = compare.scenarios.map(() => ({
    measured: [] as CompareRun[],
    baseline: [] as CompareRun[],
  }));
  for (let round = 0; round < compare.rounds; round++) {
    // ABBA: which goes first alternates, so a drift in the machine's speed touches both alike.
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const [i, scenario] of compare.scenarios.entries()) {
      for (const side of order) {
        const say = (message: string) =>
          log(`round ${round + 1}, ${scenario.label}, ${side.name}: ${message}`);
        await using connected = await connectWarm(MANAGER, scenario, settings, {
          name: `manager at ${side.name}`,
          config: { module: `${side.tree.path}/mod.ts` },
        });
        const cpuBefore = await processThreadsCpu(connected.pid);
        const { fanOut, latency } = await timeSendAll(MANAGER, connected, scenario, settings);
        const cpu = threadsCpuSince(cpuBefore, await processThreadsCpu(connected.pid));
        const calls = WARM_UP_MESSAGES + fanOut.runs.length * settings.fanOutMessages +
          settings.latencyRounds;
        const run = {
          fanOut,
          latency,
          cpuPerMillion: cpu.nanoseconds / 1e9 / (calls * scenario.devices) * 1e6,
        };
        say(
          `fan-out ${Math.round(fanOut.perSecond)} deliveries/s, ` +
            `${run.cpuPerMillion.toFixed(3)} s manager CPU per million, ` +
            `broadcast p50 ${latency.p50.toFixed(2)} ms`,
        );
        runs[i][side.key].push(run);
      }
    }
  }
  const named = (side: (typeof sides)[number]): Measured => ({
    revision: side.name,
    commit: side.tree.commit,
    uncommitted: side.tree.uncommitted,
  });
  return {
    measured: named(sides[0]),
    baseline: named(sides[1]),
    rounds: compare.rounds,
    scenarios: compare.scenarios.map((scenario, i) => ({ scenario, ...runs[i] })),
  };
}
