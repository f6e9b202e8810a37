/**
 * Turns the figures into what people read: the results table (Markdown, the
 * same on the terminal and in `bench/RESULTS.md`), the verdict on each target,
 * and the `--cluster` and `--segmentation` documents. How a figure is written
 * is in `report/format.ts`, the SVG chart in `report/chart.ts`.
 *
 * @module
 */

import type { ClusterFigures } from "./cluster.ts";
import { READ_SIZE } from "./handshake_server.ts";
import type {
  CaseFigures,
  SegmentationFigures,
  SegmentationSettings,
  ServerFigures,
} from "./segmentation.ts";
import type { Scenario } from "./phases.ts";
import type { BareFigures } from "./systems/bare.ts";
import type { ManagerFigures } from "./systems/manager.ts";
import type { MosquittoFigures } from "./systems/mosquitto.ts";
import {
  bytes,
  count,
  markdownTable,
  ms,
  percent,
  ratio,
  signedMs,
  signedRatio,
} from "./report/format.ts";
import {
  type BenchResults,
  type ClusterResults,
  type Environment,
  type Failure,
  figures,
  ok,
  type ScenarioResult,
  type SegmentationResults,
  type TargetResult,
  type Verdict,
  why,
} from "./report/results.ts";

const KB = 1024;
/** Target: manager memory per idle device. */
export const MEMORY_TARGET_BYTES = 4 * KB;

function verdict(pass: boolean | null): Verdict {
  return pass === null ? "NOT RUN" : pass ? "PASS" : "MISS";
}

/** One line of the results table. */
interface Row {
  readonly scenario: string;
  readonly measure: string;
  readonly ours: string;
  readonly bare: string;
  readonly vsBare: string;
  readonly mosquitto: string;
  readonly vsMosquitto: string;
  readonly target: string;
  readonly result: string;
}

function isHeadline(scenario: Scenario): boolean {
  return scenario.mode === 2 && !scenario.tls && scenario.devices === 1000;
}

/** The rows of the results table, scenario by scenario. */
export function tableRows(results: readonly ScenarioResult[]): Row[] {
  const rows: Row[] = [];
  for (const { scenario, manager, bare, mosquitto } of results) {
    const m = ok<ManagerFigures>(manager) ? manager : null;
    const b = ok<BareFigures>(bare) ? bare : null;
    const q = ok<MosquittoFigures>(mosquitto) ? mosquitto : null;
    const noOurs = why(manager);
    const noBare = why(bare);
    const noMosquitto = why(mosquitto);
    const row = (
      measure: string,
      ours: string,
      cells: Partial<Omit<Row, "scenario" | "measure" | "ours">> = {},
    ): void => {
      rows.push({
        scenario: scenario.label,
        measure,
        ours: m ? ours : noOurs,
        bare: "",
        vsBare: "",
        mosquitto: "",
        vsMosquitto: "",
        target: "",
        result: "",
        ...cells,
      });
    };
    const headline = isHeadline(scenario);
    const handshakeTarget = scenario.tls ? 500 : 5000;
    row("handshakes/s while connecting", count(m?.handshakesPerSecond ?? NaN), {
      bare: b ? `${count(b.acceptsPerSecond)} (TCP accepts)` : noBare,
      mosquitto: q ? `${count(q.handshakesPerSecond)} (CONNECT+SUBSCRIBE)` : noMosquitto,
      vsMosquitto: m && q ? ratio(m.handshakesPerSecond, q.handshakesPerSecond) : "",
      target: `≥ ${count(handshakeTarget)}/s`,
      result: m ? verdict(m.handshakesPerSecond >= handshakeTarget) : "NOT RUN",
    });
    row("memory per idle device (RSS)", bytes(m ? figures.memory(m) : NaN), {
      bare: b ? bytes(figures.memory(b)) : noBare,
      vsBare: m && b ? ratio(figures.memory(m), figures.memory(b)) : "",
      mosquitto: q ? bytes(figures.memory(q)) : noMosquitto,
      vsMosquitto: m && q ? ratio(figures.memory(m), figures.memory(q)) : "",
      target: `≤ ${bytes(MEMORY_TARGET_BYTES)}`,
      result: m ? verdict(figures.memory(m) <= MEMORY_TARGET_BYTES) : "NOT RUN",
    });
    const fanOutTargets = headline ? "≥ 0.9× bare; ≥ 2.0× Mosquitto" : "";
    row("fan-out: 200 × sendAll 64 B, deliveries/s", count(m ? figures.fanOut(m) : NaN), {
      bare: b ? count(figures.fanOut(b)) : noBare,
      vsBare: m && b ? ratio(figures.fanOut(m), figures.fanOut(b)) : "",
      mosquitto: q ? count(figures.fanOut(q)) : noMosquitto,
      vsMosquitto: m && q ? ratio(figures.fanOut(m), figures.fanOut(q)) : "",
      target: fanOutTargets,
      result: headline
        ? `${verdict(m && b ? figures.fanOut(m) >= 0.9 * figures.fanOut(b) : null)}; ${
          verdict(m && q ? figures.fanOut(m) >= 2 * figures.fanOut(q) : null)
        }`
        : "",
    });
    for (const [label, get] of [["p50", figures.p50], ["p99", figures.p99]] as const) {
      const target = headline && label === "p99";
      row(`one sendAll to the last device, ${label}`, ms(m ? get(m) : NaN), {
        bare: b ? ms(get(b)) : noBare,
        vsBare: m && b ? ratio(get(m), get(b)) : "",
        mosquitto: q ? ms(get(q)) : noMosquitto,
        vsMosquitto: m && q ? ratio(get(m), get(q)) : "",
        target: target ? "≤ Mosquitto's" : "",
        result: target ? verdict(m && q ? get(m) <= get(q) : null) : "",
      });
    }
    row("sendType to half the fleet, deliveries/s", count(m?.sendType.perSecond ?? NaN));
    row("send to one device at a time, messages/s", count(m?.sendEach.perSecond ?? NaN));
    row(
      scenario.mode === 1
        ? "device messages to a for-await consumer, 64 B units/s (mode 1 has no boundaries)"
        : "device messages to a for-await consumer, messages/s",
      count(m?.inboundPerSecond ?? NaN),
    );
    row("one device message to the consumer, p50", ms(m?.consumerLatency.p50 ?? NaN), {
      target: "< 1 ms",
      result: m ? verdict(m.consumerLatency.p50 < 1) : "NOT RUN",
    });
    row("one device message to the consumer, p99", ms(m?.consumerLatency.p99 ?? NaN));
    const soakSeconds = Math.round(m?.heartbeat.seconds ?? q?.keepAlive.seconds ?? NaN);
    row(
      `heartbeats at 1 s for ${soakSeconds} s: false disconnects`,
      count(m?.heartbeat.falseDisconnects ?? NaN),
      {
        mosquitto: q ? `${count(q.keepAlive.falseDisconnects)} (PINGREQ at 1 s)` : noMosquitto,
        target: "0",
        result: m ? verdict(m.heartbeat.falseDisconnects === 0) : "NOT RUN",
      },
    );
    row(
      "heartbeats at 1 s: server CPU (share of one core)",
      percent(m?.heartbeat.cpuShare ?? NaN),
      {
        mosquitto: q ? percent(q.keepAlive.cpuShare) : noMosquitto,
        vsMosquitto: m && q ? ratio(m.heartbeat.cpuShare, q.keepAlive.cpuShare) : "",
      },
    );
  }
  return rows;
}

