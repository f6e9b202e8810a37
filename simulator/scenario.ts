/**
 * One simulation run: start (or reach) a manager, connect the fleet at a
 * bounded rate, play the scenario, shut down cleanly, and measure everything
 * for the report. Manager and devices share one process and one clock, so a
 * broadcast's delivery latency is measured from the manager's send to each
 * device's receipt directly. Long runs add steady traffic (`steady.ts`) and a
 * memory timeline (`memory.ts`); a restart closes the manager mid-run and
 * measures how the fleet comes back to a new one (`restart.ts`). The whole run
 * counts unhandled rejections and uncaught errors. The run only collects
 * figures; `judge.ts` turns them into the report and its verdict.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Manager } from "@iot-manager/core";
import { Dialer } from "./dialer.ts";
import type { FakeType } from "./fake_devices.ts";
import { Recorder, type SimDevice, type Target } from "./fleet.ts";
import { judge, type RunFigures } from "./judge.ts";
import { Ledger, type RestartRecord } from "./ledger.ts";
import { MemorySampler } from "./memory.ts";
import { defaultOptions, restartClashes, type SimulationOptions } from "./options.ts";
import { watchProcessFailures } from "./process_failures.ts";
import { isValidAnswer, Replies } from "./replies.ts";
import type { SimulationReport } from "./report.ts";
import { castFleet } from "./roles.ts";
import { seededRandom, shuffled } from "./stats.ts";
import { SteadyTraffic } from "./steady.ts";
import { sleep, until } from "./wait.ts";

const log = getLogger(["iot-manager", "simulator"]);

/** Broadcasts the embedded scenario sends, in order. */
const BROADCASTS: readonly { target: "all" | FakeType; command: string }[] = [
  { target: "all", command: "status" },
  { target: "light", command: "on" },
  { target: "light", command: "brightness 40" },
  { target: "lock", command: "lock" },
  { target: "all", command: "status" },
];
const UNICASTS = 20;
const REQUEST_CONCURRENCY = 32;
const STEADY_ROUNDS = 3;
const TICK_MS = 250;
/** The library's reconnect defaults, shown in the report when the run does not set them. */
const LIBRARY_RECONNECT = { initialDelay: 1, maxDelay: 10, jitter: 1 } as const;

