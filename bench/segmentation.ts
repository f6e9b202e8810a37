/**
 * `deno task bench --segmentation`: what reading a handshake costs the manager
 * depending on how the device cuts its bytes. Devices send the same 64 KiB
 * mode-1 answer in one write, then in 8-byte segments (each its own awaited
 * write, with `TCP_NODELAY`); the manager's CPU per handshake is read from
 * `/proc`, against a bare Deno server that only reads the same streams (the
 * runtime's cost per read), and optionally against the manager of an older
 * commit, checked out in a temporary git worktree.
 *
 * @module
 */

import { ServerProcess } from "./control.ts";
import type {
  HandshakeCounts,
  HandshakeServerConfig,
  HandshakeServerInfo,
} from "./handshake_server.ts";
import { percentile } from "./figures.ts";
import { type Log, sleep } from "./phases.ts";
import { checkout, type Revisions, ROOT } from "./revisions.ts";
import { type Cutting, deviceAnswer, handshake } from "./segmented_device.ts";
import {
  clockTicksPerSecond,
  processCpuSeconds,
  processThreadsCpu,
  type ThreadsCpu,
  threadsCpuSince,
} from "./wire.ts";

/** How big the `--segmentation` run is. */
export interface SegmentationSettings {
  /** Bytes of each device's answer, `UUID##TYPE##JSON`. */
  readonly answerSize: number;
  /** Bytes of each write in the segmented cases. */
  readonly segmentSize: number;
  /** Most devices in the one-write and segmented cases (each a new connection with a new UUID). */
  readonly devices: number;
  /** Most devices in the paced case (each takes `answerSize / segmentSize` gaps). */
  readonly pacedDevices: number;
  /**
   * Paced case: microseconds from one segment's write completing to the next
   * write (spun, not slept), longer than a server's read takes, so each
   * segment tends to be a read of its own.
   */
  readonly pacedGapMicroseconds: number;
  /** Fewest devices per case, even past the budget. */
  readonly minDevices: number;
  /** A case stops starting devices after this many milliseconds (then `minDevices` rules). */
  readonly caseBudgetMs: number;
  /** Throwaway handshakes of each kind before the cases, so the JIT has settled. */
  readonly warmUpDevices: number;
  /** The manager's `maxHandshakeSize` (over `answerSize`, at every commit measured). */
  readonly maxHandshakeSize: number;
  /** Longest a single device may take, from connect to the server's close. */
  readonly deviceTimeoutMs: number;
}

/** One case on one server: N handshakes cut one way. */
export interface CaseFigures {
  readonly devices: number;
  /** Server CPU over the case, summed over its threads (`schedstat`, ns precision), in ms. */
  readonly cpuMs: number;
  /** With `sampleEach`: median, least and most server CPU of one handshake, in ms. */
  readonly spread?: { readonly medianMs: number; readonly minMs: number; readonly maxMs: number };
  /** The same from `/proc/<pid>/stat` utime + stime (clock ticks), in ms: the cross-check. */
  readonly tickCpuMs: number;
  /** Threads of the server that exited during the case (left out of `cpuMs`). */
  readonly threadsExited: number;
  readonly wallMs: number;
  /** Socket reads that returned bytes, per handshake: how the kernel coalesced the segments. */
  readonly readsPerHandshake: number;
}

/** How a device cuts its answer. */
interface Cut extends Cutting {
  /** Most devices. */
  readonly devices: number;
  /**
   * Sample the server's CPU around each handshake too, for the median. Only
   * where a handshake is long: the samples (processes this side starts) make
   * a short one cost the server more, its caches gone cold.
   */
  readonly sampleEach: boolean;
}

/** The three cases on one server process. */
export interface ServerFigures {
  readonly label: string;
  /** The answer in one write. */
  readonly oneWrite: CaseFigures;
  /** In `segmentSize`-byte writes, each awaited, as fast as the device can. */
  readonly segmented: CaseFigures;
  /** In `segmentSize`-byte writes, `pacedGapMicroseconds` apart. */
  readonly paced: CaseFigures;
}