/** The verdict on every target of issue 4. */
export function evaluateTargets(
  results: readonly ScenarioResult[],
  quick: boolean,
): TargetResult[] {
  const headline = results.find((result) => isHeadline(result.scenario));
  const m = headline && ok<ManagerFigures>(headline.manager) ? headline.manager : null;
  const b = headline && ok<BareFigures>(headline.bare) ? headline.bare : null;
  const q = headline && ok<MosquittoFigures>(headline.mosquitto) ? headline.mosquitto : null;
  const targets: TargetResult[] = [];
  const where = "mode 2, 1,000 devices";
  targets.push({
    target: "fan-out deliveries/s ≥ 0.9× the bare Deno server",
    where,
    measured: m && b ? ratio(figures.fanOut(m), figures.fanOut(b)) : "—",
    verdict: verdict(m && b ? figures.fanOut(m) >= 0.9 * figures.fanOut(b) : null),
  });
  targets.push({
    target: "fan-out deliveries/s ≥ 2.0× Mosquitto",
    where,
    measured: m && q ? ratio(figures.fanOut(m), figures.fanOut(q)) : "—",
    verdict: verdict(m && q ? figures.fanOut(m) >= 2 * figures.fanOut(q) : null),
  });
  targets.push({
    target: "one sendAll to the last device, p99 ≤ Mosquitto's",
    where,
    measured: m && q ? `${ms(figures.p99(m))} vs ${ms(figures.p99(q))}` : "—",
    verdict: verdict(m && q ? figures.p99(m) <= figures.p99(q) : null),
  });
  const managers = results.flatMap((result) =>
    ok<ManagerFigures>(result.manager) ? [{ scenario: result.scenario, m: result.manager }] : []
  );
  const worst = <T>(
    pick: (entry: { scenario: Scenario; m: ManagerFigures }) => boolean,
    value: (m: ManagerFigures) => number,
    higherIsWorse: boolean,
  ) => {
    const chosen = managers.filter(pick);
    if (chosen.length === 0) return null;
    return chosen.reduce((a, c) =>
      (higherIsWorse ? value(c.m) > value(a.m) : value(c.m) < value(a.m)) ? c : a
    ) as T;
  };
  type Entry = { scenario: Scenario; m: ManagerFigures };
  const memory = worst<Entry>(() => true, figures.memory, true);
  targets.push({
    target: `manager memory ≤ ${bytes(MEMORY_TARGET_BYTES)} per idle device`,
    where: memory ? `worst: ${memory.scenario.label}` : "—",
    measured: memory ? bytes(figures.memory(memory.m)) : "—",
    verdict: verdict(memory ? figures.memory(memory.m) <= MEMORY_TARGET_BYTES : null),
  });
  const plain = worst<Entry>((e) => !e.scenario.tls, (m) => m.handshakesPerSecond, false);
  targets.push({
    target: "handshakes ≥ 5,000/s (plain TCP)",
    where: plain ? `slowest: ${plain.scenario.label}` : "—",
    measured: plain ? `${count(plain.m.handshakesPerSecond)}/s` : "—",
    verdict: verdict(plain ? plain.m.handshakesPerSecond >= 5000 : null),
  });
  const tls = worst<Entry>((e) => e.scenario.tls, (m) => m.handshakesPerSecond, false);
  targets.push({
    target: "handshakes ≥ 500/s (TLS)",
    where: tls ? tls.scenario.label : "—",
    measured: tls ? `${count(tls.m.handshakesPerSecond)}/s` : "—",
    verdict: verdict(tls ? tls.m.handshakesPerSecond >= 500 : null),
  });
  const consumer = worst<Entry>(() => true, (m) => m.consumerLatency.p50, true);
  targets.push({
    target: "device message to a for-await consumer < 1 ms p50",
    where: consumer ? `worst: ${consumer.scenario.label}` : "—",
    measured: consumer ? ms(consumer.m.consumerLatency.p50) : "—",
    verdict: verdict(consumer ? consumer.m.consumerLatency.p50 < 1 : null),
  });
  const big = managers.find((e) => e.scenario.devices === 10_000 && e.scenario.mode === 2);
  const dropped = managers.reduce((sum, e) => sum + e.m.heartbeat.falseDisconnects, 0);
  targets.push({
    target: "10,000 devices, heartbeats every 1 s for 30 s, no false disconnect",
    where: big
      ? `${big.scenario.label} (all scenarios: ${dropped} dropped)`
      : quick
      ? "not in --quick"
      : "—",
    measured: big
      ? `${count(big.m.heartbeat.falseDisconnects)} dropped in ${
        Math.round(big.m.heartbeat.seconds)
      } s`
      : "—",
    verdict: verdict(
      big ? big.m.heartbeat.falseDisconnects === 0 && big.m.heartbeat.seconds >= 29.5 : null,
    ),
  });
  return targets;
}