/**
 * Runs a simulation and reports on it. Options not given take their
 * {@linkcode defaultOptions} values.
 *
 * @throws {TypeError} When `restart` is combined with options it cannot run with
 *   (see {@linkcode restartClashes}).
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
  return await new Run(resolved).execute();
}

interface BroadcastRecord {
  readonly tag: string;
  readonly target: "all" | FakeType;
  readonly sentAt: number;
}

class Run {
  readonly #options: SimulationOptions;
  readonly #recorder = new Recorder();
  readonly #random: () => number;
  readonly #replies = new Replies();
  readonly #sims: readonly SimDevice[];
  readonly #malformed: number;
  readonly #ledger: Ledger;
  readonly #started = performance.now();
  #manager: Manager | null = null;
  #target!: Target;
  #dialer!: Dialer;
  #phase = "starting";
  #peakRss = 0;
  #answersAtQuiet: { sent: number; received: number } | null = null;
  #steady: SteadyTraffic | null = null;
  readonly #memory: MemorySampler | null;
  #steadyStart = 0;
  #steadyEnd = 0;
  #broadcasts: BroadcastRecord[] = [];
  #unicastTargets: { sim: SimDevice; tag: string }[] = [];
  #requests = { sent: 0, answered: 0, latencies: [] as number[] };
  #churn = { cycles: 0, reconnected: 0, tasks: new Set<Promise<void>>() };
  #roundsAtSteady = 0;
  /** Heartbeat rounds of managers closed by a restart. */
  #retiredRounds = 0;
  #aliveAtShutdown: SimDevice[] = [];
  #timers: ReturnType<typeof setInterval>[] = [];
  #ticker: ReturnType<typeof setInterval> | undefined;

  constructor(options: SimulationOptions) {
    this.#options = options;
    this.#random = seededRandom(options.seed);
    this.#memory = options.memoryEvery > 0
      ? new MemorySampler(options.memoryEvery, this.#started, () => ({
        phase: this.#phase,
        connected: this.#connectedNow(),
      }))
      : null;
    const { sims, malformed } = castFleet(options, this.#random);
    this.#sims = sims;
    this.#malformed = malformed;
    this.#ledger = new Ledger(sims, this.#recorder, this.#replies);
  }

  get #embedded(): boolean {
    return this.#manager !== null;
  }

  get #aborted(): boolean {
    return this.#options.signal?.aborted ?? false;
  }

  async execute(): Promise<SimulationReport> {
    using failures = watchProcessFailures(this.#recorder);
    await this.#play();
    return judge(this.#figures(failures.counts()));
  }

  async #play(): Promise<void> {
    try {
      this.#memory?.start();
      this.#startTicker();
      await this.#reachManager();
      this.#phase = "connecting";
      await this.#dialer.connectFleet(this.#sims, this.#malformed);
      if (this.#embedded) {
        await this.#until(() => this.#ledger.everConnected.size >= this.#sims.length, 10_000);
      }
      this.#startChaos();
      if (this.#embedded && !this.#aborted) {
        this.#phase = "broadcasts";
        await this.#broadcastPhase();
        this.#phase = "unicasts";
        await this.#unicastPhase();
        await this.#ledger.quiet(false, this.#options.signal);
        this.#phase = "requests";
        await this.#requestPhase();
      }
      this.#phase = "steady";
      await this.#steadyPhase();
    } catch (error) {
      this.#recorder.error(`the run failed: ${(error as Error).stack ?? String(error)}`);
    } finally {
      await this.#shutdown();
    }
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
      target: this.#target,
      embedded: this.#embedded,
      options: this.#options,
      recorder: this.#recorder,
      ledger: this.#ledger,
      random: this.#random,
    });
  }

  /** Starts the embedded manager on `port` (0: any) and makes it the run's manager. */
  async #listen(port: number): Promise<Manager> {
    const manager = await Manager.listen({
      validTypes: ["light", "lock"],
      hostname: "127.0.0.1",
      port,
      tls: this.#options.managerTls,
      heartbeatRate: this.#options.heartbeat,
      heartbeatTimeout: this.#options.heartbeatTimeout,
      handshakeTimeout: 10,
    });
    this.#retiredRounds += this.#manager?.heartbeatRounds ?? 0;
    this.#manager = manager;
    this.#ledger.watch(manager);
    return manager;
  }

  #connectedNow(): number {
    if (this.#manager) return this.#manager.size;
    let connected = 0;
    for (const sim of this.#sims) if (sim.device?.connected) connected++;
    return connected;
  }

  async #broadcastPhase(): Promise<void> {
    const manager = this.#manager!;
    for (const [i, step] of BROADCASTS.entries()) {
      if (this.#aborted) return;
      const tag = `b${i + 1}`;
      const line = `${step.command} #${tag}\n`;
      const sentAt = performance.now();
      const reached = step.target === "all"
        ? await manager.sendAll(line)
        : await manager.sendType(step.target, line);
      this.#ledger.toDevicesSent += reached;
      this.#broadcasts.push({ tag, target: step.target, sentAt });
      const receivers = this.#sims.filter((sim) =>
        sim.stable && (step.target === "all" || sim.type === step.target)
      );
      // A receiver churned since the send may never get it; the report only holds the undisturbed.
      await this.#until(
        () => receivers.every((sim) => !sim.stable || sim.received.has(tag)),
        10_000,
      );
    }
  }

  async #unicastPhase(): Promise<void> {
    const manager = this.#manager!;
    const stable = shuffled(this.#sims.filter((sim) => sim.stable), this.#random);
    for (const [i, sim] of stable.slice(0, UNICASTS).entries()) {
      const tag = `u${i + 1}`;
      const command = sim.type === "lock" ? "unlock" : i % 2 === 0 ? "toggle" : "brightness 70";
      this.#ledger.toDevicesSent += await manager.send(sim.uuid, `${command} #${tag}\n`);
      this.#unicastTargets.push({ sim, tag });
    }
    await this.#until(
      () => this.#unicastTargets.every(({ sim, tag }) => !sim.stable || sim.received.has(tag)),
      10_000,
    );
  }

  async #requestPhase(): Promise<void> {
    const stable = shuffled(this.#sims.filter((sim) => sim.stable), this.#random);
    const jobs: { sim: SimDevice; command: string; expectError: boolean }[] = stable
      .slice(0, this.#options.requests)
      .map((sim) => ({ sim, command: "status", expectError: false }));
    for (const type of ["light", "lock"] as const) {
      const sim = stable.find((candidate) => candidate.type === type);
      if (sim && this.#options.requests > 0) jobs.push({ sim, command: "fly", expectError: true });
    }
    let next = 0;
    const worker = async () => {
      while (next < jobs.length && !this.#aborted) {
        const index = next++;
        const job = jobs[index];
        // The phase is for undisturbed devices; churn may have taken one since the list was made.
        if (!job.sim.stable) continue;
        const client = job.sim.client;
        if (!job.sim.live || !client) {
          this.#recorder.error(`request ${index}: ${job.sim.uuid} is not connected`);
          continue;
        }
        this.#ledger.toDevicesSent++;
        const tag = `r${index + 1}`;
        const result = await this.#replies.roundTrip(
          client,
          job.command,
          tag,
          10,
          (text) => this.#ledger.countAnswers(client.uuid, text),
        );
        if (!result.ok && !job.sim.stable) continue; // churned mid-request
        this.#requests.sent++;
        if (!result.ok) {
          this.#recorder.error(`request ${tag} to ${client.uuid} failed: ${result.error.message}`);
        } else if (!isValidAnswer(job.sim.type, result.reply, job.expectError)) {
          this.#recorder.error(
            `request ${tag} to ${client.uuid}: bad answer ${JSON.stringify(result.reply)}`,
          );
        } else {
          this.#requests.answered++;
          this.#requests.latencies.push(result.ms);
        }
      }
    };
    await Promise.all(Array.from({ length: REQUEST_CONCURRENCY }, worker));
  }

  async #steadyPhase(): Promise<void> {
    this.#steadyStart = this.#elapsed();
    const { steadyBroadcast, steadyRequests } = this.#options;
    const manager = this.#manager;
    if (manager && (steadyBroadcast > 0 || steadyRequests > 0)) {
      const steady = new SteadyTraffic({
        manager,
        sims: this.#sims,
        recorder: this.#recorder,
        replies: this.#replies,
        random: this.#random,
        aborted: () => this.#aborted,
        onQueued: (reached) => void (this.#ledger.toDevicesSent += reached),
        onRequestReply: (client, text) => this.#ledger.countAnswers(client.uuid, text),
      }, { broadcastEvery: steadyBroadcast, requestsPerSecond: steadyRequests });
      this.#recorder.steadyTag = (sim, tag, receivedAt) => steady.onTag(sim, tag, receivedAt);
      this.#steady = steady;
      steady.start();
    }
    try {
      if (this.#options.restart !== undefined) await this.#restartPhase();
      await this.#steadyWait();
    } finally {
      // The last sample of the steady phase is its end, for the memory verdict.
      this.#memory?.sample();
      this.#steadyEnd = this.#elapsed();
      if (this.#steady) {
        this.#phase = "settling";
        await this.#steady.stop();
      }
    }
  }

  /**
   * `restart` seconds into the steady phase: closes the manager, starts a new
   * one on the same port `restartDown` seconds after the close, and waits until
   * every device that was registered at the close is registered again (or a
   * deadline well past the backoff's longest wait).
   */
  async #restartPhase(): Promise<void> {
    const { restart = 0, restartDown, reconnect, signal } = this.#options;
    await sleep(restart * 1000, signal);
    const closed = this.#manager;
    if (!closed || this.#aborted) return;
    this.#phase = "restart";
    const record: RestartRecord = {
      closed,
      downAt: performance.now(),
      fleet: new Set(this.#sims.filter((sim) => sim.client?.connected && sim.device?.connected)),
      back: new Set(),
      backAfter: [],
      closeSeconds: 0,
      upAfter: 0,
      linesLost: 0,
    };
    this.#ledger.restart = record;
    log.info("Restart: closing the manager with {devices} devices", {
      devices: record.fleet.size,
    });
    await closed.close();
    record.closeSeconds = (performance.now() - record.downAt) / 1000;
    await sleep(Math.max(0, record.downAt + restartDown * 1000 - performance.now()), signal);
    // The closed manager has read all it ever will and no device is connected: the rest is lost.
    for (const sim of this.#sims) {
      sim.linesLost = sim.linesSent - sim.linesAtManager;
      record.linesLost += sim.linesLost;
    }
    if (this.#aborted) return;
    await this.#listen(closed.port);
    record.upAfter = (performance.now() - record.downAt) / 1000;
    const maxDelay = reconnect?.maxDelay ?? LIBRARY_RECONNECT.maxDelay;
    const backIn = await this.#until(
      () => record.back.size >= record.fleet.size,
      (2 * maxDelay + 15) * 1000,
    );
    if (!backIn && !this.#aborted) {
      log.warn("Restart: {missing} devices did not come back", {
        missing: record.fleet.size - record.back.size,
      });
    }
    this.#phase = "steady";
  }

  /** The steady phase's running time: `--duration`, or until its heartbeat rounds have run. */
  async #steadyWait(): Promise<void> {
    const { duration, heartbeat, heartbeatTimeout } = this.#options;
    const manager = this.#manager;
    this.#roundsAtSteady = manager?.heartbeatRounds ?? 0;
    if (!manager) {
      await sleep((duration ?? 30) * 1000, this.#options.signal);
      return;
    }
    if (duration !== undefined) {
      await sleep(duration * 1000, this.#options.signal);
      return;
    }
    const silent = this.#sims.filter((sim) => sim.role === "silent").length;
    await this.#until(
      () =>
        manager.heartbeatRounds >= this.#roundsAtSteady + STEADY_ROUNDS &&
        this.#ledger.silentDropped >= silent,
      ((STEADY_ROUNDS + 1) * heartbeat + heartbeatTimeout + 5) * 1000,
    );
  }

  #startChaos(): void {
    const { churn } = this.#options.chaos;
    if (churn > 0) {
      this.#timers.push(setInterval(() => this.#churnOnce(), 60_000 / churn));
    }
    const telemetry = this.#options.telemetry;
    if (telemetry > 0) {
      // One timer for the fleet: each 100 ms tick reports for one slice of it.
      const slices = Math.max(1, Math.round((telemetry * 1000) / 100));
      let tick = 0;
      this.#timers.push(setInterval(() => {
        const slice = tick++ % slices;
        for (let i = slice; i < this.#sims.length; i += slices) {
          this.#sims[i].telemetry(this.#recorder).catch((error) =>
            this.#recorder.error(`telemetry failed: ${String(error)}`)
          );
        }
      }, 100));
    }
  }

  #churnOnce(): void {
    const candidates = this.#sims.filter((sim) =>
      sim.role === "normal" && !sim.churning && sim.device?.connected
    );
    if (candidates.length === 0) return;
    const sim = candidates[Math.floor(this.#random() * candidates.length)];
    sim.churned = true;
    sim.churning = true;
    sim.churnCycles++;
    this.#steady?.excuse(sim);
    this.#churn.cycles++;
    const task: Promise<void> = (async () => {
      await sim.stop("churn");
      await sleep(50 + this.#random() * 250);
      sim.churning = false;
      if (this.#recorder.shuttingDown) return;
      await this.#dialer.start(sim);
      // Mode 1 has no acknowledgement: count the device back once the manager lists it.
      const manager = this.#manager;
      if (manager) await this.#until(() => manager.get(sim.uuid) !== undefined, 5_000);
      if (sim.device?.connected) this.#churn.reconnected++;
    })().catch((error) => this.#recorder.error(`churn failed: ${String(error)}`))
      .finally(() => this.#churn.tasks.delete(task));
    this.#churn.tasks.add(task);
  }

  async #shutdown(): Promise<void> {
    this.#phase = "shutdown";
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    await Promise.all(this.#churn.tasks);
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
    this.#tick();
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    clearInterval(this.#ticker);
    this.#phase = "done";
    if (this.#memory) {
      this.#memory.stop();
      this.#memory.sample();
    }
    log.info("Simulation finished in {seconds} s", {
      seconds: (performance.now() - this.#started) / 1000,
    });
  }

  #elapsed(): number {
    return (performance.now() - this.#started) / 1000;
  }

  #startTicker(): void {
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
  }

  #heartbeatTotals(): { answered: number; ignored: number; received: number } {
    let answered = this.#recorder.retiredAnswered;
    let ignored = this.#recorder.retiredIgnored;
    let received = this.#recorder.retiredReceived;
    for (const sim of this.#sims) {
      const stats = sim.device?.stats;
      if (!stats) continue;
      answered += stats.heartbeatsAnswered;
      ignored += stats.heartbeatsIgnored;
      received += stats.messagesReceived;
    }
    return { answered, ignored, received };
  }

  #tick(): void {
    const rss = Deno.memoryUsage().rss;
    this.#peakRss = Math.max(this.#peakRss, rss);
    let connected = 0;
    for (const sim of this.#sims) if (sim.device?.connected) connected++;
    if (!this.#embedded) {
      this.#ledger.peakConnected = Math.max(this.#ledger.peakConnected, connected);
    }
    const onStatus = this.#options.onStatus;
    if (!onStatus) return;
    const totals = this.#heartbeatTotals();
    onStatus({
      elapsed: (performance.now() - this.#started) / 1000,
      phase: this.#phase,
      connected,
      expected: this.#sims.length,
      messages: totals.received + this.#ledger.managerReceived,
      heartbeatsAnswered: totals.answered,
      errors: this.#recorder.errorCount,
      rss,
    });
  }

  /** Polls `condition` every `everyMs` until it holds, `timeoutMs` passes or the run is aborted. */
  #until(condition: () => boolean, timeoutMs: number, everyMs?: number): Promise<boolean> {
    return until(condition, timeoutMs, { everyMs, signal: this.#options.signal });
  }

  /** What the run collected, for the judge. Taken once the run is over. */
  #figures(process: RunFigures["process"]): RunFigures {
    const recorder = this.#recorder;
    const totals = this.#heartbeatTotals();
    const restart = this.#ledger.restart;
    const memory = this.#memory;
    return {
      target: this.#embedded ? "embedded" : "external",
      address: `${this.#target?.hostname}:${this.#target?.port}`,
      tls: this.#options.tls !== undefined || this.#options.managerTls !== undefined,
      seconds: (performance.now() - this.#started) / 1000,
      aborted: this.#aborted,
      asked: this.#options,
      devices: this.#sims,
      connected: this.#ledger.everConnected.size,
      peakConnected: this.#ledger.peakConnected,
      aliveAtShutdown: this.#aliveAtShutdown,
      malformed: { sent: this.#malformed, rejected: this.#ledger.malformedRejected },
      handshakeMs: recorder.handshakeMs,
      broadcasts: this.#broadcasts,
      unicasts: this.#unicastTargets.map(({ sim, tag }) => ({ device: sim, tag })),
      requests: this.#requests,
      answers: this.#answersAtQuiet ?? { sent: this.#ledger.stableAnswers().sent, received: 0 },
      messages: {
        toDevices: { sent: this.#ledger.toDevicesSent, delivered: recorder.commandsReceived },
        toManager: { sent: recorder.linesSent, received: this.#ledger.managerReceived },
      },
      heartbeats: {
        rounds: this.#retiredRounds + (this.#manager?.heartbeatRounds ?? 0),
        answered: totals.answered,
        ignored: totals.ignored,
        missed: this.#ledger.heartbeatMissed,
      },
      disconnects: {
        manager: this.#ledger.managerEnds,
        devices: recorder.deviceEnds,
        unexpected: recorder.unexpectedCount,
        unexpectedSamples: recorder.unexpected,
      },
      dropped: { silent: this.#ledger.silentDropped, slow: this.#ledger.slowDropped },
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
      restart: restart && {
        closedAt: (restart.downAt - this.#started) / 1000,
        closeSeconds: restart.closeSeconds,
        upAfter: restart.upAfter,
        reconnect: { ...LIBRARY_RECONNECT, ...this.#options.reconnect },
        linesLost: restart.linesLost,
        expected: restart.fleet.size,
        backAfter: restart.backAfter,
      },
      peakRss: this.#peakRss,
      process,
      errors: { count: recorder.errorCount, samples: recorder.errors },
    };
  }
}
