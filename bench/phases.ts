/**
 * The phases every system under test goes through, written once: warm-up
 * connections, timed bursts, broadcasts timed one by one, a heartbeat soak,
 * each with a deadline. The systems (`systems/`) and the `--cluster` run
 * drive them; what they produce is in `figures.ts`.
 *
 * @module
 */

import { ServerProcess } from "./control.ts";
import { type FanOut, type HeartbeatSoak, type Latency, latencyOf } from "./figures.ts";
import type { DeviceFleet } from "./load.ts";
import type { MqttFleet } from "./mqtt.ts";
import type { ServerConfig } from "./server.ts";
import { processCpuSeconds } from "./wire.ts";

/** One configuration the bench runs: how many devices, which mode, TLS or not. */
export interface Scenario {
  readonly id: string;
  readonly label: string;
  readonly devices: number;
  readonly mode: 1 | 2;
  readonly tls: boolean;
  /** Also run Mosquitto for this scenario (plain mode 2 only). */
  readonly mosquitto: boolean;
}

/** How hard and how long each phase pushes. */
export interface Settings {
  /** Back-to-back broadcasts in the fan-out phase. */
  readonly fanOutMessages: number;
  /**
   * Acknowledged broadcasts issued at once in the fan-out with ack (fewer: each
   * costs the manager a time that grows faster than the fleet).
   */
  readonly ackedMessages: number;
  /** Single broadcasts timed one by one. */
  readonly latencyRounds: number;
  /** Back-to-back `sendType` calls to half the fleet. */
  readonly sendTypeMessages: number;
  /** Rounds of `send` to each device in turn. */
  readonly sendEachRounds: number;
  /** Inbound messages in total, spread over the fleet. */
  readonly inboundMessages: number;
  /** Device-to-consumer latency samples. */
  readonly consumerSamples: number;
  /** Seconds of heartbeats (1 s rate). */
  readonly heartbeatSeconds: number;
  /** Seconds of Mosquitto keep-alives (context only, so shorter). */
  readonly keepAliveSeconds: number;
  /** Devices that connect and leave before each measurement, so the server code is warm. */
  readonly warmUpDevices: number;
  /** Seconds a device has to answer a heartbeat in that phase. */
  readonly heartbeatTimeout: number;
  /** Runs of each throughput burst (the median is kept)... */
  readonly burstRuns: number;
  /** ...unless this many milliseconds have gone by (at least one run). */
  readonly burstBudgetMs: number;
  /** Handshakes in flight at once while connecting. */
  readonly connectConcurrency: number;
  /** PEM files for the TLS scenarios. */
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
}

/** Where a measurement reports its progress. */
export type Log = (message: string) => void;

/** Longest a connect phase may take. */
export const CONNECT_TIMEOUT_MS = 120_000;
/** Longest the bench waits for a burst's deliveries (see {@linkcode deliveryTimeout}). */
export const DELIVERY_TIMEOUT_MS = 60_000;