/** The results table in Markdown. */
export function resultsTable(results: readonly ScenarioResult[]): string {
  const rows = tableRows(results);
  return markdownTable(
    [
      "scenario",
      "measure",
      "iot-manager",
      "bare Deno TCP",
      "vs bare",
      "Mosquitto",
      "vs Mosquitto",
      "target",
      "result",
    ],
    rows.map((row) => [
      row.scenario,
      row.measure,
      row.ours,
      row.bare,
      row.vsBare,
      row.mosquitto,
      row.vsMosquitto,
      row.target,
      row.result,
    ]),
  );
}

/** The targets table in Markdown. */
export function targetsTable(targets: readonly TargetResult[]): string {
  return markdownTable(
    ["target", "where", "measured", "result"],
    targets.map((t) => [t.target, t.where, t.measured, t.verdict]),
  );
}

/** Failures and skips, one line each. */
export function problems(results: readonly ScenarioResult[]): string[] {
  const lines: string[] = [];
  for (const result of results) {
    for (const system of ["manager", "bare", "mosquitto"] as const) {
      const value = result[system] as Failure | undefined;
      if (value?.error) lines.push(`${result.scenario.label}, ${system}: error: ${value.error}`);
      if (value?.skipped) {
        lines.push(`${result.scenario.label}, ${system}: skipped: ${value.skipped}`);
      }
    }
  }
  return lines;
}

/** The machine, as a two-column table; `broker` is the last row (Mosquitto or Redis). */
function environmentTable(env: Environment, broker: readonly [string, string]): string {
  return `| | |
| --- | --- |
| Deno | ${env.deno} (V8 ${env.v8}, TypeScript ${env.typescript}) |
| OS | ${env.os} |
| CPU | ${env.cpu}, ${env.cores} cores |
| memory | ${env.memoryGiB.toFixed(1)} GiB |
| open-file limit | ${env.openFiles ?? "unknown"} |
| ${broker[0]} | ${broker[1]} |`;
}

