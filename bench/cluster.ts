/**
 * `deno task bench --cluster`: the cross-node figures of issue 7. The same
 * devices first on one manager, then spread over three managers joined through
 * a `redis-server` the bench starts itself: what a `sendAll` from one of them
 * delivers per second and how long it takes to reach the last device, and
 * what a `send(uuid)` to a device on another manager costs against one to a
 * device on the manager itself.
 *
 * @module
 */

import type { ServerProcess } from "./control.ts";
import { DeviceFleet, type DeviceSocket } from "./load.ts";
import { type FanOut, type Latency, latencyOf } from "./figures.ts";
import {
  CONNECT_TIMEOUT_MS,
  DELIVERY_TIMEOUT_MS,
  type Log,
  type Settings,
  sleep,
  startServer,
  timeBursts,
  timeRounds,
  untilSize,
  WARM_UP_MESSAGES,
  warmUpConnections,
} from "./phases.ts";
import type { SendTiming, ServerInfo } from "./server.ts";
import { Daemon, findBinary } from "./wire.ts";

/** How big the cluster run is and how hard it pushes. */
export interface ClusterSettings {
  /** Manager processes joined through Redis. */
  readonly managers: number;
  /** Devices connected to each of them (the single manager holds them all). */
  readonly devicesPerManager: number;
  /** `send(uuid)` latency samples, local and cross-node each (taken in turn). */
  readonly sendSamples: number;
  /** Rounds of `send` to each of the 1,000 devices on another manager, one call at a time. */
  readonly crossSendRounds: number;
  /**
   * Milliseconds of fan-out runs to take the median of (`burstBudgetMs` of the
   * main bench is too short for more than one run of the slowest cluster burst).
   */
  readonly fanOutBudgetMs: number;
}

/** `sendAll` from one manager to the whole fleet. */
export interface BroadcastFigures {
  /** Back-to-back calls, each awaited before the next (as the main bench does). */
  readonly fanOut: FanOut;
  /** The same calls issued at once and awaited together (`Promise.all`). */
  readonly fanOutConcurrent: FanOut;
  readonly latency: Latency;
}

/** `send(uuid)` from manager A, to a device on A and to a device on B. */
export interface SendFigures {
  readonly localLatency: Latency;
  readonly crossLatency: Latency;
  /** Sequential `send` to each device on A, messages/s at the devices. */
  readonly localSendEach: FanOut;
  /** Sequential `send` to each device on B. */
  readonly crossSendEach: FanOut;
}

/** Everything `--cluster` measures. */
export interface ClusterFigures {
  readonly redisVersion: string;
  readonly managers: number;
  readonly devices: number;
  /** The whole fleet on one manager without a cluster adapter. */
  readonly single: BroadcastFigures;
  /** The fleet spread evenly over the managers, `sendAll` called on the first. */
  readonly cluster: BroadcastFigures;
  readonly send: SendFigures;
  /** Send calls whose count was not the number of devices they should have reached. */
  readonly countErrors: readonly string[];
}

const CANDIDATES = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"];

/** Where the `redis-server` binary is, or `null`. */
export function findRedis(): string | null {
  return findBinary("redis-server", CANDIDATES);
}

