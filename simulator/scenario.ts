/**
 * One simulation run: start (or reach) a manager, connect the fleet at a
 * bounded rate (`dialer.ts`), play the scripted traffic (`scripted.ts`), run
 * the steady phase, shut down cleanly, and hand what was measured to the judge
 * (`judge.ts`), which makes the report and its verdict. Manager and devices
 * share one process and one clock, so a broadcast's delivery latency is
 * measured from the manager's send to each device's receipt directly. Long
 * runs add steady traffic (`steady.ts`), churn (`churn.ts`) and a memory
 * timeline (`memory.ts`); the desired-state scenario (`desired.ts`) changes
 * the fleet's desired state while churn takes devices away; a restart (`restart_phase.ts`) closes the manager
 * mid-run and measures how the fleet comes back to a new one (with the desired
 * scenario, on the same SQLite file: the state crosses the restart). The books are
 * kept by `ledger.ts`; unhandled rejections and uncaught errors are counted
 * (`process_failures.ts`).
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { type DeviceStore, Manager, MemoryStore, SqliteStore } from "@iot-manager/core";
import { Churn } from "./churn.ts";
import { DesiredScenario } from "./desired.ts";
import { Dialer, FirstConnectFailed } from "./dialer.ts";
import {
  countConnected,
  heartbeatTotals,
  Recorder,
  type SimDevice,
  startTelemetry,
  type Target,
} from "./fleet.ts";
import { judge, type RunFigures } from "./judge.ts";
import { Ledger } from "./ledger.ts";
import { MemorySampler } from "./memory.ts";
import {
  defaultOptions,
  desiredClashes,
  restartClashes,
  type SimulationOptions,
} from "./options.ts";
import { watchProcessFailures } from "./process_failures.ts";
import { Replies } from "./replies.ts";
import type { SimulationReport } from "./report.ts";
import { restartFigures, restartManager } from "./restart_phase.ts";
import { castFleet } from "./roles.ts";
import { ScriptedTraffic } from "./scripted.ts";
import { seededRandom } from "./stats.ts";
import { SteadyTraffic } from "./steady.ts";
import { StatusTicker, TICK_MS } from "./ticker.ts";
import { TimelineRecorder } from "./timeline.ts";
import { sleep, until } from "./wait.ts";

const log = getLogger(["iot-manager", "simulator"]);

/** Heartbeat rounds the steady phase runs when no `duration` is given. */
const STEADY_ROUNDS = 3;

/**
 * Runs a simulation and reports on it. Options not given take their
 * {@linkcode defaultOptions} values.
 *
 * @throws {TypeError} When `restart` or `desired` is combined with options it
 *   cannot run with (see {@linkcode restartClashes} and {@linkcode desiredClashes}).
 * @throws {FirstConnectFailed} Against an external manager (`connect`), when
 *   the first device cannot join it (unreachable within `connectWait`
 *   seconds, refused, or not a manager).
 * @throws {Error} When `restart` and `desired` are both on and no temporary
 *   directory can be made for the manager's SQLite file (no write permission).
 *
 * @example
 * ```ts
 * import { runSimulation } from "./scenario.ts";
 * const report = await runSimulation({ lights: 4, locks: 2, heartbeat: 0.1 });
 * console.log(report.ok, report.broadcasts.latency.p99);
 * ```
 */
export async function runSimulation(
  options: Partial<SimulationOptions> = {},
): Promise<SimulationReport> {
  const resolved: SimulationOptions = {
    ...defaultOptions,
    ...options,
    chaos: { ...defaultOptions.chaos, ...options.chaos },
  };
  const clashes = resolved.restart === undefined ? [] : restartClashes(resolved);
  if (clashes.length > 0) {
    throw new TypeError(`restart cannot be combined with ${clashes.join(", ")}`);
  }
  const desiredClash = resolved.desired ? desiredClashes(resolved) : [];
  if (desiredClash.length > 0) {
    throw new TypeError(`desired cannot be combined with ${desiredClash.join(", ")}`);
  }
  // The desired state crosses a restart in a file both managers open: a real restart of state.
  const stateDirectory = resolved.restart !== undefined && resolved.desired
    ? await makeStateDirectory()
    : null;
  try {
    return await new Run(resolved, stateDirectory && `${stateDirectory}/state.db`).execute();
  } finally {
    if (stateDirectory) await removeStateDirectory(stateDirectory);
  }
}