/** `bench/RESULTS.md`. */
export function resultsMarkdown(results: BenchResults): string {
  const env = results.environment;
  const s = results.settings;
  const issues = problems(results.scenarios);
  return `# iot-manager benchmark results

Produced by \`${results.command}\` on ${env.date} in ${Math.round(results.seconds)} s${
    results.quick ? " (quick run: 1,000 devices only)" : ""
  }. Re-run it to get figures for your machine; only ratios measured in the same run compare.
Several managers on Redis: [RESULTS-cluster.md](RESULTS-cluster.md) (\`deno task bench --cluster\`).

${
    environmentTable(env, [
      "Mosquitto",
      env.mosquitto ?? "not installed (rows skipped): `apt-get install mosquitto`",
    ])
  }

![deliveries per second and broadcast latency against the number of devices](results.svg)

## Targets

${targetsTable(results.targets)}

## All figures

${resultsTable(results.scenarios)}
${
    issues.length > 0
      ? `\n**Failures and skips**\n\n${issues.map((l) => `- ${l}`).join("\n")}\n`
      : ""
  }
## How it was measured

- The system under test and the load generator run in separate processes, on 127.0.0.1 with
  port 0 (Mosquitto on a free port found the same way). The load generator is one process of raw
  \`Deno.connect\` sockets (one 16 KiB read buffer each, frames cut in place, heartbeats answered
  from preallocated bytes), not the library's \`Device\`. The bench talks to the server processes
  over their stdin and stdout, never over the measured sockets.
- Devices connect ${s.connectConcurrency} at a time (Mosquitto listens with a backlog of 100; more
  at once overflow it and cost whole-second SYN retries), after ${s.warmUpDevices} throwaway
  connections have warmed the server's code up. A handshake is done when the device has its
  \`WELCOME\` frame (mode 2) or the manager counts it (mode 1, which has no acknowledgement). The
  bare server counts TCP accepts; Mosquitto counts \`CONNECT\`/\`CONNACK\` then
  \`SUBSCRIBE\`/\`SUBACK\`.
- Memory: the server's RSS with the fleet connected and idle minus its RSS before anyone
  connected, over N; Deno processes run with \`--v8-flags=--expose-gc\` and collect garbage
  first. The bare server holds each socket with a read pending into a 64-byte buffer (the least a
  server that notices disconnects can do); Mosquitto's RSS is read from \`/proc\`.
- Fan-out: ${s.fanOutMessages} back-to-back \`sendAll\` calls of a 64-byte message (bare server:
  the same bytes written to every socket, one write in flight per socket and what queues
  meanwhile sent in the next; Mosquitto: ${s.fanOutMessages} QoS 0 \`PUBLISH\`es from one
  publisher to N subscribers of one topic), timed from the first send to the last device
  receiving its last message. Each burst runs ${s.burstRuns} times (fewer once
  ${s.burstBudgetMs / 1000} s have gone by) and the median run is reported. The same for
  \`sendType\` (to the half of the fleet that are lights, ${s.sendTypeMessages} messages) and
  \`send\` (each device in turn, ${s.sendEachRounds} rounds).
- Latency of one broadcast: ${s.latencyRounds} single \`sendAll\` calls (Mosquitto: single
  publishes), each timed from the call (the publisher's write) to the last device receiving it.
  The processes share the system clock (\`performance.timeOrigin + performance.now()\`). With
  ${s.latencyRounds} rounds, p99 is the slowest round: expect it to swing between runs on a small
  machine, and compare p50s for the steady picture.
- Inbound: every device writes ${s.inboundMessages.toLocaleString("en-US")} / N messages of 64
  bytes at once; timed until the \`for await (const m of manager.messages())\` consumer in the
  manager process has counted them all. Mode 1 has no message boundaries, so there it counts
  64-byte units. Then ${s.consumerSamples} single stamped messages, 5 ms apart, each from another
  device, for the device-to-consumer latency.
- Heartbeats: a fresh manager with \`heartbeatRate: 1\` and \`heartbeatTimeout:
  ${s.heartbeatTimeout}\`, the fleet connected and answering, for ${s.heartbeatSeconds} s; a false
  disconnect is any device the manager dropped. CPU share is the server's user + system time from
  \`/proc/<pid>/stat\` over the wall time. Mosquitto's counterpart: every client sends \`PINGREQ\`
  each second with a keep-alive of ${s.heartbeatTimeout} s.
`;
}

/** Signed difference in milliseconds and the ratio: what the cross-node hop adds. */
function cost(theirs: number, ours: number): string {
  if (!Number.isFinite(theirs) || !Number.isFinite(ours)) return "—";
  const difference = theirs - ours;
  return `${difference >= 0 ? "+" : "−"}${ms(Math.abs(difference))} (${ratio(theirs, ours)})`;
}

/** The two tables of `--cluster`: `sendAll` one manager against the cluster, then `send(uuid)`. */
export function clusterTables(f: ClusterFigures): string {
  const n = count(f.devices);
  const managers = `${f.managers} managers on Redis`;
  const perMillion = (fanOut: { serverCpuSeconds: number; deliveries: number }) =>
    fanOut.serverCpuSeconds / fanOut.deliveries * 1e6;
  const { single, cluster, send } = f;
  const broadcast = markdownTable(
    ["sendAll from one manager", "one manager", managers, "cluster vs one"],
    [
      ...([
        ["each awaited", (b: typeof single) => b.fanOut],
        ["issued at once (Promise.all)", (b: typeof single) => b.fanOutConcurrent],
      ] as const).flatMap(([how, pick]) => [
        [
          `fan-out: 200 × sendAll 64 B to ${n} devices, ${how}, deliveries/s`,
          count(pick(single).perSecond),
          count(pick(cluster).perSecond),
          ratio(pick(cluster).perSecond, pick(single).perSecond),
        ],
        [
          `… server CPU per million deliveries (cluster: every manager and Redis)`,
          `${perMillion(pick(single)).toFixed(2)} s`,
          `${perMillion(pick(cluster)).toFixed(2)} s`,
          ratio(perMillion(pick(cluster)), perMillion(pick(single))),
        ],
      ]),
      ...(["p50", "p99"] as const).map((p) => [
        `one sendAll to the last of ${n} devices, ${p}`,
        ms(single.latency[p]),
        ms(cluster.latency[p]),
        ratio(cluster.latency[p], single.latency[p]),
      ]),
    ],
  );
  const sends = markdownTable(
    [
      "send(uuid) from manager A",
      "to a device on A (local)",
      "to a device on B (cross-node)",
      "cross-node cost",
    ],
    [
      ...(["p50", "p99"] as const).map((p) => [
        `latency to the device, ${p} (${count(send.localLatency.samples)} sends each)`,
        ms(send.localLatency[p]),
        ms(send.crossLatency[p]),
        cost(send.crossLatency[p], send.localLatency[p]),
      ]),
      [
        "one call at a time to each device, messages/s",
        count(send.localSendEach.perSecond),
        count(send.crossSendEach.perSecond),
        ratio(send.crossSendEach.perSecond, send.localSendEach.perSecond),
      ],
    ],
  );
  return `${broadcast}\n\n${sends}`;
}