/** Everything `--segmentation` measures. */
export interface SegmentationFigures {
  readonly clockTicksPerSecond: number;
  /** The commit the manager was loaded from; `uncommitted` if the working tree's `mod.ts` or `lib/` differ. */
  readonly tree: { readonly commit: string; readonly uncommitted: boolean };
  readonly bare: ServerFigures;
  readonly manager: ServerFigures;
  /** The manager at `baseline.revision`, when asked for. */
  readonly baseline?: ServerFigures & { readonly revision: string; readonly commit: string };
  /** Handshakes a server did not complete as expected; empty when all is well. */
  readonly errors: readonly string[];
}

const CHILD_PERMISSIONS = ["--allow-net=127.0.0.1", "--allow-read"];

/** Server CPU now: per-thread nanoseconds and the tick counter. */
async function sampleCpu(pid: number) {
  const [threads, seconds] = await Promise.all([processThreadsCpu(pid), processCpuSeconds(pid)]);
  return { threads, seconds };
}

/** A running handshake server and what the report calls it. */
interface Server {
  readonly label: string;
  readonly process: ServerProcess;
  readonly info: HandshakeServerInfo;
}

/**
 * One case on every server: rounds of one device per server in turn, so a
 * change in the machine's speed during the case touches every server alike;
 * `cut.devices` rounds, or fewer once the budget is spent. Each server is
 * idle while another one's device runs, so its CPU over the case is its own
 * devices'.
 */
async function measureCase(
  servers: readonly Server[],
  cut: Cut,
  what: string,
  settings: SegmentationSettings,
  errors: string[],
): Promise<CaseFigures[]> {
  for (const server of servers) await server.process.call("counts");
  const before = await Promise.all(servers.map((server) => sampleCpu(server.info.pid)));
  // Each server's threads before each of its handshakes, and once at the end.
  const marks: ThreadsCpu[][] = before.map((sample) => [sample.threads]);
  const wallMs = servers.map(() => 0);
  const startedAt = performance.now();
  let devices = 0;
  while (
    devices < cut.devices &&
    (devices < settings.minDevices || performance.now() - startedAt < settings.caseBudgetMs)
  ) {
    for (const [i, server] of servers.entries()) {
      if (devices > 0 && cut.sampleEach) marks[i].push(await processThreadsCpu(server.info.pid));
      const deviceStartedAt = performance.now();
      await handshake(
        server.info.port,
        deviceAnswer(settings.answerSize),
        cut,
        settings.deviceTimeoutMs,
      );
      wallMs[i] += performance.now() - deviceStartedAt;
    }
    devices++;
  }
  // The last close is seen by the device first; let the server finish its side of it.
  await sleep(100);
  const after = await Promise.all(servers.map((server) => sampleCpu(server.info.pid)));
  return await Promise.all(servers.map(async (server, i): Promise<CaseFigures> => {
    const counts = await server.process.call<HandshakeCounts>("counts");
    const where = `${server.label}, ${what}`;
    if (counts.completed !== devices) {
      errors.push(`${where}: ${counts.completed} of ${devices} handshakes completed`);
    }
    const unexpected = Object.keys(counts.ends).filter((reason) => reason !== "closed");
    if (unexpected.length > 0 || (counts.ends.closed ?? 0) !== devices) {
      errors.push(`${where}: connections ended with ${JSON.stringify(counts.ends)}`);
    }
    const { nanoseconds, exited } = threadsCpuSince(before[i].threads, after[i].threads);
    // One window per handshake: from just before it to just before the same server's next one.
    const windows = [...marks[i], after[i].threads].slice(1).map((mark, k) =>
      threadsCpuSince(marks[i][k], mark).nanoseconds / 1e6
    );
    return {
      devices,
      cpuMs: nanoseconds / 1e6,
      ...(cut.sampleEach
        ? {
          spread: {
            medianMs: percentile(windows, 0.5),
            minMs: Math.min(...windows),
            maxMs: Math.max(...windows),
          },
        }
        : {}),
      tickCpuMs: (after[i].seconds - before[i].seconds) * 1000,
      threadsExited: exited,
      wallMs: wallMs[i],
      readsPerHandshake: counts.reads / devices,
    };
  }));
}

/** Starts a handshake server process and waits for its port. */
async function startServer(
  label: string,
  config: HandshakeServerConfig,
  denoConfig: string,
): Promise<Server> {
  const script = new URL("./handshake_server.ts", import.meta.url).pathname;
  const process = new ServerProcess(label, [
    "run",
    `--config=${denoConfig}`,
    ...CHILD_PERMISSIONS,
    script,
    JSON.stringify(config),
  ]);
  try {
    return { label, process, info: await process.call<HandshakeServerInfo>("info") };
  } catch (error) {
    await process.close();
    throw error;
  }
}

