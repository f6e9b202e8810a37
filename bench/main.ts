/**
 * `deno task bench`: how many devices one manager holds, how fast a broadcast
 * reaches them, what a device costs in memory, against the bare Deno runtime
 * and Mosquitto, measured in one run so the ratios hold on a noisy machine.
 *
 * ```sh
 * deno task bench            # 1,000, 5,000 and 10,000 devices; writes bench/RESULTS.md and results.svg
 * deno task bench --quick    # 1,000 devices only, prints the table, writes nothing
 * deno task bench --json     # prints the figures as JSON on stdout (the table goes to stderr)
 * deno task bench --cluster  # only the cluster figures (3 managers on Redis); writes bench/RESULTS-cluster.md
 * deno task bench --segmentation [--revision=HEAD] [--baseline=52d3202]
 *                            # handshake CPU for one write vs 8-byte segments; writes bench/RESULTS-segmentation.md
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
import { environment, openFileLimit } from "./machine.ts";
import { aligned, writeDocuments } from "./output.ts";
import { resultsChart } from "./report/chart.ts";
import { clusterProblems, clusterTables } from "./report/cluster.ts";
import { clusterMarkdown, resultsMarkdown, segmentationMarkdown } from "./report/markdown.ts";
import type {
  BenchResults,
  ClusterResults,
  Failure,
  ScenarioResult,
  SegmentationResults,
} from "./report/results.ts";
import { problems, resultsTable } from "./report/scenarios.ts";
import { segmentationProblems, segmentationTables } from "./report/segmentation.ts";
import { evaluateTargets, segmentationTargets, targetsTable } from "./report/targets.ts";

const USAGE = `Usage: deno task bench [--quick | --cluster] [--json]
       deno task bench --segmentation [--revision=REV] [--baseline=REV] [--json]

  --quick         1,000 devices only (mode 2, mode 1, TLS) with 10 s of heartbeats; prints the
                  table and writes no files
  --cluster       only the cluster figures: 3,000 devices on one manager, then over 3 managers
                  joined through a redis-server the bench starts; writes bench/RESULTS-cluster.md
  --segmentation  only the handshake figures: the manager's CPU to read a 64 KiB mode-1 answer
                  sent in one write, in 8-byte segments, and in paced 8-byte segments, against a
                  bare Deno reader; writes bench/RESULTS-segmentation.md (~1 min)
  --revision=REV  with --segmentation: measure the manager at git revision REV instead of the
                  working tree's (checked out in a temporary git worktree, removed at the end)
  --baseline=REV  with --segmentation: also measure the manager at git revision REV, the
                  "before" (e.g. 52d3202), in a temporary git worktree likewise
  --json          print every figure as JSON on stdout (the table then goes to stderr)

A full run (1,000, 5,000 and 10,000 devices) writes bench/RESULTS.md and bench/results.svg.
Mosquitto rows need /usr/sbin/mosquitto (apt-get install mosquitto); without it they are skipped.
--cluster needs redis-server (apt-get install redis-server); without it there is nothing to run.`;

interface Options {
  readonly quick: boolean;
  readonly cluster: boolean;
  readonly segmentation: boolean;
  readonly revision: string | null;
  readonly baseline: string | null;
  readonly json: boolean;
}

function parseArgs(args: readonly string[]): Options {
  const options: { -readonly [K in keyof Options]: Options[K] } = {
    quick: false,
    cluster: false,
    segmentation: false,
    revision: null,
    baseline: null,
    json: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--quick") options.quick = true;
    else if (arg === "--cluster") options.cluster = true;
    else if (arg === "--segmentation") options.segmentation = true;
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
  if ([options.quick, options.cluster, options.segmentation].filter(Boolean).length > 1) {
    console.error(
      `--quick, --cluster and --segmentation do not combine: each is a run of its own.\n\n${USAGE}`,
    );
    Deno.exit(2);
  }
  for (const revision of [options.revision, options.baseline]) {
    if (revision !== null && (!options.segmentation || revision === "")) {
      console.error(`--revision=REV and --baseline=REV go with --segmentation.\n\n${USAGE}`);
      Deno.exit(2);
    }
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
  if (options.segmentation) return await runSegmentation(options, startedAt, out, log);

  const plan = scenarios(options.quick);
  const config = settings(options.quick);
  const limit = await openFileLimit();
  const largest = Math.max(...plan.map((s) => s.devices));
  if (limit !== null && limit < largest + 200) {
    console.error(
      `The open-file limit is ${limit}; ${largest.toLocaleString("en-US")} devices need at least ` +
        `${largest + 200} per process. Raise it (ulimit -n 20000) or use --quick.`,
    );
    return 1;
  }
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
  const limit = await openFileLimit();
  if (limit !== null && limit < devices + 200) {
    console.error(
      `The open-file limit is ${limit}; ${devices.toLocaleString("en-US")} devices need at least ` +
        `${devices + 200} in the load generator. Raise it (ulimit -n 20000).`,
    );
    return 1;
  }
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
  if ("redisVersion" in cluster) out(`\n${await aligned(`${clusterTables(cluster)}\n`)}`);
  const issues = clusterProblems(cluster);
  for (const line of issues) out(line);
  if ("redisVersion" in cluster) {
    const wrote = await writeDocuments({ "RESULTS-cluster.md": clusterMarkdown(results) });
    out(`Done in ${Math.round(results.seconds)} s; wrote ${wrote}.`);
  } else {
    out(`Failed after ${Math.round(results.seconds)} s; bench/RESULTS-cluster.md is unchanged.`);
  }
  if (options.json) console.log(JSON.stringify(results, null, 2));
  return issues.length > 0 ? 1 : 0;
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
  if ("bare" in segmentation) {
    out(`\n${await aligned(`${segmentationTables(segmentation, SEGMENTATION)}\n`)}`);
    out(await aligned(`${segmentationTargets(segmentation, SEGMENTATION)}\n`));
  }
  const issues = segmentationProblems(segmentation);
  for (const line of issues) out(line);
  if ("bare" in segmentation) {
    const wrote = await writeDocuments({
      "RESULTS-segmentation.md": segmentationMarkdown(results),
    });
    out(`Done in ${Math.round(results.seconds)} s; wrote ${wrote}.`);
  } else {
    out(
      `Failed after ${Math.round(results.seconds)} s; bench/RESULTS-segmentation.md is unchanged.`,
    );
  }
  if (options.json) console.log(JSON.stringify(results, null, 2));
  return issues.some((line) => line.includes(": error: ")) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