/** Errors of a `--cluster` run (a failure, or calls that reached the wrong number of devices). */
export function clusterProblems(cluster: ClusterFigures | Failure): string[] {
  if (!ok<ClusterFigures>(cluster)) {
    const failure = cluster as Failure;
    return [
      failure.error ? `cluster: error: ${failure.error}` : `cluster: skipped: ${failure.skipped}`,
    ];
  }
  return cluster.countErrors.map((line) => `cluster: error: ${line}`);
}

/** \`bench/RESULTS-cluster.md\`. */
export function clusterMarkdown(results: ClusterResults): string {
  const env = results.environment;
  const s = results.settings;
  const f = results.cluster;
  const issues = clusterProblems(f);
  const figures = ok<ClusterFigures>(f) ? f : null;
  const n = count(s.managers * s.devicesPerManager);
  return `# iot-manager cluster benchmark results

Produced by \`${results.command}\` on ${env.date} in ${Math.round(results.seconds)} s. Re-run it to
get figures for your machine; only ratios measured in the same run compare. The figures for one
manager against the runtime and Mosquitto are in [RESULTS.md](RESULTS.md).

${environmentTable(env, ["Redis", env.redis ?? "not installed: `apt-get install redis-server`"])}

## Figures

${figures ? clusterTables(figures) : "No figures: the run failed (below)."}

${
    issues.length > 0
      ? `**Failures**\n\n${issues.map((l) => `- ${l}`).join("\n")}`
      : `Every \`sendAll\` call resolved with ${n}, every \`send\` with 1.`
  }

## How it was measured

- One machine runs everything: the load generator (one process of raw sockets, as in
  [RESULTS.md](RESULTS.md)), ${s.managers} manager processes (\`bench/server.ts\` with
  \`cluster: new RedisAdapter({ url, prefix, nodeTtl: 75 })\`, one prefix for all), and a
  \`redis-server\` the bench starts on a free loopback port with \`--save "" --appendonly no\`. On a
  small machine they compete for the same cores, which a real deployment would not.
- ${n} mode-2 devices: first all on one manager without a cluster adapter (the baseline), then
  ${count(s.devicesPerManager)} on each of the ${s.managers} managers, once every manager's
  \`getClientData()\` lists all ${n}. Each manager first warms up with ${s.warmUpDevices} throwaway
  connections.
- Fan-out: ${s.fanOutMessages} \`sendAll\` calls of a 64-byte message on the first manager, timed
  from the first call to the last device receiving its last message; the median of up to
  ${s.burstRuns} runs (fewer once ${s.fanOutBudgetMs / 1000} s have gone by). Once back to back,
  each call awaited before the next (as in [RESULTS.md](RESULTS.md)), then all issued at once and
  awaited together (\`Promise.all\`). Every call must resolve with ${n}, the cluster-wide count;
  any other count is reported as an error. CPU: user + system seconds of the manager (cluster:
  every manager and \`redis-server\`) over the median run, per million deliveries.
- Why the awaited row differs so much: a manager writes what was queued for a device during one
  task in one write. On one manager \`await sendAll()\` resolves without leaving the task, so the
  ${s.fanOutMessages} messages reach each device in one write. In a cluster each call resolves only
  when the other managers have reported their counts through Redis, so every message is a write
  of its own on every socket (and a read in the load generator). Issued at once, the calls
  coalesce again on every manager.
- Latency of one broadcast: ${s.latencyRounds} single \`sendAll\` calls, each timed from the call to
  the last of the ${n} devices receiving it, on the clock the processes share. With
  ${s.latencyRounds} rounds, p99 is the slowest round: compare p50s for the steady picture.
- \`send(uuid)\`: ${s.sendSamples} calls on manager A to a device A holds and ${s.sendSamples} to a
  device B holds, taken in turn, one at a time, each timed from the call on A to the device
  receiving the message. A cross-node send is a Redis \`PUBLISH\` to B's channel; B delivers and
  publishes its count back, and the call resolves when A has it. Then \`send\` to each of the
  ${count(s.devicesPerManager)} devices on A in turn (${s.sendEachRounds} rounds) and to each on B
  (${s.crossSendRounds} rounds), each call awaited: messages per second at the devices.
`;
}

/** Target of the segmentation issue: 8-byte segments cost at most this many times one write. */
export const SEGMENTATION_TARGET = 2;

/** Server CPU per handshake in one case, in ms: the median where there is one, else the mean. */
function perHandshake(figures: CaseFigures): number {
  return figures.spread?.medianMs ?? figures.cpuMs / figures.devices;
}

/** The servers of a segmentation run in column order: bare reader, manager now, manager before. */
function segmentationServers(f: SegmentationFigures): ServerFigures[] {
  return [f.bare, f.manager, ...(f.baseline ? [f.baseline] : [])];
}

function serverTitle(f: SegmentationFigures, server: ServerFigures): string {
  if (server === f.bare) return "bare Deno reader";
  if (server === f.manager) {
    return `manager, ${f.tree.commit.slice(0, 7)}${f.tree.uncommitted ? " + uncommitted" : ""}`;
  }
  return `manager, ${f.baseline?.commit.slice(0, 7)} (before)`;
}

type CaseKey = "oneWrite" | "segmented" | "paced";

/**
 * What the bare reader would spend on a handshake of `key`'s cut in `reads`
 * reads: its CPU for one write and for that cut, joined by a straight line in
 * the number of reads (the kernel cuts the same segments into fewer, larger
 * reads for a slower reader, and the runtime's cost is per read).
 */
