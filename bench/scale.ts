/**
 * `deno task bench --scale` (not in CI; about 10 minutes): 100,000 devices on
 * this machine. The fleet is spread over as many manager processes as the
 * per-process open-file limit requires, all on one port (`reusePort`) and
 * joined through a local `redis-server`, and over as many load-generator
 * processes (`scale_devices.ts`), each connecting from a loopback address of
 * its own (one source address has about 28,000 ports to one destination).
 *
 * Measured: the handshake rate while the fleet connects; heartbeats at 60 s
 * for 5 minutes (false disconnects, the managers' CPU); `sendAll` from one
 * manager reaching every device, and its latency to the last one (p50 and
 * p99 over the rounds); the memory of every process. Writes
 * bench/RESULTS-scale.md.
 *
 * @module
 */

import { findRedis, startRedis } from "./cluster.ts";
import { ServerProcess } from "./control.ts";
import { environment } from "./machine.ts";
import { startServer } from "./phases.ts";
import type { SendTiming, ServerInfo } from "./server.ts";
import type { ScaleDevicesConfig } from "./scale_devices.ts";
import { processCpuSeconds, readProcFile, wallClock } from "./wire.ts";

/** What a scale run does; `deno task bench --scale` uses {@linkcode SCALE_DEFAULTS}. */
export interface ScaleSettings {
  readonly devices: number;
  /** Most devices per process (manager or load generator): under the open-file limit. */
  readonly perProcess: number;
  /** Seconds between heartbeats. */
  readonly heartbeatRate: number;
  /** Seconds of heartbeats to watch for false disconnects. */
  readonly soakSeconds: number;
  /** `sendAll` calls, one at a time, each timed to the last device. */
  readonly sendAllRounds: number;
  /** Handshakes in flight per load generator. */
  readonly concurrency: number;
}

/** 100,000 devices, 60 s heartbeats for 5 minutes, 20 timed `sendAll` calls. */
export const SCALE_DEFAULTS: ScaleSettings = {
  devices: 100_000,
  perProcess: 17_000,
  heartbeatRate: 60,
  soakSeconds: 300,
  sendAllRounds: 20,
  concurrency: 100,
};

interface DeviceStatus {
  readonly open: number;
  readonly serverClosed: number;
  readonly beats: number;
}

