/**
 * The documents a run writes: `bench/RESULTS.md`, `bench/RESULTS-cluster.md`
 * and `bench/RESULTS-segmentation.md`, each the machine, the figures' tables,
 * the failures and how it was measured. `main.ts` lays them out with
 * `deno fmt` afterwards.
 *
 * @module
 */

import type { ClusterFigures } from "../cluster.ts";
import type { CompareFigures } from "../compare.ts";
import { READ_SIZE } from "../handshake_server.ts";
import type { SegmentationFigures } from "../segmentation.ts";
import { WARM_UP_MESSAGES as WARM_UP } from "../phases.ts";
import { ACK_TIMEOUT_SECONDS } from "../systems/manager.ts";
import { clusterProblems, clusterTables } from "./cluster.ts";
import { COMPARE_COST_LIMIT, compareProblems, compareRounds, compareTable } from "./compare.ts";
import { bulletList, count } from "./format.ts";
import {
  type BenchResults,
  type ClusterResults,
  type CompareResults,
  type Environment,
  ok,
  type Run,
  type SegmentationResults,
} from "./results.ts";
import { problems, resultsTable } from "./scenarios.ts";
import { segmentationProblems, segmentationTables } from "./segmentation.ts";
import { segmentationTargets, segmentationVerdict, targetsTable } from "./targets.ts";

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

/** How a document starts: the command that produced it, when, and how long it took. */
function produced(run: Run): string {
  return `Produced by \`${run.command}\` on ${run.environment.date} in ${
    Math.round(run.seconds)
  } s`;
}

/**
 * The top of a `--cluster` or `--segmentation` document, down to its figures
 * (`null` when the run failed); `seeAlso` ends the first paragraph.
 */
function headOfRun(
  title: string,
  run: Run,
  seeAlso: string,
  broker: readonly [string, string],
  tables: string | null,
): string {
  return `# iot-manager ${title} benchmark results

${produced(run)}. Re-run it to
get figures for your machine; only ratios measured in the same run compare. ${seeAlso}

${environmentTable(run.environment, broker)}

## Figures

${tables ?? "No figures: the run failed (below)."}
`;
}

