/**
 * `deno task bench`: how many devices one manager holds, how fast a broadcast
 * reaches them, what a device costs in memory, against the bare Deno runtime
 * and Mosquitto, measured in one run so the ratios hold on a noisy machine.
 *
 * ```sh
 * deno task bench            # 1,000, 5,000 and 10,000 devices; writes bench/RESULTS.md, results.svg
 *                            # and results.html (the figures and plots as one self-contained page)
 * deno task bench --quick    # 1,000 devices only, prints the table, writes nothing
 * deno task bench --json     # prints the figures as JSON on stdout (the table goes to stderr)
 * deno task bench --cluster  # only the cluster figures (3 managers on Redis); writes bench/RESULTS-cluster.md
 * deno task bench --segmentation [--revision=HEAD] [--baseline=52d3202]
 *                            # handshake CPU for one write vs 8-byte segments; writes bench/RESULTS-segmentation.md
 * deno task bench --compare --baseline=2d3800a [--revision=HEAD] [--rounds=6]
 *                            # the manager's fan-out at two revisions, in turns; writes bench/RESULTS-compare.md
 * ```
 *
 * @module
 */

import type { Scenario, Settings } from "./phases.ts";
import { measureBare } from "./systems/bare.ts";
import { measureManager } from "./systems/manager.ts";
import { measureMosquitto } from "./systems/mosquitto.ts";
import { type ClusterSettings, findRedis, measureCluster } from "./cluster.ts";
import { findMosquitto } from "./mqtt.ts";
import { measureSegmentation, type SegmentationSettings } from "./segmentation.ts";
import { type CompareSettings, measureComparison } from "./compare.ts";
import { environment, openFileLimit } from "./machine.ts";
import { aligned, writeDocuments } from "./output.ts";
import { resultsChart } from "./report/chart.ts";
import { renderBenchHtml } from "./report/html.ts";
import { clusterProblems, clusterTables } from "./report/cluster.ts";
import { compareProblems, compareTable } from "./report/compare.ts";
import {
  clusterMarkdown,
  compareMarkdown,
  resultsMarkdown,
  segmentationMarkdown,
} from "./report/markdown.ts";
import type {
  BenchResults,
  ClusterResults,
  CompareResults,
  Failure,
  Run,
  ScenarioResult,
  SegmentationResults,
} from "./report/results.ts";
import { problems, resultsTable } from "./report/scenarios.ts";
import { segmentationProblems, segmentationTables } from "./report/segmentation.ts";
import { evaluateTargets, segmentationTargets, targetsTable } from "./report/targets.ts";

/** Rounds of `--compare` unless `--rounds` says otherwise. */
const COMPARE_ROUNDS = 6;

const USAGE = `Usage: deno task bench [--quick | --cluster | --scale] [--json]
       deno task bench --segmentation [--revision=REV] [--baseline=REV] [--json]
       deno task bench --compare --baseline=REV [--revision=REV] [--rounds=N] [--json]

  --quick         1,000 devices only (mode 2, mode 1, TLS) with 10 s of heartbeats; prints the
                  table and writes no files
  --cluster       only the cluster figures: 3,000 devices on one manager, then over 3 managers
                  joined through a redis-server the bench starts; writes bench/RESULTS-cluster.md
  --scale         100,000 devices over as many manager processes on one port (reusePort) and
                  load generators as the open-file limit needs, joined through a redis-server
                  the bench starts: handshake rate, 5 minutes of 60 s heartbeats, sendAll from
                  one manager to all, memory; writes bench/RESULTS-scale.md (~10 min, not in CI)
  --segmentation  only the handshake figures: the manager's CPU to read a 64 KiB mode-1 answer
                  sent in one write, in 8-byte segments, and in paced 8-byte segments, against a
                  bare Deno reader; writes bench/RESULTS-segmentation.md (~1 min)
  --compare       only the manager's fan-out (200 x sendAll) and broadcast latency at 1,000,
                  5,000 and 10,000 devices (mode 2) and 1,000 (mode 1), at --revision and at
                  --baseline in turns, N rounds; writes bench/RESULTS-compare.md (~1.5 min a round)
  --revision=REV  with --segmentation or --compare: measure the manager at git revision REV
                  instead of the working tree's (checked out in a temporary git worktree,
                  removed at the end)
  --baseline=REV  with --segmentation: also measure the manager at git revision REV, the
                  "before" (e.g. 52d3202), in a temporary git worktree likewise; with --compare
                  (where it is needed): the revision to compare with
  --rounds=N      with --compare: how many rounds (default ${COMPARE_ROUNDS})
  --json          print every figure as JSON on stdout (the table then goes to stderr)

A full run (1,000, 5,000 and 10,000 devices) writes bench/RESULTS.md, bench/results.svg and
bench/results.html (the figures and plots as one page that opens without a network).
Mosquitto rows need /usr/sbin/mosquitto (apt-get install mosquitto); without it they are skipped.
--cluster needs redis-server (apt-get install redis-server); without it there is nothing to run.`;

