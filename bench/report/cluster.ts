/**
 * The `--cluster` figures as tables: `sendAll` from one manager against the
 * same fleet over several managers on Redis, `send(uuid)` to a device on the
 * same manager against one on another; and the run's errors.
 *
 * @module
 */

import type { ClusterFigures } from "../cluster.ts";
import { count, markdownTable, ms, ratio, signedMs } from "./format.ts";
import { type Failure, ok } from "./results.ts";

/** Signed difference in milliseconds and the ratio: what the cross-node hop adds. */
function cost(theirs: number, ours: number): string {
  if (!Number.isFinite(theirs) || !Number.isFinite(ours)) return "—";
  return `${signedMs(theirs - ours)} (${ratio(theirs, ours)})`;
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