/** Starts `redis-server` on 127.0.0.1 and a free port, without persistence. */
export async function startRedis(binary: string): Promise<Daemon> {
  const { stdout } = await new Deno.Command(binary, {
    args: ["--version"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const version = /v=(\S+)/.exec(new TextDecoder().decode(stdout))?.[1] ?? "unknown";
  return await Daemon.start("redis-server", version, (port) =>
    new Deno.Command(binary, {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      stdout: "null",
      stderr: "inherit",
    }).spawn());
}

/** Checks the counts a send command's calls resolved with; mismatches are collected, not thrown. */
class CountCheck {
  readonly errors: string[] = [];

  check(timing: SendTiming, expected: number, what: string): SendTiming {
    if (timing.reachedMin !== expected || timing.reachedMax !== expected) {
      this.errors.push(
        `${what}: a call reached ${timing.reachedMin}` +
          (timing.reachedMax !== timing.reachedMin ? ` to ${timing.reachedMax}` : "") +
          ` devices, expected ${expected}`,
      );
    }
    return timing;
  }
}

const LABELS = "ABCDEFGH";

/** Every cluster figure: the single manager first, then the cluster, in one run. */
export async function measureCluster(
  redisBinary: string,
  settings: Settings,
  cluster: ClusterSettings,
  log: Log,
): Promise<ClusterFigures> {
  const devices = cluster.managers * cluster.devicesPerManager;
  const counts = new CountCheck();
  log(`one manager, ${devices.toLocaleString("en-US")} devices`);
  const single = await measureSingle(devices, settings, cluster, counts, log);
  log(`${cluster.managers} managers on Redis`);
  await using redis = await startRedis(redisBinary);
  const { broadcast, send } = await measureManagers(redis, settings, cluster, counts, log);
  return {
    redisVersion: redis.version,
    managers: cluster.managers,
    devices,
    single,
    cluster: broadcast,
    send,
    countErrors: counts.errors,
  };
}

/** The fleet on one manager, no cluster adapter: the baseline the cluster is compared with. */
async function measureSingle(
  devices: number,
  settings: Settings,
  cluster: ClusterSettings,
  counts: CountCheck,
  log: Log,
): Promise<BroadcastFigures> {
  await using server = startServer("manager", { target: "manager" });
  const { pid, port } = await server.call<ServerInfo>("info");
  await warmUp(server, port, settings);
  await using fleet = new DeviceFleet({ port }, { mode: 2, handshake: true });
  await fleet.connect(devices, {
    concurrency: settings.connectConcurrency,
    timeoutMs: CONNECT_TIMEOUT_MS,
  });
  await untilSize(server, devices, 10_000);
  const figures = await measureBroadcast(
    fleet,
    server,
    [pid],
    devices,
    {
      ...settings,
      burstBudgetMs: cluster.fanOutBudgetMs,
    },
    counts,
    "",
  );
  log(`one manager: ${describe(figures)}`);
  await noDisconnects([server], fleet);
  return figures;
}

/** The fleet spread over `cluster.managers` managers sharing one Redis prefix. */
async function measureManagers(
  redis: Daemon,
  settings: Settings,
  cluster: ClusterSettings,
  counts: CountCheck,
  log: Log,
): Promise<{ broadcast: BroadcastFigures; send: SendFigures }> {
  if (cluster.managers < 2) throw new Error("a cluster needs at least 2 managers");
  const devices = cluster.managers * cluster.devicesPerManager;
  await using stack = new AsyncDisposableStack();
  // The default TTL of a manager with default heartbeats (60 s + 15 s): the registry refresh
  // runs at the rate a deployment would see, although the bench turns heartbeats off.
  const config = {
    url: `redis://127.0.0.1:${redis.port}`,
    prefix: `bench-${crypto.randomUUID()}`,
    nodeTtl: 75,
  };
  const servers: ServerProcess[] = [];
  for (let i = 0; i < cluster.managers; i++) {
    servers.push(stack.use(
      startServer(`manager ${LABELS[i]}`, { target: "manager", cluster: config }),
    ));
  }
  const infos = await Promise.all(servers.map((server) => server.call<ServerInfo>("info")));
  for (const [i, server] of servers.entries()) await warmUp(server, infos[i].port, settings);

  const fleet = stack.use(new DeviceFleet({ port: infos[0].port }, { mode: 2, handshake: true }));
  const groups: DeviceSocket[][] = [];
  for (const [i, info] of infos.entries()) {
    const first = fleet.size;
    await fleet.connect(cluster.devicesPerManager, {
      concurrency: settings.connectConcurrency,
      timeoutMs: CONNECT_TIMEOUT_MS,
      endpoint: { port: info.port },
    });
    groups.push(fleet.sockets.slice(first));
    await untilSize(servers[i], cluster.devicesPerManager, 10_000);
  }
  await untilClusterWide(servers, devices, 30_000);
  log(`${devices.toLocaleString("en-US")} devices, listed by every manager`);

  const [a] = servers;
  const pids = [...infos.map((info) => info.pid), redis.pid];
  const broadcast = await measureBroadcast(
    fleet,
    a,
    pids,
    devices,
    {
      ...settings,
      burstBudgetMs: cluster.fanOutBudgetMs,
    },
    counts,
    "cluster ",
  );
  log(`cluster: ${describe(broadcast)}`);

  const [local, remote] = groups;
  const { localLatency, crossLatency } = await sendLatencies(
    fleet,
    a,
    local,
    remote,
    cluster.sendSamples,
    counts,
  );
  log(
    `send(uuid) p50: local ${localLatency.p50.toFixed(3)} ms, ` +
      `cross-node ${crossLatency.p50.toFixed(3)} ms`,
  );
  const localSendEach = await sendEach(fleet, a, local, settings.sendEachRounds, settings, counts);
  const crossSendEach = await sendEach(fleet, a, remote, cluster.crossSendRounds, settings, counts);
  log(
    `sequential send: local ${Math.round(localSendEach.perSecond)} messages/s, ` +
      `cross-node ${Math.round(crossSendEach.perSecond)} messages/s`,
  );
  await noDisconnects(servers, fleet);
  return { broadcast, send: { localLatency, crossLatency, localSendEach, crossSendEach } };
}

function describe(figures: BroadcastFigures): string {
  return `${Math.round(figures.fanOut.perSecond)} deliveries/s awaited, ` +
    `${Math.round(figures.fanOutConcurrent.perSecond)} concurrent, ` +
    `p50 ${figures.latency.p50.toFixed(1)} ms`;
}

/** Warm-up connections on one manager, then forgets them leaving. */
async function warmUp(server: ServerProcess, port: number, settings: Settings): Promise<void> {
  await warmUpConnections(
    () => new DeviceFleet({ port }, { mode: 2, handshake: true }),
    settings,
    () => server.call<number>("size"),
  );
  await server.call("disconnects");
}

/** Polls every manager until `getClientData()` lists exactly `devices` on each. */
async function untilClusterWide(
  servers: readonly ServerProcess[],
  devices: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const listed = await Promise.all(servers.map((server) => server.call<number>("clusterSize")));
    if (listed.every((count) => count === devices)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for every manager to list ${devices} ` +
          `devices; they list ${listed.join(", ")}`,
      );
    }
    await sleep(50);
  }
}

/** `sendAll` on `sender`: the warm-up, the timed fan-out bursts, then single broadcasts. */
async function measureBroadcast(
  fleet: DeviceFleet,
  sender: ServerProcess,
  pids: readonly number[],
  devices: number,
  settings: Settings,
  counts: CountCheck,
  label: string,
): Promise<BroadcastFigures> {
  const sendAll = async (count: number, concurrent = false): Promise<number> => {
    const timing = await sender.call<SendTiming>(
      "sendAll",
      { count, concurrent },
      DELIVERY_TIMEOUT_MS,
    );
    return counts.check(timing, devices, `${label}sendAll`).startedAt;
  };
  const warmUpArrival = fleet.expect(WARM_UP_MESSAGES);
  await sendAll(WARM_UP_MESSAGES);
  await fleet.arrival(warmUpArrival, DELIVERY_TIMEOUT_MS, `${label}warm-up`);
  const m = settings.fanOutMessages;
  const fanOut = await timeBursts(fleet, pids, {
    deliveries: m * devices,
    expect: () => fleet.expect(m),
    send: () => sendAll(m),
    what: `${label}${m} broadcasts to ${devices} devices`,
  }, settings);
  const fanOutConcurrent = await timeBursts(fleet, pids, {
    deliveries: m * devices,
    expect: () => fleet.expect(m),
    send: () => sendAll(m, true),
    what: `${label}${m} concurrent broadcasts to ${devices} devices`,
  }, settings);
  const latency = await timeRounds(fleet, settings.latencyRounds, () => sendAll(1));
  return { fanOut, fanOutConcurrent, latency };
}

/**
 * One `send(uuid)` at a time from `sender`, alternately to a device it holds
 * and to one another manager holds (so both see the same machine load), each
 * timed from the call to the device's receipt.
 */
async function sendLatencies(
  fleet: DeviceFleet,
  sender: ServerProcess,
  local: readonly DeviceSocket[],
  remote: readonly DeviceSocket[],
  samples: number,
  counts: CountCheck,
): Promise<{ localLatency: Latency; crossLatency: Latency }> {
  const one = async (target: DeviceSocket, what: string): Promise<number> => {
    const expected = fleet.expect(1, (socket) => socket === target);
    const timing = await sender.call<SendTiming>("send", { uuid: target.uuid });
    counts.check(timing, 1, what);
    return await fleet.arrival(expected, 10_000, what) - timing.startedAt;
  };
  const localSamples: number[] = [];
  const crossSamples: number[] = [];
  for (let i = 0; i < samples; i++) {
    // A stride that visits every device before repeating one.
    localSamples.push(await one(local[(i * 7919) % local.length], "local send"));
    crossSamples.push(await one(remote[(i * 7919) % remote.length], "cross-node send"));
  }
  return { localLatency: latencyOf(localSamples), crossLatency: latencyOf(crossSamples) };
}

/** `send` to each of `targets` in turn, `rounds` times, timed at the devices. */
function sendEach(
  fleet: DeviceFleet,
  sender: ServerProcess,
  targets: readonly DeviceSocket[],
  rounds: number,
  settings: Settings,
  counts: CountCheck,
): Promise<FanOut> {
  const chosen = new Set(targets);
  const uuids = targets.map((socket) => socket.uuid);
  return timeBursts(fleet, [sender.pid], {
    deliveries: rounds * targets.length,
    expect: () => fleet.expect(rounds, (socket) => chosen.has(socket)),
    send: async () => {
      const timing = await sender.call<SendTiming>(
        "sendEach",
        { rounds, uuids },
        DELIVERY_TIMEOUT_MS,
      );
      return counts.check(timing, 1, "sequential send").startedAt;
    },
    what: `${rounds} rounds of send to ${targets.length} devices`,
  }, settings);
}

/** Fails if any manager dropped a device during the load. */
async function noDisconnects(servers: readonly ServerProcess[], fleet: DeviceFleet): Promise<void> {
  for (const server of servers) {
    const dropped = await server.call<Record<string, number>>("disconnects");
    if (Object.keys(dropped).length > 0) {
      throw new Error(
        `${server.name} disconnected devices during the load: ${JSON.stringify(dropped)}`,
      );
    }
  }
  if (fleet.serverClosed > 0) {
    throw new Error(`${fleet.serverClosed} devices were disconnected during the load`);
  }
}