interface Options {
  readonly quick: boolean;
  readonly cluster: boolean;
  readonly scale: boolean;
  readonly segmentation: boolean;
  readonly compare: boolean;
  readonly revision: string | null;
  readonly baseline: string | null;
  readonly rounds: number;
  readonly json: boolean;
}

function parseArgs(args: readonly string[]): Options {
  const options: { -readonly [K in keyof Options]: Options[K] } = {
    quick: false,
    cluster: false,
    scale: false,
    segmentation: false,
    compare: false,
    revision: null,
    baseline: null,
    rounds: COMPARE_ROUNDS,
    json: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--quick") options.quick = true;
    else if (arg === "--cluster") options.cluster = true;
    else if (arg === "--scale") options.scale = true;
    else if (arg === "--segmentation") options.segmentation = true;
    else if (arg === "--compare") options.compare = true;
    else if (arg.startsWith("--rounds=")) options.rounds = Number(arg.slice("--rounds=".length));
    else if (arg === "--rounds" && i + 1 < args.length) options.rounds = Number(args[++i]);
    else if (arg.startsWith("--baseline=")) options.baseline = arg.slice("--baseline=".length);
    else if (arg === "--baseline" && i + 1 < args.length) options.baseline = args[++i];
    else if (arg.startsWith("--revision=")) options.revision = arg.slice("--revision=".length);
    else if (arg === "--revision" && i + 1 < args.length) options.revision = args[++i];
    else if (arg === "--json") options.json = true;
    else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else {
      console.error(`Unknown argument ${JSON.stringify(arg)}\n\n${USAGE}`);
      Deno.exit(2);
    }
  }
  const runs = [
    options.quick,
    options.cluster,
    options.scale,
    options.segmentation,
    options.compare,
  ];
  if (runs.filter(Boolean).length > 1) {
    console.error(
      `--quick, --cluster, --scale, --segmentation and --compare do not combine: each is a run of its ` +
        `own.\n\n${USAGE}`,
    );
    Deno.exit(2);
  }
  const revisions = options.segmentation || options.compare;
  for (const revision of [options.revision, options.baseline]) {
    if (revision !== null && (!revisions || revision === "")) {
      console.error(
        `--revision=REV and --baseline=REV go with --segmentation or --compare.\n\n${USAGE}`,
      );
      Deno.exit(2);
    }
  }
  if (options.compare && options.baseline === null) {
    console.error(`--compare needs --baseline=REV: the revision to compare with.\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (!Number.isInteger(options.rounds) || options.rounds < 1 || options.rounds > 100) {
    console.error(`--rounds takes a whole number from 1 to 100.\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (options.rounds !== COMPARE_ROUNDS && !options.compare) {
    console.error(`--rounds=N goes with --compare.\n\n${USAGE}`);
    Deno.exit(2);
  }
  return options;
}

function scenarios(quick: boolean): Scenario[] {
  const plain = (devices: number): Scenario => ({
    id: `mode2-${devices}`,
    label: `mode 2, ${devices.toLocaleString("en-US")} devices`,
    devices,
    mode: 2,
    tls: false,
    mosquitto: true,
  });
  return [
    plain(1000),
    ...(quick ? [] : [plain(5000), plain(10_000)]),
    {
      id: "mode1-1000",
      label: "mode 1, 1,000 devices",
      devices: 1000,
      mode: 1,
      tls: false,
      mosquitto: false,
    },
    {
      id: "tls-1000",
      label: "mode 2 + TLS, 1,000 devices",
      devices: 1000,
      mode: 2,
      tls: true,
      mosquitto: false,
    },
  ];
}

function settings(quick: boolean): Settings {
  const fixtures = new URL("../tests/fixtures/tls/", import.meta.url);
  const read = (name: string) => Deno.readTextFileSync(new URL(name, fixtures));
  return {
    fanOutMessages: 200,
    ackedMessages: 20,
    latencyRounds: 20,
    sendTypeMessages: 200,
    sendEachRounds: 20,
    inboundMessages: 100_000,
    consumerSamples: 200,
    heartbeatSeconds: quick ? 10 : 30,
    keepAliveSeconds: 10,
    warmUpDevices: 200,
    heartbeatTimeout: 2,
    burstRuns: 11,
    burstBudgetMs: 3000,
    connectConcurrency: 100,
    tls: { ca: read("ca.pem"), cert: read("server.pem"), key: read("server.key") },
  };
}

const SEGMENTATION: SegmentationSettings = {
  answerSize: 64 * 1024,
  segmentSize: 8,
  devices: 100,
  pacedDevices: 10,
  pacedGapMicroseconds: 100,
  minDevices: 5,
  caseBudgetMs: 30_000,
  warmUpDevices: 10,
  maxHandshakeSize: 128 * 1024,
  deviceTimeoutMs: 30_000,
};

const CLUSTER: ClusterSettings = {
  managers: 3,
  devicesPerManager: 1000,
  sendSamples: 500,
  crossSendRounds: 2,
  fanOutBudgetMs: 10_000,
};

/** Whether the open-file limit is too low for `devices` sockets (and says so on stderr). */
async function tooFewOpenFiles(devices: number, where: string, advice = ""): Promise<boolean> {
  const limit = await openFileLimit();
  if (limit === null || limit >= devices + 200) return false;
  console.error(
    `The open-file limit is ${limit}; ${devices.toLocaleString("en-US")} devices need at least ` +
      `${devices + 200} ${where}. Raise it (ulimit -n 20000)${advice}.`,
  );
  return true;
}

async function attempt<T>(
  run: () => Promise<T>,
  log: (message: string) => void,
): Promise<T | Failure> {
  try {
    return await run();
  } catch (error) {
    const message = (error as Error).message ?? String(error);
    log(`ERROR: ${message}`);
    return { error: message };
  }
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  const startedAt = performance.now();
  const out = options.json ? console.error : console.log;
  const log = (message: string) => {
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(6);
    console.error(`[${seconds} s] ${message}`);
  };
  if (options.cluster) return await runCluster(options, startedAt, out, log);
  if (options.scale) {
    const { runScale } = await import("./scale.ts");
    const markdown = await runScale();
    const file = new URL("./RESULTS-scale.md", import.meta.url);
    await Deno.writeTextFile(file, markdown);
    console.log(markdown);
    console.error(`written to ${file.pathname}`);
    return 0;
  }
  if (options.segmentation) return await runSegmentation(options, startedAt, out, log);
  if (options.compare) return await runCompare(options, startedAt, out, log);

  const plan = scenarios(options.quick);
  const config = settings(options.quick);
  const largest = Math.max(...plan.map((s) => s.devices));
  if (await tooFewOpenFiles(largest, "per process", " or use --quick")) return 1;
  const mosquittoBinary = findMosquitto();
  let mosquittoVersion: string | null = null;
  if (!mosquittoBinary) {
    console.error(
      "mosquitto not found: the Mosquitto rows are skipped. Install it with `apt-get install mosquitto`" +
        " (Debian/Ubuntu) and run the bench again to compare with a real broker.",
    );
  }

  const results: ScenarioResult[] = [];
  for (const scenario of plan) {
    const say = (message: string) => log(`${scenario.label}: ${message}`);
    say("manager");
    const manager = await attempt(() => measureManager(scenario, config, say), say);
    say("bare Deno server");
    const bare = await attempt(() => measureBare(scenario, config, say), say);
    let mosquitto: ScenarioResult["mosquitto"];
    if (scenario.mosquitto) {
      if (mosquittoBinary) {
        say("Mosquitto");
        mosquitto = await attempt(
          () => measureMosquitto(mosquittoBinary, scenario, config, say),
          say,
        );
        if ("version" in mosquitto) mosquittoVersion = mosquitto.version;
      } else {
        mosquitto = { skipped: "mosquitto is not installed (apt-get install mosquitto)" };
      }
    }
    results.push({ scenario, manager, bare, ...(mosquitto ? { mosquitto } : {}) });
  }

  const { tls: _tls, ...shownSettings } = config;
  const bench: BenchResults = {
    command: `deno task bench${options.quick ? " --quick" : ""}`,
    quick: options.quick,
    seconds: (performance.now() - startedAt) / 1000,
    environment: await environment(
      mosquittoBinary ? `${mosquittoVersion ?? "installed"} (${mosquittoBinary})` : null,
    ),
    settings: shownSettings,
    scenarios: results,
    targets: evaluateTargets(results, options.quick),
  };

  out(`\n${await aligned(`${resultsTable(results)}\n\n${targetsTable(bench.targets)}\n`)}`);
  const issues = problems(results);
  for (const line of issues) out(line);
  if (options.quick) {
    out(
      `Quick run done in ${
        Math.round(bench.seconds)
      } s; bench/RESULTS.md is written by full runs only.`,
    );
  } else {
    const wrote = await writeDocuments({
      "RESULTS.md": resultsMarkdown(bench),
      "results.svg": resultsChart(results),
      "results.html": renderBenchHtml(bench),
    });
    out(`Done in ${Math.round(bench.seconds)} s; wrote ${wrote}.`);
  }
  if (options.json) console.log(JSON.stringify(bench, null, 2));
  return issues.some((line) => line.includes(": error: ")) ? 1 : 0;
}

/** `--cluster`: one manager, then three on Redis; prints the tables, writes RESULTS-cluster.md. */
async function runCluster(
  options: Options,
  startedAt: number,
  out: (message: string) => void,
  log: (message: string) => void,
): Promise<number> {
  const redisBinary = findRedis();
  if (!redisBinary) {
    console.error(
      "redis-server not found: the cluster figures are skipped. Install it with " +
        "`apt-get install redis-server` (Debian/Ubuntu) and run `deno task bench --cluster` again.",
    );
    return 0;
  }
  const devices = CLUSTER.managers * CLUSTER.devicesPerManager;
  if (await tooFewOpenFiles(devices, "in the load generator")) return 1;
  const config = settings(false);
  const cluster = await attempt(
    () => measureCluster(redisBinary, config, CLUSTER, (message) => log(`cluster: ${message}`)),
    log,
  );
  const { tls: _tls, ...shownSettings } = config;
  const results: ClusterResults = {
    command: "deno task bench --cluster",
    seconds: (performance.now() - startedAt) / 1000,
    environment: await environment(
      null,
      "redisVersion" in cluster ? `${cluster.redisVersion} (${redisBinary})` : redisBinary,
    ),
    settings: { ...shownSettings, ...CLUSTER },
    cluster,
  };
  const issues = clusterProblems(cluster);
  return await finishRun(options, out, results, issues, issues.length > 0, {
    document: "RESULTS-cluster.md",
    figures: "redisVersion" in cluster
      ? { tables: [clusterTables(cluster)], markdown: () => clusterMarkdown(results) }
      : null,
  });
}

/**
 * The end of a run of its own (`--cluster`, `--segmentation`, `--compare`):
 * its tables lined up, its problems, its document in `bench/` when it has
 * figures (else the old one is left as it was), its JSON with `--json`; the
 * exit code is 1 when `failed`.
 */
async function finishRun(
  options: Options,
  out: (message: string) => void,
  results: Run,
  issues: readonly string[],
  failed: boolean,
  { document, figures }: {
    readonly document: string;
    readonly figures: { readonly tables: readonly string[]; markdown(): string } | null;
  },
): Promise<number> {
  for (const [i, table] of (figures?.tables ?? []).entries()) {
    out(`${i === 0 ? "\n" : ""}${await aligned(`${table}\n`)}`);
  }
  for (const line of issues) out(line);
  const seconds = Math.round(results.seconds);
  if (figures) {
    const wrote = await writeDocuments({ [document]: figures.markdown() });
    out(`Done in ${seconds} s; wrote ${wrote}.`);
  } else {
    out(`Failed after ${seconds} s; bench/${document} is unchanged.`);
  }
  if (options.json) console.log(JSON.stringify(results, null, 2));
  return failed ? 1 : 0;
}

/** `--segmentation`: the bare reader, the manager, the baseline; prints, writes RESULTS-segmentation.md. */
async function runSegmentation(
  options: Options,
  startedAt: number,
  out: (message: string) => void,
  log: (message: string) => void,
): Promise<number> {
  const segmentation = await attempt(
    () =>
      measureSegmentation(
        SEGMENTATION,
        { revision: options.revision, baseline: options.baseline },
        (message) => log(`segmentation: ${message}`),
      ),
    log,
  );
  const results: SegmentationResults = {
    command: [
      "deno task bench --segmentation",
      ...(options.revision !== null ? [`--revision=${options.revision}`] : []),
      ...(options.baseline !== null ? [`--baseline=${options.baseline}`] : []),
    ].join(" "),
    seconds: (performance.now() - startedAt) / 1000,
    environment: await environment(null),
    settings: SEGMENTATION,
    segmentation,
  };
  const issues = segmentationProblems(segmentation);
  const failed = issues.some((line) => line.includes(": error: "));
  return await finishRun(options, out, results, issues, failed, {
    document: "RESULTS-segmentation.md",
    figures: "bare" in segmentation
      ? {
        tables: [
          segmentationTables(segmentation, SEGMENTATION),
          segmentationTargets(segmentation, SEGMENTATION),
        ],
        markdown: () => segmentationMarkdown(results),
      }
      : null,
  });
}

/**
 * `--compare`: the manager's fan-out at `--revision` (or the working tree) and
 * `--baseline`, in turns; prints the table, writes RESULTS-compare.md.
 */
async function runCompare(
  options: Options,
  startedAt: number,
  out: (message: string) => void,
  log: (message: string) => void,
): Promise<number> {
  const compare: CompareSettings = {
    rounds: options.rounds,
    scenarios: scenarios(false).filter((scenario) => !scenario.tls),
  };
  const largest = Math.max(...compare.scenarios.map((s) => s.devices));
  if (await tooFewOpenFiles(largest, "per process")) return 1;
  const config = settings(false);
  const figures = await attempt(
    () =>
      measureComparison(
        compare,
        config,
        { revision: options.revision, baseline: options.baseline! },
        (message) => log(`compare: ${message}`),
      ),
    log,
  );
  const { tls: _tls, ...shownSettings } = config;
  const results: CompareResults = {
    command: [
      "deno task bench --compare",
      ...(options.revision !== null ? [`--revision=${options.revision}`] : []),
      `--baseline=${options.baseline}`,
      `--rounds=${options.rounds}`,
    ].join(" "),
    seconds: (performance.now() - startedAt) / 1000,
    environment: await environment(null),
    settings: { ...shownSettings, rounds: options.rounds },
    compare: figures,
  };
  const issues = compareProblems(figures);
  return await finishRun(options, out, results, issues, issues.length > 0, {
    document: "RESULTS-compare.md",
    figures: "scenarios" in figures
      ? { tables: [compareTable(figures)], markdown: () => compareMarkdown(results) }
      : null,
  });
}

if (import.meta.main) Deno.exit(await main());