/** A temporary directory for the manager's SQLite file (and its journal). */
async function makeStateDirectory(): Promise<string> {
  try {
    return await Deno.makeTempDir({ prefix: "iot-manager-simulate-" });
  } catch (error) {
    throw new Error(
      "restart with desired keeps the manager's state in an SQLite file in a temporary " +
        `directory, which could not be made (run with --allow-write): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

async function removeStateDirectory(directory: string): Promise<void> {
  try {
    await Deno.remove(directory, { recursive: true });
  } catch (error) {
    log.warn("Could not remove the manager's state directory {directory}: {error}", {
      directory,
      error,
    });
  }
}

/** What most parts of the run share. */
interface Shared {
  readonly sims: readonly SimDevice[];
  readonly recorder: Recorder;
  readonly ledger: Ledger;
  readonly replies: Replies;
  readonly random: () => number;
  readonly signal?: AbortSignal;
}

class Run {
  readonly #options: SimulationOptions;
  readonly #started = performance.now();
  readonly #recorder = new Recorder();
  readonly #sims: readonly SimDevice[];
  readonly #malformed: number;
  readonly #ledger: Ledger;
  readonly #shared: Shared;
  readonly #ticker: StatusTicker;
  readonly #churn: Churn;
  readonly #memory: MemorySampler | null;
  /** The run over time, kept for plots (`plots`); null when not asked for. */
  readonly #timeline: TimelineRecorder | null;
  #manager: Manager | null = null;
  /** The embedded manager's store, where the desired scenario counts what is still kept. */
  #store: DeviceStore | null = null;
  /**
   * The SQLite file every embedded manager of the run keeps its state in (a
   * restart with the desired scenario); null: each has a `MemoryStore` of its own.
   */
  readonly #stateFile: string | null;
  /** Heartbeat rounds of managers closed by a restart. */
  #retiredRounds = 0;
  #target!: Target;
  #dialer!: Dialer;
  #phaseName = "starting";
  #scripted: ScriptedTraffic | null = null;
  #steady: SteadyTraffic | null = null;
  #desired: DesiredScenario | null = null;
  #steadyStart = 0;
  #steadyEnd = 0;
  #answersAtQuiet: { sent: number; received: number } | null = null;
  #aliveAtShutdown: SimDevice[] = [];
  #stopTelemetry = () => {};

  constructor(options: SimulationOptions, stateFile: string | null) {
    this.#options = options;
    this.#stateFile = stateFile;
    const random = seededRandom(options.seed);
    const { sims, malformed } = castFleet(options, random);
    this.#sims = sims;
    this.#malformed = malformed;
    const replies = new Replies();
    this.#ledger = new Ledger(sims, this.#recorder, replies);
    const recorder = this.#recorder;
    this.#shared = {
      sims,
      recorder,
      ledger: this.#ledger,
      replies,
      random,
      signal: options.signal,
    };
    this.#memory = options.memoryEvery > 0
      ? new MemorySampler(options.memoryEvery, this.#started, () => ({
        phase: this.#phase,
        connected: this.#manager?.size ?? countConnected(sims),
      }))
      : null;
    this.#timeline = options.plots ? new TimelineRecorder(TICK_MS / 1000) : null;
    this.#timeline?.phase(this.#phaseName, 0);
    this.#ticker = new StatusTicker({
      ...this.#shared,
      started: this.#started,
      phase: () => this.#phase,
      embedded: () => this.#embedded,
      registered: () => this.#manager?.size ?? null,
      heartbeatRounds: () => this.#heartbeatRounds,
      onStatus: options.onStatus,
      timeline: this.#timeline ?? undefined,
    });
    this.#churn = new Churn({
      ...this.#shared,
      start: (sim) => this.#dialer.start(sim),
      manager: () => this.#manager,
      onChurn: (sim) => this.#steady?.excuse(sim),
    }, options.chaos.churn);
  }

  get #embedded(): boolean {
    return this.#manager !== null;
  }

  /** What the run is doing now, as the status line shows it. */
  get #phase(): string {
    return this.#phaseName;
  }

  set #phase(name: string) {
    this.#phaseName = name;
    this.#timeline?.phase(name, this.#elapsed());
  }

  /** Heartbeat rounds run so far, by the manager and those a restart closed. */
  get #heartbeatRounds(): number {
    return this.#retiredRounds + (this.#manager?.heartbeatRounds ?? 0);
  }

  get #aborted(): boolean {
    return this.#options.signal?.aborted ?? false;
  }

  async execute(): Promise<SimulationReport> {
    using failures = watchProcessFailures(this.#recorder);
    try {
      this.#memory?.start();
      this.#ticker.start();
      await this.#reachManager();
      this.#phase = "connecting";
      await this.#dialer.connectFleet(this.#sims, this.#malformed);
      if (this.#embedded) {
        await this.#until(() => this.#ledger.everConnected.size >= this.#sims.length, 10_000);
      }
      this.#churn.start();
      this.#stopTelemetry = startTelemetry(this.#sims, this.#recorder, this.#options.telemetry);
      const manager = this.#manager;
      if (manager && !this.#aborted) await this.#scriptedPhases(manager);
      this.#phase = "steady";
      await this.#steadyPhase();
    } catch (error) {
      if (error instanceof FirstConnectFailed) {
        await this.#shutdown();
        throw error;
      }
      this.#recorder.error(`the run failed: ${(error as Error).stack ?? String(error)}`);
    }
    await this.#shutdown();
    return judge(this.#figures(failures.counts()));
  }

  async #reachManager(): Promise<void> {
    const { connect, tls, managerTls } = this.#options;
    if (connect) {
      this.#target = { hostname: connect.hostname, port: connect.port, tls };
    } else {
      const manager = await this.#listen(0);
      this.#target = {
        hostname: manager.hostname,
        port: manager.port,
        tls: managerTls ? tls ?? {} : undefined,
      };
    }
    this.#dialer = new Dialer({
      ...this.#shared,
      target: this.#target,
      embedded: this.#embedded,
      options: this.#options,
    });
  }

  /**
   * Starts the embedded manager on `port` (0: any) and makes it the run's
   * manager; the desired scenario, if under way, follows it.
   */
  async #listen(port: number): Promise<Manager> {
    // A manager closes its store: a restart's new manager opens the file again.
    const store = this.#stateFile ? new SqliteStore(this.#stateFile) : new MemoryStore();
    const manager = await Manager.listen({
      validTypes: ["light", "lock"],
      hostname: "127.0.0.1",
      port,
      tls: this.#options.managerTls,
      heartbeatRate: this.#options.heartbeat,
      heartbeatTimeout: this.#options.heartbeatTimeout,
      handshakeTimeout: 10,
      store,
    });
    this.#retiredRounds += this.#manager?.heartbeatRounds ?? 0;
    this.#manager = manager;
    this.#store = store;
    this.#ledger.watch(manager);
    // In the same turn as the listen: before any device can be registered.
    this.#desired?.follow(manager, store);
    return manager;
  }

  /** The embedded scenario's broadcasts, unicasts and requests. */
  async #scriptedPhases(manager: Manager): Promise<void> {
    const requests = this.#options.requests;
    const scripted = new ScriptedTraffic({ ...this.#shared, manager, requests });
    this.#scripted = scripted;
    this.#phase = "broadcasts";
    await scripted.broadcast();
    this.#phase = "unicasts";
    await scripted.unicast();
    await this.#ledger.quiet(false, this.#options.signal);
    this.#phase = "requests";
    await scripted.request();
  }

  async #steadyPhase(): Promise<void> {
    this.#steadyStart = this.#elapsed();
    const { steadyBroadcast, steadyRequests } = this.#options;
    const manager = this.#manager;
    if (manager && (steadyBroadcast > 0 || steadyRequests > 0)) {
      const ledger = this.#ledger;
      const steady = new SteadyTraffic({
        ...this.#shared,
        manager,
        aborted: () => this.#aborted,
        onQueued: (reached) => void (ledger.toDevicesSent += reached),
        onRequestReply: (client, text) => ledger.countAnswers(client.uuid, text),
      }, { broadcastEvery: steadyBroadcast, requestsPerSecond: steadyRequests });
      this.#steady = steady;
      steady.start();
    }
    if (manager && this.#store && this.#options.desired) {
      this.#desired = new DesiredScenario({
        ...this.#shared,
        manager,
        store: this.#store,
        start: (sim) => this.#dialer.start(sim),
      }, this.#options.desiredEvery);
      this.#desired.start();
    }
    this.#recorder.claimTag = (sim, tag, receivedAt) =>
      (this.#desired?.onTag(sim, tag) ?? false) ||
      (this.#steady?.onTag(sim, tag, receivedAt) ?? false);
    try {
      if (this.#options.restart !== undefined) {
        const desired = this.#desired;
        await restartManager({
          options: this.#options,
          sims: this.#sims,
          manager: () => this.#manager,
          listen: (port) => this.#listen(port),
          onClose: (record) => void (this.#ledger.restart = record),
          setPhase: (phase) => void (this.#phase = phase),
          beforeClose: desired ? () => desired.beforeRestart() : undefined,
          afterReturn: desired ? () => desired.afterRestart() : undefined,
        });
      }
      await this.#steadyWait();
    } finally {
      // The last sample of the steady phase is its end, for the memory verdict.
      this.#memory?.sample();
      this.#steadyEnd = this.#elapsed();
      await this.#desired?.stop();
      if (this.#steady) {
        this.#phase = "settling";
        await this.#steady.stop();
      }
    }
  }

  /** The steady phase's running time: `--duration`, or until its heartbeat rounds have run. */
  async #steadyWait(): Promise<void> {
    const { duration, heartbeat, heartbeatTimeout, signal } = this.#options;
    const manager = this.#manager;
    if (!manager) {
      await sleep((duration ?? 30) * 1000, signal);
      return;
    }
    if (duration !== undefined) {
      await sleep(duration * 1000, signal);
      return;
    }
    const roundsAtStart = manager.heartbeatRounds;
    const silent = this.#sims.filter((sim) => sim.role === "silent").length;
    await this.#until(
      () =>
        manager.heartbeatRounds >= roundsAtStart + STEADY_ROUNDS &&
        this.#ledger.silentDropped >= silent,
      ((STEADY_ROUNDS + 1) * heartbeat + heartbeatTimeout + 5) * 1000,
    );
  }

  async #shutdown(): Promise<void> {
    this.#phase = "shutdown";
    this.#stopTelemetry();
    await this.#churn.stop();
    if (this.#desired) {
      this.#phase = "converging";
      await this.#desired.settle();
    }
    if (this.#embedded) {
      await this.#ledger.quiet(true, this.#options.signal);
      this.#answersAtQuiet = this.#ledger.stableAnswers();
    }
    this.#recorder.shuttingDown = true;
    this.#aliveAtShutdown = this.#sims.filter((sim) => sim.device?.connected);
    if (this.#manager) {
      await this.#manager.close();
      // The goodbyes are on the wire; let every device read its own before closing the rest.
      await this.#until(() => this.#aliveAtShutdown.every((sim) => sim.lastEnd !== null), 5_000);
    }
    await Promise.all(this.#sims.map((sim) => sim.stop("the simulation is over")));
    this.#ticker.tick(true);
    this.#ticker.stop();
    this.#phase = "done";
    if (this.#memory) {
      this.#memory.stop();
      this.#memory.sample();
    }
    log.info("Simulation finished in {seconds} s", { seconds: this.#elapsed() });
  }

  #elapsed(): number {
    return (performance.now() - this.#started) / 1000;
  }

  /** Polls `condition` until it holds, `timeoutMs` passes or the run is aborted. */
  #until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    return until(condition, timeoutMs, { signal: this.#options.signal });
  }

  /** What the run collected, for the judge. Taken once the run is over. */
  #figures(process: RunFigures["process"]): RunFigures {
    const recorder = this.#recorder;
    const ledger = this.#ledger;
    const totals = heartbeatTotals(this.#sims, recorder);
    const memory = this.#memory;
    const scripted = this.#scripted;
    const desired = this.#desired?.figures() ?? null;
    // Lines the manager queued for ttl messages: sent at once, or delivered once kept.
    const ttlLines = desired ? desired.ttl.direct + desired.ttl.manager.delivered : 0;
    return {
      target: this.#embedded ? "embedded" : "external",
      address: `${this.#target?.hostname}:${this.#target?.port}`,
      tls: this.#options.tls !== undefined || this.#options.managerTls !== undefined,
      seconds: this.#elapsed(),
      aborted: this.#aborted,
      asked: this.#options,
      devices: this.#sims,
      connected: ledger.everConnected.size,
      peakConnected: ledger.peakConnected,
      aliveAtShutdown: this.#aliveAtShutdown,
      malformed: { sent: this.#malformed, rejected: ledger.malformedRejected },
      handshakeMs: recorder.handshakeMs,
      broadcasts: scripted?.broadcasts ?? [],
      unicasts: scripted?.unicasts ?? [],
      requests: scripted?.requests ?? { sent: 0, answered: 0, latencies: [] },
      answers: this.#answersAtQuiet ?? { sent: ledger.stableAnswers().sent, received: 0 },
      messages: {
        toDevices: { sent: ledger.toDevicesSent + ttlLines, delivered: recorder.commandsReceived },
        toManager: { sent: recorder.linesSent, received: ledger.managerReceived },
      },
      heartbeats: {
        rounds: this.#heartbeatRounds,
        answered: totals.answered,
        ignored: totals.ignored,
        missed: ledger.heartbeatMissed,
      },
      disconnects: {
        manager: ledger.managerEnds,
        devices: recorder.deviceEnds,
        unexpected: recorder.unexpectedCount,
        unexpectedSamples: recorder.unexpected,
      },
      dropped: { silent: ledger.silentDropped, slow: ledger.slowDropped },
      churn: { cycles: this.#churn.cycles, reconnected: this.#churn.reconnected },
      steady: this.#steady?.report() ?? null,
      memory: memory && {
        every: memory.every,
        steadyStart: this.#steadyStart,
        steadyEnd: this.#steadyEnd,
        warmUp: this.#options.warmUp,
        forcedGc: memory.forcedGc,
        samples: memory.samples,
      },
      restart: ledger.restart && restartFigures(ledger.restart, this.#started, this.#options),
      desired,
      plots: this.#timeline && {
        timeline: this.#timeline.timeline(),
        steady: this.#steady?.distributions() ?? null,
      },
      peakRss: this.#ticker.peakRss,
      process,
      errors: { count: recorder.errorCount, samples: recorder.errors },
    };
  }
}