/** A minute, plus a second per 20,000 deliveries (Mosquitto manages about 30,000/s at 10,000). */
function deliveryTimeout(deliveries: number): number {
  return DELIVERY_TIMEOUT_MS + deliveries / 20;
}
/** Broadcasts sent (and awaited) before the first timed burst. */
export const WARM_UP_MESSAGES = 20;
const serverModule = new URL("./server.ts", import.meta.url).pathname;
const configFile = new URL("../deno.json", import.meta.url).pathname;

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<unknown> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a `server.ts` process (see {@linkcode ServerConfig}). */
export function startServer(name: string, config: ServerConfig): ServerProcess {
  return new ServerProcess(name, [
    "run",
    "--quiet",
    `--config=${configFile}`,
    "--allow-net=127.0.0.1",
    "--allow-env",
    // Another revision's mod.ts is imported at run time, which reads it.
    ...(config.module ? ["--allow-read"] : []),
    // bench/memory_profile.ts: heap snapshots written there, the sampling profiler (inspector).
    ...(config.snapshotDir ? [`--allow-write=${config.snapshotDir}`, "--allow-sys"] : []),
    // bench/heartbeat_profile.ts --cpu-prof: V8's CPU profile written there at exit.
    ...(config.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${config.cpuProfileDir}`] : []),
    // BENCH_V8_FLAGS: more V8 flags for the server processes, for experiments (bench/README.md).
    `--v8-flags=${
      ["--expose-gc", ...(Deno.env.get("BENCH_V8_FLAGS") ?? "").split(",")].filter(Boolean).join(
        ",",
      )
    }`,
    serverModule,
    JSON.stringify(config),
  ]);
}

/** Polls the server until it counts `count` connections. */
export async function untilSize(
  server: ServerProcess,
  count: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await server.call<number>("size") < count) {
    if (Date.now() > deadline) {
      throw new Error(`${server.name} holds ${await server.call("size")} of ${count} connections`);
    }
    await sleep(2);
  }
}

/** One burst to time: arm the fleet's targets, then trigger the send (returns when it started). */
export interface Burst {
  readonly deliveries: number;
  /**
   * Arms the burst's end and resolves with when it came: usually the fleet's
   * last arrival; for an acknowledged send, when its report was in.
   */
  expect(): Promise<number>;
  send(): Promise<number>;
  readonly what: string;
}

/** CPU seconds (user + system) the processes `pids` have used, together. */
async function cpuSecondsOf(pids: readonly number[]): Promise<number> {
  let seconds = 0;
  for (const pid of pids) seconds += await processCpuSeconds(pid);
  return seconds;
}

/**
 * Times a burst from the first send to the last socket's last message, `runs`
 * times (fewer if `budgetMs` runs out), and keeps the median run. The server
 * CPU is that of every process in `serverPids` (several for a cluster).
 */
export async function timeBursts(
  fleet: DeviceFleet | MqttFleet,
  serverPids: readonly number[],
  burst: Burst,
  settings: Settings,
): Promise<FanOut> {
  const runs: Omit<FanOut, "runs">[] = [];
  const budgetEnds = performance.now() + settings.burstBudgetMs;
  while (
    runs.length < settings.burstRuns && (runs.length === 0 || performance.now() < budgetEnds)
  ) {
    const expected = burst.expect();
    const serverCpu = await cpuSecondsOf(serverPids);
    const loadCpu = await processCpuSeconds(Deno.pid);
    const startedAt = await burst.send();
    const lastAt = await fleet.arrival(expected, deliveryTimeout(burst.deliveries), burst.what);
    const seconds = (lastAt - startedAt) / 1000;
    runs.push({
      deliveries: burst.deliveries,
      seconds,
      perSecond: burst.deliveries / seconds,
      serverCpuSeconds: await cpuSecondsOf(serverPids) - serverCpu,
      loadCpuSeconds: await processCpuSeconds(Deno.pid) - loadCpu,
    });
    await sleep(20);
  }
  const median = [...runs].sort((a, b) => a.perSecond - b.perSecond)[(runs.length - 1) >> 1];
  return { ...median, runs: runs.map((run) => run.perSecond) };
}

/** Sends one broadcast at a time and times the last socket's arrival. */
export async function timeRounds(
  fleet: DeviceFleet | MqttFleet,
  rounds: number,
  send: () => Promise<number>,
): Promise<Latency> {
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const expected = fleet.expect(1);
    const startedAt = await send();
    samples.push(await fleet.arrival(expected, 10_000, `broadcast ${round + 1}`) - startedAt);
    await sleep(10);
  }
  return latencyOf(samples);
}

/** How a system broadcasts to the whole fleet, and what its waits are called in timeouts. */
export interface Broadcaster {
  /** Sends `count` broadcasts back to back; resolves with when the first one started. */
  send(count: number): Promise<number>;
  /** The warm-up broadcasts. */
  readonly warmUp: string;
  /** A burst, after its number of broadcasts: "broadcasts", "publishes through mosquitto". */
  readonly burst: string;
}

/**
 * The broadcast phases of a system: a few broadcasts to warm up, the fan-out
 * bursts of `settings.fanOutMessages`, then single broadcasts timed one by one.
 */
export async function timeBroadcasts(
  fleet: DeviceFleet | MqttFleet,
  serverPids: readonly number[],
  broadcaster: Broadcaster,
  settings: Settings,
): Promise<{ fanOut: FanOut; latency: Latency }> {
  const warmUpArrival = fleet.expect(WARM_UP_MESSAGES);
  await broadcaster.send(WARM_UP_MESSAGES);
  await fleet.arrival(warmUpArrival, DELIVERY_TIMEOUT_MS, broadcaster.warmUp);
  const m = settings.fanOutMessages;
  const fanOut = await timeBursts(fleet, serverPids, {
    deliveries: m * fleet.size,
    expect: () => fleet.expect(m),
    send: () => broadcaster.send(m),
    what: `${m} ${broadcaster.burst}`,
  }, settings);
  const latency = await timeRounds(fleet, settings.latencyRounds, () => broadcaster.send(1));
  return { fanOut, latency };
}

/** Lets heartbeats run for `seconds`; measures the server's CPU time and the round trips. */
export async function soak(
  serverPid: number,
  seconds: number,
  roundTrips: () => number,
): Promise<Omit<HeartbeatSoak, "falseDisconnects">> {
  const cpu = await processCpuSeconds(serverPid);
  const trips = roundTrips();
  const startedAt = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - startedAt) / 1000;
  return {
    seconds: elapsed,
    roundTrips: roundTrips() - trips,
    cpuShare: (await processCpuSeconds(serverPid) - cpu) / elapsed,
  };
}

/**
 * Connects `settings.warmUpDevices` throwaway clients and closes them, then
 * waits until the server has let them all go: the first connections to a
 * fresh process pay for compiling its code, which is not what a device costs.
 */
export async function warmUpConnections(
  open: () => DeviceFleet | MqttFleet,
  settings: Settings,
  size: () => Promise<number>,
): Promise<void> {
  const fleet = open();
  const until = async (done: (count: number) => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!done(await size())) {
      if (Date.now() > deadline) throw new Error(`the warm-up connections ${what}`);
      await sleep(10);
    }
  };
  try {
    await fleet.connect(settings.warmUpDevices, {
      concurrency: settings.connectConcurrency,
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    // Mode 1 has no acknowledgement: leave only once the manager holds them all.
    await until((count) => count >= settings.warmUpDevices || count < 0, "were not all admitted");
  } finally {
    await fleet.close();
  }
  await until((count) => count <= 0, "did not go away");
}