/** `bench/RESULTS.md`. */
export function resultsMarkdown(results: BenchResults): string {
  const env = results.environment;
  const s = results.settings;
  const issues = problems(results.scenarios);
  return `# iot-manager benchmark results

${produced(results)}${
    results.quick ? " (quick run: 1,000 devices only)" : ""
  }. Re-run it to get figures for your machine; only ratios measured in the same run compare.
Several managers on Redis: [RESULTS-cluster.md](RESULTS-cluster.md) (\`deno task bench --cluster\`).
What the manager's counters (\`manager.stats()\`) cost its fan-out, measured in turns with the
revision before them: [RESULTS-compare.md](RESULTS-compare.md) (\`deno task bench --compare\`).
The same figures with plots: [results.html](results.html), one page that opens without a network.

${
    environmentTable(env, [
      "Mosquitto",
      env.mosquitto ?? "not installed (rows skipped): `apt-get install mosquitto`",
    ])
  }

![deliveries per second and broadcast latency against the number of devices](results.svg)

## Targets

${targetsTable(results.targets)}

The targets from "memory per idle device ≤ 1.15× the bare server's" on are issue 15's (fleet scale):
what each MISS costs and where that cost lives, with the profiles that show it and the figures of
earlier runs, is in
[bench/README.md](README.md#fleet-scale-issue-15-each-target-and-where-the-cost-of-each-miss-lives).

## All figures

${resultsTable(results.scenarios)}
${issues.length > 0 ? `\n**Failures and skips**\n\n${bulletList(issues)}\n` : ""}
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
- With ack (mode 2; mode 1 has no acknowledgements): a manager process of its own, whose devices
  send \`FEATURES\` \`["ack"]\` right after \`WELCOME\` and answer each \`MESSAGE\` with its
  \`ACK\` (the ACKs of one read in one write, from two buffers per socket that take turns).
  ${s.ackedMessages} calls of \`sendAll(data, { ack: true, timeout: ${ACK_TIMEOUT_SECONDS} })\` issued
  at once (awaited one by one, each would wait a round trip; fewer than the fast path's
  ${s.fanOutMessages}, as each call costs the manager a time that grows faster than the fleet),
  timed in the manager process from the first call to the last report resolving, that is to the
  last \`ACK\` read; the median of up to
  ${s.burstRuns} runs as above. Then ${s.latencyRounds} single calls, each timed to its report. Every
  report must count every device as acknowledged; anything else is an error. In brackets, the ratio
  to the fast path above (the first manager process, same run): its latency ends when the last
  device has the message, this one when the manager has read the last \`ACK\`. Mosquitto has no
  counterpart here: a QoS 1 \`PUBACK\` comes from the broker, not from the subscribers.
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

/** `bench/RESULTS-cluster.md`. */
export function clusterMarkdown(results: ClusterResults): string {
  const s = results.settings;
  const issues = clusterProblems(results.cluster);
  const n = count(s.managers * s.devicesPerManager);
  return `${
    headOfRun(
      "cluster",
      results,
      "The figures for one\n" +
        "manager against the runtime and Mosquitto are in [RESULTS.md](RESULTS.md).",
      ["Redis", results.environment.redis ?? "not installed: `apt-get install redis-server`"],
      ok<ClusterFigures>(results.cluster) ? clusterTables(results.cluster) : null,
    )
  }
${
    issues.length > 0
      ? `**Failures**\n\n${bulletList(issues)}`
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

/** `bench/RESULTS-segmentation.md`. */
export function segmentationMarkdown(results: SegmentationResults): string {
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
  return `${
    headOfRun(
      "handshake segmentation",
      results,
      "The other figures are\nin [RESULTS.md](RESULTS.md).",
      ["manager measured", git],
      figures && segmentationTables(figures, s),
    )
  }
${
    figures
      ? `## Target\n\n${segmentationTargets(figures, s)}\n\n${segmentationVerdict(figures, s)}\n`
      : ""
  }
${issues.length > 0 ? `**Failures and notes**\n\n${bulletList(issues)}\n` : ""}
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

/** `bench/RESULTS-compare.md`. */
export function compareMarkdown(results: CompareResults): string {
  const s = results.settings;
  const f = results.compare;
  const issues = compareProblems(f);
  const figures = ok<CompareFigures>(f) ? f : null;
  const git = figures
    ? [figures.measured, figures.baseline].map((side) =>
      `${side.revision} = ${side.commit.slice(0, 7)}${
        side.uncommitted ? " with uncommitted changes to lib/" : ""
      }`
    ).join("; ")
    : "unknown";
  return `${
    headOfRun(
      "revision comparison",
      results,
      "The other figures are\nin [RESULTS.md](RESULTS.md).",
      ["managers measured", git],
      figures && `${compareTable(figures)}\n\nEvery round:\n\n${compareRounds(figures)}`,
    )
  }
${issues.length > 0 ? `**Failures**\n\n${bulletList(issues)}\n` : ""}
## How it was measured

- The manager's fan-out as in [RESULTS.md](RESULTS.md): a \`bench/server.ts\` process, warmed up
  with ${s.warmUpDevices} throwaway connections, the fleet connected (one load-generator process of
  raw sockets), ${WARM_UP} \`sendAll\` calls to warm up, then ${s.fanOutMessages} back-to-back
  \`sendAll\` calls of a 64-byte message timed from the first call to the last device receiving its
  last message, ${s.burstRuns} times (fewer once ${s.burstBudgetMs / 1000} s have gone by), the
  median kept; then ${s.latencyRounds} single \`sendAll\` calls, each timed to the last device.
- The server process loads \`Manager\` from the \`mod.ts\` of a temporary \`git worktree\` of each
  revision (removed at the end), or of the working tree, resolved through this tree's
  \`deno.json\`; the bench, the load generator and the server's own code are this tree's at both.
- ${s.rounds} rounds. In each, every scenario runs at both revisions, one right after the other, in
  a fresh process each; which revision goes first alternates from round to round (ABBA), so a
  drift in the machine's speed touches both alike. Each cell gives the median over the rounds and,
  in brackets, the least and the most.
- The ratio is taken round by round (the two runs of a round were back to back), then its median
  and spread are given; the cost is 1 − that median. The target is a cost of at most
  ${COMPARE_COST_LIMIT * 100} %. CPU is the manager process's time on CPU over all its broadcast
  phases (the warm-up, every burst, the single calls), the sum of its threads'
  \`/proc/<pid>/task/<tid>/schedstat\` (nanoseconds), per million deliveries: the fan-out's
  throughput is shared with the load generator on the same cores, while this is the manager's own
  work, which is what a counter on its hot path adds to.
`;
}