/** A process's resident memory, in bytes. */
async function rssOf(pid: number): Promise<number> {
  const status = await readProcFile(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

const log = (line: string) =>
  console.error(`[scale ${new Date().toISOString().slice(11, 19)}] ${line}`);

/** Runs the scale scenario and returns RESULTS-scale.md's text. */
export async function runScale(settings: ScaleSettings = SCALE_DEFAULTS): Promise<string> {
  const redisBinary = findRedis();
  if (!redisBinary) throw new Error("--scale needs redis-server (apt-get install redis-server)");
  const started = performance.now();
  const env = await environment(null, redisBinary);
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await startRedis(redisBinary));
  const processes = Math.ceil(settings.devices / settings.perProcess);
  // Other managers report their counts for a sendAll within replyTimeout; at this scale the
  // default 2 s is too short for the first, cold call (it then resolves with a partial count).
  const cluster = {
    url: `redis://127.0.0.1:${redis.port}`,
    prefix: `scale-${Date.now()}`,
    nodeTtl: 120,
    replyTimeout: 15,
  };
  const config = {
    target: "manager" as const,
    reusePort: true,
    heartbeatRate: settings.heartbeatRate,
    heartbeatTimeout: 15,
    cluster,
  };

  // Managers: the first picks the port, the others share it.
  const managers: ServerProcess[] = [];
  const first = stack.use(startServer("manager 1", { ...config, port: 0 }));
  managers.push(first);
  const { port } = await first.call<ServerInfo>("info");
  for (let i = 1; i < processes; i++) {
    managers.push(stack.use(startServer(`manager ${i + 1}`, { ...config, port })));
  }
  const managerPids = await Promise.all(
    managers.map(async (m) => (await m.call<ServerInfo>("info")).pid),
  );
  log(`${processes} managers on 127.0.0.1:${port}, Redis on ${redis.port}`);

  // Load generators, one source address each.
  const loaders: ServerProcess[] = [];
  for (let i = 0; i < processes; i++) {
    const loaderConfig: ScaleDevicesConfig = { port, localAddress: `127.0.0.${11 + i}` };
    loaders.push(stack.use(
      new ServerProcess(`load ${i + 1}`, [
        "run",
        "--quiet",
        `--config=${new URL("../deno.json", import.meta.url).pathname}`,
        `--allow-net=127.0.0.1,${loaderConfig.localAddress}`,
        "--allow-env",
        new URL("./scale_devices.ts", import.meta.url).pathname,
        JSON.stringify(loaderConfig),
      ]),
    ));
  }
  const loaderPids = await Promise.all(
    loaders.map(async (l) => (await l.call<{ pid: number }>("info")).pid),
  );

  const idleRss = await Promise.all(managerPids.map(rssOf));

  // Connect the fleet, every load generator at once.
  const share = (i: number) =>
    Math.floor(settings.devices / processes) + (i < settings.devices % processes ? 1 : 0);
  const connectStart = wallClock();
  await Promise.all(
    loaders.map((l, i) =>
      l.call("connect", { count: share(i), concurrency: settings.concurrency }, 900_000)
    ),
  );
  const connectSeconds = (wallClock() - connectStart) / 1000;
  const sizes = await Promise.all(managers.map((m) => m.call<number>("size")));
  const held = sizes.reduce((a, b) => a + b, 0);
  log(`${held} devices connected in ${connectSeconds.toFixed(1)} s (${sizes.join(" / ")})`);
  if (held !== settings.devices) throw new Error(`the managers hold ${held} devices`);
  await Promise.all(managers.map((m) => m.call("disconnects")));

  // Heartbeats: watch for false disconnects; the managers' CPU meanwhile.
  const statusOf = () => Promise.all(loaders.map((l) => l.call<DeviceStatus>("status")));
  const beatsBefore = (await statusOf()).reduce((sum, s) => sum + s.beats, 0);
  const cpuBefore = await Promise.all(managerPids.map(processCpuSeconds));
  const soakStart = performance.now();
  log(`heartbeats every ${settings.heartbeatRate} s for ${settings.soakSeconds} s`);
  await new Promise((resolve) => setTimeout(resolve, settings.soakSeconds * 1000));
  const soakSeconds = (performance.now() - soakStart) / 1000;
  const cpuAfter = await Promise.all(managerPids.map(processCpuSeconds));
  const managerCpu = cpuAfter.reduce((sum, cpu, i) => sum + cpu - cpuBefore[i], 0) / soakSeconds;
  const statuses = await statusOf();
  const beats = statuses.reduce((sum, s) => sum + s.beats, 0) - beatsBefore;
  const dropped = statuses.reduce((sum, s) => sum + s.serverClosed, 0);
  const disconnects: Record<string, number> = {};
  for (
    const tally of await Promise.all(
      managers.map((m) => m.call<Record<string, number>>("disconnects")),
    )
  ) {
    for (const [reason, n] of Object.entries(tally)) {
      disconnects[reason] = (disconnects[reason] ?? 0) + n;
    }
  }
  const falseDisconnects = Object.values(disconnects).reduce((a, b) => a + b, 0);
  log(
    `${beats} heartbeats answered, ${falseDisconnects} disconnects, ${dropped} closed by a manager`,
  );

  // sendAll from manager 1 to all of them, one call at a time.
  const latencies: number[] = [];
  let reachedMin = Infinity;
  let reachedAll = 0;
  for (let round = 0; round < settings.sendAllRounds; round++) {
    await Promise.all(loaders.map((l) => l.call("arm")));
    const timing = await first.call<SendTiming>("sendAll", { count: 1 }, 120_000);
    reachedMin = Math.min(reachedMin, timing.reachedMin ?? 0);
    if (timing.reachedMin === held) reachedAll++;
    const arrived = await Promise.all(loaders.map((l) => l.call<number>("arrived", {}, 120_000)));
    latencies.push(Math.max(...arrived) - timing.startedAt);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  latencies.sort((a, b) => a - b);
  log(`sendAll to the last device: p50 ${quantile(latencies, 0.5).toFixed(0)} ms`);

  const managerRss = await Promise.all(managerPids.map(rssOf));
  const loaderRss = await Promise.all(loaderPids.map(rssOf));
  const redisRss = await rssOf(redis.pid);
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
  const totalSeconds = (performance.now() - started) / 1000;

  return `# iot-manager at 100,000 devices

Produced by \`deno task bench --scale\` on ${env.date} in ${totalSeconds.toFixed(0)} s. Re-run it
to get figures for your machine. The other figures are in [RESULTS.md](RESULTS.md).

|                 |                                                    |
| --------------- | -------------------------------------------------- |
| Deno            | ${env.deno} (V8 ${env.v8})                         |
| OS              | ${env.os}                                          |
| CPU             | ${env.cpu}, ${env.cores} cores                     |
| memory          | ${env.memoryGiB.toFixed(1)} GiB                    |
| open-file limit | ${env.openFiles} per process                       |
| Redis           | ${env.redis}                                       |

## Figures

| measure | value |
| --- | --- |
| devices (mode 2, idle apart from heartbeats and the broadcasts) | ${
    held.toLocaleString("en-US")
  } |
| manager processes on one port (\`reusePort\`), joined through Redis | ${processes}, holding ${
    sizes.map((n) => n.toLocaleString("en-US")).join(" / ")
  } |
| load-generator processes (one loopback source address each) | ${processes} |
| handshakes/s while the fleet connected (all of it, every manager together) | ${
    (held / connectSeconds).toLocaleString("en-US", { maximumFractionDigits: 0 })
  } (${connectSeconds.toFixed(1)} s) |
| heartbeats every ${settings.heartbeatRate} s for ${
    soakSeconds.toFixed(0)
  } s: round trips answered | ${beats.toLocaleString("en-US")} |
| heartbeats: false disconnects (any disconnect, by any manager) | ${falseDisconnects}${
    falseDisconnects ? ` (${JSON.stringify(disconnects)})` : ""
  } |
| heartbeats: the managers' CPU together (share of one core) | ${(managerCpu * 100).toFixed(1)} % |
| \`sendAll\` from one manager: calls that resolved with every device | ${reachedAll} of ${settings.sendAllRounds} (least count ${
    reachedMin.toLocaleString("en-US")
  }) |
| \`sendAll\` from one manager to the last of them, p50 | ${
    quantile(latencies, 0.5).toFixed(0)
  } ms |
| \`sendAll\` from one manager to the last of them, p99 | ${
    quantile(latencies, 0.99).toFixed(0)
  } ms |
| memory: the managers (RSS, together) | ${mib(sum(managerRss))}; ${
    ((sum(managerRss) - sum(idleRss)) / held).toFixed(0)
  } B per device above the ${mib(sum(idleRss))} they held before the fleet |
| memory: the load generators (RSS, together) | ${mib(sum(loaderRss))} |
| memory: redis-server | ${mib(redisRss)} |
| memory: everything | ${mib(sum(managerRss) + sum(loaderRss) + redisRss)} |

## How it was measured

- ${processes} manager processes (\`bench/server.ts\`, \`Manager.listen({ port, reusePort: true,
  cluster: new RedisAdapter(...) })\`, heartbeats every ${settings.heartbeatRate} s, 15 s to answer) listen on
  127.0.0.1:${port}; Linux spreads the connections over them. A \`redis-server\` on 127.0.0.1 joins
  them. Each process holds at most ${settings.perProcess.toLocaleString("en-US")} devices, under the
  open-file limit.
- ${processes} load generators (\`bench/scale_devices.ts\`, the raw sockets of \`bench/load.ts\` over
  \`node:net\`) each connect their share from 127.0.0.11, 127.0.0.12, ..., ${settings.concurrency} handshakes
  in flight each, all of them at once; the rate is the whole fleet over the time from the first
  connect to the last \`WELCOME\`.
- After the fleet is in, heartbeats run for ${settings.soakSeconds} s with nothing else going on; any
  disconnect a manager reports is counted as false, and so is any device a manager closed.
- Then manager 1 calls \`sendAll\` (64 B) ${settings.sendAllRounds} times, one at a time, 0.5 s apart: it
  writes to its own devices and asks the others through Redis to write to theirs, and resolves
  with the count once every other manager has reported (\`RedisAdapter\` \`replyTimeout\`: 15 s
  here, 2 s by default; the first, cold call of the first run took longer). The latency is
  from the call to the moment the last of the ${
    held.toLocaleString("en-US")
  } devices read the message
  (every process on one clock).
- Memory is each process's resident set at the end (\`/proc/PID/status\`), after the broadcasts.
`;
}