function bareAt(bare: ServerFigures, key: CaseKey, reads: number): number {
  const one = bare.oneWrite;
  const cut = bare[key];
  const span = cut.readsPerHandshake - one.readsPerHandshake;
  if (key === "oneWrite" || span <= 0) return perHandshake(cut);
  const perRead = (perHandshake(cut) - perHandshake(one)) / span;
  return perHandshake(one) + perRead * (reads - one.readsPerHandshake);
}

/** The manager's CPU per handshake above the bare reader's at the manager's reads, for one case. */
function excess(manager: ServerFigures, bare: ServerFigures, key: CaseKey): number {
  return perHandshake(manager[key]) - bareAt(bare, key, manager[key].readsPerHandshake);
}

/** The two tables of `--segmentation`: CPU per handshake, then ratios and the manager's excess. */
export function segmentationTables(f: SegmentationFigures, s: SegmentationSettings): string {
  const servers = segmentationServers(f);
  const managers = servers.filter((server) => server !== f.bare);
  const cases: readonly [CaseKey, string][] = [
    ["oneWrite", "one write"],
    ["segmented", `${s.segmentSize}-byte segments, each write awaited`],
    ["paced", `${s.segmentSize}-byte segments, ${s.pacedGapMicroseconds} µs apart`],
  ];
  const figures = markdownTable(
    [
      `server CPU per handshake (reads per handshake)`,
      ...servers.map((server) => serverTitle(f, server)),
    ],
    cases.map(([key, label]) => [
      `${label} (${count(f.bare[key].devices)} devices${f.bare[key].spread ? ", median" : ""})`,
      ...servers.map((server) =>
        `${ms(perHandshake(server[key]))} (${count(server[key].readsPerHandshake)})`
      ),
    ]),
  );
  const segmented = cases.slice(1);
  const ratios = markdownTable(
    ["", ...servers.map((server) => serverTitle(f, server))],
    [
      ...segmented.map(([key, label]) => [
        `${label} ÷ one write`,
        ...servers.map((server) => ratio(perHandshake(server[key]), perHandshake(server.oneWrite))),
      ]),
      ...cases.map(([key, label]) => [
        `manager ÷ bare reader, ${label}`,
        "",
        ...managers.map((manager) => ratio(perHandshake(manager[key]), perHandshake(f.bare[key]))),
      ]),
      ...cases.map(([key, label]) => [
        `manager − bare reader at the manager's reads, ${label}`,
        "",
        ...managers.map((manager) => signedMs(excess(manager, f.bare, key))),
      ]),
      ...segmented.map(([key, label]) => [
        `parser's own share: (manager − bare), ${label} ÷ one write`,
        "",
        ...managers.map((manager) =>
          signedRatio(excess(manager, f.bare, key), excess(manager, f.bare, "oneWrite"))
        ),
      ]),
      [
        `manager − bare reader per read, ${segmented[1][1]}`,
        "",
        ...managers.map((manager) =>
          `${
            (excess(manager, f.bare, "paced") / manager.paced.readsPerHandshake * 1000).toFixed(2)
          } µs`
        ),
      ],
    ],
  );
  return `${figures}\n\n${ratios}`;
}

/** The verdict on the ≤ 2× target, for the manager of this tree. */
export function segmentationTargets(f: SegmentationFigures, s: SegmentationSettings): string {
  const raw = (key: CaseKey) => perHandshake(f.manager[key]) / perHandshake(f.manager.oneWrite);
  const own = (key: CaseKey) =>
    excess(f.manager, f.bare, key) / excess(f.manager, f.bare, "oneWrite");
  const bare = (key: CaseKey) => perHandshake(f.bare[key]) / perHandshake(f.bare.oneWrite);
  const row = (what: string, value: number, note: string) => [
    what,
    `≤ ${SEGMENTATION_TARGET}×`,
    `${value.toFixed(2)}×`,
    verdict(Number.isFinite(value) ? value <= SEGMENTATION_TARGET : null),
    note,
  ];
  const segments = `${s.segmentSize}-byte segments`;
  const paced = `${segments} ${s.pacedGapMicroseconds} µs apart`;
  return markdownTable(
    ["measure (the manager measured, not the before)", "target", "measured", "result", "floor"],
    [
      row(
        `${segments} ÷ one write`,
        raw("segmented"),
        `bare reader ${bare("segmented").toFixed(1)}×`,
      ),
      row(`${paced} ÷ one write`, raw("paced"), `bare reader ${bare("paced").toFixed(1)}×`),
      row(
        `parser's own share, ${segments}: (manager − bare) ÷ the same for one write`,
        own("segmented"),
        `reads: manager ${count(f.manager.segmented.readsPerHandshake)}, bare ${
          count(f.bare.segmented.readsPerHandshake)
        }`,
      ),
      row(
        `parser's own share, ${paced}`,
        own("paced"),
        `reads: manager ${count(f.manager.paced.readsPerHandshake)}, bare ${
          count(f.bare.paced.readsPerHandshake)
        }`,
      ),
    ],
  );
}