/** Warms every server up, then runs the three cases on all of them. */
async function measureServers(
  servers: readonly Server[],
  settings: SegmentationSettings,
  errors: string[],
  log: Log,
): Promise<ServerFigures[]> {
  const size = settings.segmentSize;
  const cuts = {
    oneWrite: {
      segmentSize: null,
      gapMicroseconds: 0,
      devices: settings.devices,
      sampleEach: false,
    },
    segmented: {
      segmentSize: size,
      gapMicroseconds: 0,
      devices: settings.devices,
      sampleEach: false,
    },
    paced: {
      segmentSize: size,
      gapMicroseconds: settings.pacedGapMicroseconds,
      devices: settings.pacedDevices,
      sampleEach: true,
    },
  } as const;
  const names = {
    oneWrite: "one write",
    segmented: `${size}-byte segments`,
    paced: `${size}-byte segments ${settings.pacedGapMicroseconds} µs apart`,
  };
  for (const server of servers) {
    for (const cut of [cuts.oneWrite, cuts.segmented]) {
      for (let i = 0; i < settings.warmUpDevices; i++) {
        await handshake(
          server.info.port,
          deviceAnswer(settings.answerSize),
          cut,
          settings.deviceTimeoutMs,
        );
      }
    }
  }
  const figures: Partial<Record<keyof typeof cuts, CaseFigures[]>> = {};
  for (const key of ["oneWrite", "segmented", "paced"] as const) {
    const results = await measureCase(servers, cuts[key], names[key], settings, errors);
    figures[key] = results;
    for (const [i, server] of servers.entries()) {
      log(`${server.label}, ${names[key]}: ${describe(results[i])}`);
    }
  }
  return servers.map((server, i) => ({
    label: server.label,
    oneWrite: figures.oneWrite![i],
    segmented: figures.segmented![i],
    paced: figures.paced![i],
  }));
}

function describe(figures: CaseFigures): string {
  const { spread } = figures;
  return `${figures.devices} handshakes, ${
    (figures.cpuMs / figures.devices).toFixed(3)
  } ms server CPU` +
    (spread
      ? ` (median ${spread.medianMs.toFixed(3)}, ${spread.minMs.toFixed(3)} to ${
        spread.maxMs.toFixed(3)
      })`
      : "") +
    ` and ${figures.readsPerHandshake.toFixed(0)} reads each`;
}

/**
 * Every `--segmentation` figure: the bare reader, the manager (the working
 * tree's, or `revisions.revision`'s), and with `revisions.baseline` the
 * manager at that revision, one server process each, all measured in the same
 * rounds. Revisions are checked out in temporary git worktrees, removed at the end.
 */
export async function measureSegmentation(
  settings: SegmentationSettings,
  revisions: Revisions,
  log: Log,
): Promise<SegmentationFigures> {
  // This tree's deno.json for every server: its import map resolves an older mod.ts's imports too.
  const denoConfig = `${ROOT}/deno.json`;
  const errors: string[] = [];
  await using stack = new AsyncDisposableStack();
  const current = await checkout(stack, revisions.revision, log);
  const before = revisions.baseline === null
    ? null
    : await checkout(stack, revisions.baseline, log);
  const manager = (path: string): HandshakeServerConfig => ({
    target: "manager",
    module: `${path}/mod.ts`,
    maxHandshakeSize: settings.maxHandshakeSize,
  });
  const servers: Server[] = [];
  const launch = async (label: string, config: HandshakeServerConfig) => {
    const server = await startServer(label, config, denoConfig);
    stack.use(server.process);
    servers.push(server);
  };
  await launch("bare Deno reader", { target: "bare" });
  await launch(`manager at ${current.commit.slice(0, 7)}`, manager(current.path));
  if (before) await launch(`manager at ${revisions.baseline}`, manager(before.path));
  const [bare, measured, baseline] = await measureServers(servers, settings, errors, log);
  return {
    clockTicksPerSecond: await clockTicksPerSecond(),
    tree: { commit: current.commit, uncommitted: current.uncommitted },
    bare,
    manager: measured,
    ...(before && baseline
      ? { baseline: { ...baseline, revision: revisions.baseline!, commit: before.commit } }
      : {}),
    errors,
  };
}