/** Errors of a `--segmentation` run. */
export function segmentationProblems(segmentation: SegmentationFigures | Failure): string[] {
  if (!ok<SegmentationFigures>(segmentation)) {
    const failure = segmentation as Failure;
    return [`segmentation: error: ${failure.error ?? failure.skipped}`];
  }
  const lines = segmentation.errors.map((line) => `segmentation: error: ${line}`);
  const tick = 1000 / segmentation.clockTicksPerSecond;
  for (const server of segmentationServers(segmentation)) {
    for (const key of ["oneWrite", "segmented", "paced"] as const) {
      const { cpuMs, tickCpuMs } = server[key];
      // Each tick reading is truncated, so the two may differ by up to two ticks, plus rounding.
      if (Math.abs(cpuMs - tickCpuMs) > 2 * tick + 0.05 * tickCpuMs) {
        lines.push(
          `segmentation: error: ${server.label}, ${key}: the threads' CPU (${ms(cpuMs)}) and ` +
            `the process's clock ticks (${ms(tickCpuMs)}) disagree`,
        );
      }
    }
  }
  return lines;
}

/** `bench/RESULTS-segmentation.md`. */
export function segmentationMarkdown(results: SegmentationResults): string {
  const env = results.environment;
  const s = results.settings;
  const f = results.segmentation;
  const issues = segmentationProblems(f);
  const figures = ok<SegmentationFigures>(f) ? f : null;
  const segments = `${s.segmentSize}-byte segments`;
  const size = `${count(s.answerSize / 1024)} KiB`;
  const git = figures
    ? `${figures.tree.commit}${
      figures.tree.uncommitted ? " with uncommitted changes to lib/" : ""
    }` +
      (figures.baseline
        ? `; before: ${figures.baseline.commit} (${figures.baseline.revision})`
        : "")
    : "unknown";
  return `# iot-manager handshake segmentation benchmark results

Produced by \`${results.command}\` on ${env.date} in ${Math.round(results.seconds)} s. Re-run it to
get figures for your machine; only ratios measured in the same run compare. The other figures are
in [RESULTS.md](RESULTS.md).

${environmentTable(env, ["manager measured", git])}

## Figures

${figures ? segmentationTables(figures, s) : "No figures: the run failed (below)."}

${
    figures
      ? `## Target\n\n${segmentationTargets(figures, s)}\n\n${segmentationVerdict(figures, s)}\n`
      : ""
  }
${issues.length > 0 ? `**Failures and notes**\n\n${issues.map((l) => `- ${l}`).join("\n")}\n` : ""}
## How it was measured

- Each server runs in a process of its own (\`bench/handshake_server.ts\`) on 127.0.0.1, port 0,
  all of them at once; this process plays the devices, one at a time, and talks to the servers
  only over their stdin and stdout, between cases. The manager is
  \`Manager.listen({ validTypes: ["light"], maxHandshakeSize: ${s.maxHandshakeSize} })\`
  with heartbeats out of the way,
  loaded from the \`mod.ts\` of the working tree or, for a git revision (\`--revision\`, and the
  "before" of \`--baseline\`), of a temporary \`git worktree\` removed at the end, resolved through
  this tree's \`deno.json\`. The bare Deno reader accepts, sets \`TCP_NODELAY\`, writes the same
  one-byte \`getinfo\`, then reads into one ${count(READ_SIZE)}-byte buffer (the manager's handshake
  read size) and discards until the end of stream: the runtime's cost of the same reads, with no
  parsing.
- Each device is a new connection with a new UUID: it waits for \`getinfo\`, sends a ${size} mode-1
  answer \`UUID##light##{"pad":"xxx…"}\`, half-closes, and waits for the server to close. The
  manager closes after the handshake completed and it read the end of stream; after each case its
  \`connect\` events must equal the devices and every \`disconnect\` reason be \`closed\` (else the
  run reports an error).
- After ${s.warmUpDevices} throwaway handshakes of the first two kinds on each server, three
  cases: the answer in one write; in ${segments}, each its own awaited write with \`TCP_NODELAY\`
  (up to ${count(s.devices)} devices per server, fewer once ${s.caseBudgetMs / 1000} s have gone
  by, at least ${s.minDevices}); and the same segments with ${s.pacedGapMicroseconds} µs spun
  between writes (up to ${count(s.pacedDevices)} devices per server). Within a case the servers
  take turns, one device each per round, so a change in the machine's speed touches them alike.
- Unpaced, the device writes faster than a server reads, so the kernel hands the server several
  segments per read, and a slower reader gets fewer, larger reads: the reads per handshake are
  shown with each figure. Paced, nearly every segment is a read of its own for a reader that keeps
  up, so the bare reader and the manager make the same reads and their difference is the manager's
  own work per read.
- CPU: the server process's time on CPU over the case, the sum of its threads'
  \`/proc/<pid>/task/<tid>/schedstat\` (nanoseconds), divided by the handshakes. In the paced
  case, where a handshake takes about a second, the CPU is also read around each handshake and
  the figure is the median, which one slow handshake does not move (the table's other cases are
  too short for that: the reads themselves would cool the server's caches); cross-checked
  against utime + stime from \`/proc/<pid>/stat\` (${
    figures ? figures.clockTicksPerSecond : "CLK_TCK"
  } ticks per second, \`getconf CLK_TCK\`): a gap of more than two ticks and 5 % is an error. A
  thread that exits during a case (an idle runtime pool thread timing out) is left out with what
  it used before exiting.
  Reads are counted in the server process by wrapping \`read\` on the prototype every
  \`Deno.Conn\` shares (one extra promise per read, in both servers).
- The parser's own share is the manager's excess over the bare reader with ${segments}, over the
  same for one write. Where the two made different numbers of reads (unpaced above all: a slower
  reader gets fewer, larger ones), the bare reader's figure is taken at the manager's reads, on the
  straight line through its one-write and segmented figures (CPU against reads), so the runtime's
  cost of reads one made and the other did not is not counted as parsing.
`;
}

/** The paragraph under the targets table: what the figures mean for the ≤ 2× target. */
function segmentationVerdict(f: SegmentationFigures, s: SegmentationSettings): string {
  const per = (server: ServerFigures, key: CaseKey) => perHandshake(server[key]);
  const raw = per(f.manager, "segmented") / per(f.manager, "oneWrite");
  const bareRaw = per(f.bare, "segmented") / per(f.bare, "oneWrite");
  const own = (key: CaseKey) =>
    excess(f.manager, f.bare, key) / excess(f.manager, f.bare, "oneWrite");
  const perRead = (server: ServerFigures) =>
    excess(server, f.bare, "paced") / server.paced.readsPerHandshake * 1000;
  const met = (value: number) => value <= SEGMENTATION_TARGET ? "met" : "not met";
  const summary =
    `**Verdict**: with ${s.segmentSize}-byte segments the ≤ ${SEGMENTATION_TARGET}× ` +
    `target is ${met(raw)} on the raw ratio (${raw.toFixed(1)}×; the bare reader alone is at ` +
    `${bareRaw.toFixed(1)}×). On the parser's own share it is ${met(own("segmented"))} ` +
    `unpaced (${own("segmented").toFixed(2)}×) and ${met(own("paced"))} paced ` +
    `(${own("paced").toFixed(2)}×).`;
  const lines = [
    summary,
    "",
    `- Raw ratio: ${s.segmentSize}-byte segments cost the manager ${raw.toFixed(1)}× one write: ` +
    `the ≤ ${SEGMENTATION_TARGET}× target is ${
      met(raw)
    } on the raw figure. The bare reader, which ` +
    `parses nothing, pays ${bareRaw.toFixed(1)}× for the same bytes ` +
    `(${count(f.bare.segmented.readsPerHandshake)} reads instead of ` +
    `${count(f.bare.oneWrite.readsPerHandshake)}): the raw ratio is the runtime's cost per read, ` +
    `which any server reading through \`Deno.Conn\` pays, not the parser's.`,
    `- Parser's own share: ${own("segmented").toFixed(2)}× unpaced (target ${
      met(own("segmented"))
    }), ${own("paced").toFixed(2)}× paced (target ${met(own("paced"))}), the bare reader ` +
    `taken at the manager's reads (unpaced the manager made ` +
    `${count(f.manager.segmented.readsPerHandshake)} reads per handshake, the bare reader ` +
    `${count(f.bare.segmented.readsPerHandshake)}). Paced, with nearly the same reads, the ` +
    `manager spends ` +
    `${perRead(f.manager).toFixed(2)} µs per read above it ` +
    `(${signedMs(excess(f.manager, f.bare, "paced"))} per handshake, against ` +
    `${signedMs(excess(f.manager, f.bare, "oneWrite"))} for one write): the manager's own work ` +
    `per read (all it does beyond the bare loop's read) is small against the runtime's ` +
    `${(per(f.bare, "paced") / f.bare.paced.readsPerHandshake * 1000).toFixed(1)} µs per read, ` +
    `and over ${count(f.manager.paced.readsPerHandshake)} reads it comes to ` +
    `${ratio(excess(f.manager, f.bare, "paced"), excess(f.manager, f.bare, "oneWrite"))} the ` +
    `manager's work on a handshake read in one write.`,
  ];
  const against = (server: ServerFigures) =>
    (["oneWrite", "segmented", "paced"] as const)
      .map((key) => ratio(per(server, key), per(f.bare, key))).join(", ");
  lines.push(
    `- Against the bare reader with the same cut, a bound that can hold for any cut, the manager ` +
      `costs ${against(f.manager)} (one write, ${s.segmentSize}-byte segments, paced)` +
      (f.baseline ? `; before: ${against(f.baseline)}.` : "."),
  );
  const before = f.baseline;
  if (before) {
    const beforeRaw = per(before, "segmented") / per(before, "oneWrite");
    lines.push(
      `- Before (${before.revision}): one write ${ms(per(before, "oneWrite"))}, ` +
        `${s.segmentSize}-byte segments ${ms(per(before, "segmented"))} ` +
        `(${beforeRaw.toFixed(1)}×, in only ${count(before.segmented.readsPerHandshake)} reads: ` +
        `a reader that slow gets the segments in larger reads), paced ` +
        `${ms(per(before, "paced"))} (${count(before.paced.readsPerHandshake)} reads) against ` +
        `the bare reader's ${ms(per(f.bare, "paced"))}: ${perRead(before).toFixed(1)} µs per ` +
        `read above the runtime, each read re-copying, re-decoding and re-scanning everything ` +
        `received so far. After: ${ms(per(f.manager, "oneWrite"))}, ` +
        `${ms(per(f.manager, "segmented"))} and ${ms(per(f.manager, "paced"))}. Paced, the ` +
        `manager's excess over the bare reader fell from ` +
        `${ms(excess(before, f.bare, "paced"))} to ${ms(excess(f.manager, f.bare, "paced"))} ` +
        `per handshake (${
          ratio(excess(before, f.bare, "paced"), excess(f.manager, f.bare, "paced"))
        } ` +
        `less), its total CPU ${ratio(per(before, "paced"), per(f.manager, "paced"))} less; ` +
        `one write costs ${ratio(per(before, "oneWrite"), per(f.manager, "oneWrite"))} less.`,
    );
  }
  return lines.join("\n");
}
