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
import { type Client, type ConnectionEnd, Manager } from "@iot-manager/core";
import { commandLines, type FakeType } from "./fake_devices.ts";
import { Recorder, type Role, sendMalformedHandshake, SimDevice, type Target } from "./fleet.ts";
import { judge, type RunFigures } from "./judge.ts";
import { MemorySampler } from "./memory.ts";
import { defaultOptions, restartClashes, type SimulationOptions } from "./options.ts";
import { isValidAnswer, Replies } from "./replies.ts";
import type { SimulationReport } from "./report.ts";
import { count, seededRandom, shuffled, type Tally } from "./stats.ts";
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

/** A restart in progress or done: who should come back, and when each did. */
interface RestartRecord {
  /** The manager closed for the restart; its `manager-closed` disconnects are expected. */
  readonly closed: Manager;
  /** `performance.now()` when it was closed: the devices lost it. */
  readonly downAt: number;
  /** Devices registered at that moment: the fleet that should come back. */
  readonly fleet: ReadonlySet<SimDevice>;
  /** Devices the new manager registered. */
  readonly back: Set<SimDevice>;
  /** Seconds from the loss to each of those registrations. */
  readonly backAfter: number[];
  closeSeconds: number;
  upAfter: number;
  linesLost: number;
}

class Run {
  readonly #options: SimulationOptions;
  readonly #recorder = new Recorder();
  readonly #random: () => number;
  readonly #sims: SimDevice[] = [];
  readonly #byUuid = new Map<string, SimDevice>();
  readonly #malformed: number;
  readonly #started = performance.now();
  #manager: Manager | null = null;
  #target!: Target;
  #phase = "starting";
  #peakRss = 0;
  #peakConnected = 0;
  #everConnected = new Set<string>();
  #managerEnds: Tally = {};
  #managerReceived = 0;
  #answersAtQuiet: { sent: number; received: number } | null = null;
  readonly #replies = new Replies();
  #steady: SteadyTraffic | null = null;
  readonly #memory: MemorySampler | null;
  #steadyStart = 0;
  #steadyEnd = 0;
  readonly #process = { unhandledRejections: 0, uncaughtErrors: 0 };
  #toDevicesSent = 0;
  #broadcasts: BroadcastRecord[] = [];
  #unicastTargets: { sim: SimDevice; tag: string }[] = [];
  #requests = { sent: 0, answered: 0, latencies: [] as number[] };
  #churn = { cycles: 0, reconnected: 0, tasks: new Set<Promise<void>>() };
  #malformedRejected = 0;
  #silentDropped = 0;
  #slowDropped = 0;
  #heartbeatMissed = 0;
  #roundsAtSteady = 0;
  /** Heartbeat rounds of managers closed by a restart. */
  #retiredRounds = 0;
  #restart: RestartRecord | null = null;
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
    const total = options.lights + options.locks;
    this.#malformed = Math.round(total * options.chaos.malformed);
    // Lights and locks interleaved, then roles and modes handed out by a seeded shuffle.
    const types: FakeType[] = [];
    for (let i = 0, lights = 0, locks = 0; i < total; i++) {
      const light = locks >= options.locks ||
        (lights < options.lights && lights * options.locks <= locks * options.lights);
      types.push(light ? "light" : "lock");
      if (light) lights++;
      else locks++;
    }
    const order = shuffled(types.map((_, i) => i), this.#random);
    const roles = new Map<number, Role | "malformed">();
    const counts: [Role | "malformed", number][] = [
      ["malformed", this.#malformed],
      ["silent", Math.round(total * options.chaos.silent)],
      ["slow", Math.round(total * options.chaos.slow)],
    ];
    let at = 0;
    for (const [role, n] of counts) {
      for (let i = 0; i < n && at < order.length; i++) roles.set(order[at++], role);
    }
    const mode1 = new Set(
      shuffled(types.map((_, i) => i), this.#random)
        .slice(0, Math.round(total * options.mode1Share)),
    );
    for (let i = 0; i < total; i++) {
      const role = roles.get(i) ?? "normal";
      if (role === "malformed") continue;
      const sim = new SimDevice({
        type: types[i],
        mode: mode1.has(i) ? 1 : 2,
        role,
        slowDelay: options.chaos.slowDelay,
        // The restart's devices come back by themselves; otherwise a drop is final.
        reconnect: options.restart === undefined ? undefined : options.reconnect ?? true,
      });
      this.#sims.push(sim);
      this.#byUuid.set(sim.uuid, sim);
    }
  }

  get #embedded(): boolean {
    return this.#manager !== null;
  }

  get #aborted(): boolean {
    return this.#options.signal?.aborted ?? false;
  }

  async execute(): Promise<SimulationReport> {
    // Counted, not fatal: the report says how many and why, and the run fails.
    const onRejection = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      this.#process.unhandledRejections++;
      this.#recorder.error(`unhandled rejection: ${describe(event.reason)}`);
    };
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      this.#process.uncaughtErrors++;
      this.#recorder.error(`uncaught error: ${describe(event.error ?? event.message)}`);
    };
    globalThis.addEventListener("unhandledrejection", onRejection);
    globalThis.addEventListener("error", onError);
    try {
      return await this.#play();
    } finally {
      globalThis.removeEventListener("unhandledrejection", onRejection);
      globalThis.removeEventListener("error", onError);
    }
  }

  async #play(): Promise<SimulationReport> {
    try {
      this.#memory?.start();
      this.#startTicker();
      await this.#reachManager();
      this.#phase = "connecting";
      await this.#connectFleet();
      if (this.#embedded) {
        await this.#until(() => this.#everConnected.size >= this.#sims.length, 10_000);
      }
      this.#startChaos();
      if (this.#embedded && !this.#aborted) {
        this.#phase = "broadcasts";
        await this.#broadcastPhase();
        this.#phase = "unicasts";
        await this.#unicastPhase();
        await this.#quiet();
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
    return judge(this.#figures());
  }

  async #reachManager(): Promise<void> {
    const { connect, tls, managerTls } = this.#options;
    if (connect) {
      this.#target = { hostname: connect.hostname, port: connect.port, tls };
      return;
    }
    const manager = await this.#listen(0);
    this.#target = {
      hostname: manager.hostname,
      port: manager.port,
      tls: managerTls ? tls ?? {} : undefined,
    };
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
    manager.on("connect", (client) => this.#onRegistered(manager, client));
    manager.on("message", (client, data) => this.#onManagerMessage(client, data));
    manager.on("disconnect", (client, end) => this.#onManagerDisconnect(manager, client, end));
    return manager;
  }

  #onRegistered(manager: Manager, client: Client): void {
    const sim = this.#byUuid.get(client.uuid);
    this.#peakConnected = Math.max(this.#peakConnected, manager.size);
    if (!sim) return;
    sim.client = client;
    sim.registeredAt = performance.now();
    const restart = this.#restart;
    if (restart?.fleet.has(sim) && !restart.back.has(sim)) {
      restart.back.add(sim);
      restart.backAfter.push((sim.registeredAt - restart.downAt) / 1000);
    }
    if (this.#everConnected.has(sim.uuid)) return;
    this.#everConnected.add(sim.uuid);
    this.#recorder.handshakeMs.push(performance.now() - sim.dialAt);
  }

  #onManagerMessage(client: Client, data: Uint8Array): void {
    this.#countAnswers(client.uuid, new TextDecoder().decode(data));
  }

  /** Counts the JSON lines a device sent and settles the round trips they answer; reports anything else. */
  #countAnswers(uuid: string, text: string): void {
    const sim = this.#byUuid.get(uuid);
    for (const line of commandLines(text)) {
      if (!line.startsWith("{")) {
        this.#recorder.error(
          `the manager delivered ${
            JSON.stringify(line)
          } from ${uuid} (mode ${sim?.mode}) as a message`,
        );
        continue;
      }
      this.#managerReceived++;
      if (sim) sim.linesAtManager++;
      this.#replies.offer(line);
    }
  }

  /**
   * Lines the undisturbed devices sent, and those of them the manager received.
   * Summed per device at the time of asking, so a device churned while its
   * answer was on the wire drops out of both sides.
   */
  #stableAnswers(): { sent: number; received: number } {
    let sent = 0;
    let received = 0;
    for (const sim of this.#sims) {
      if (!sim.stable) continue;
      sent += sim.linesSent;
      received += sim.linesAtManager + sim.linesLost;
    }
    return { sent, received };
  }

  #connectedNow(): number {
    if (this.#manager) return this.#manager.size;
    let connected = 0;
    for (const sim of this.#sims) if (sim.device?.connected) connected++;
    return connected;
  }

  #onManagerDisconnect(manager: Manager, client: Client, end: ConnectionEnd): void {
    count(this.#managerEnds, end.reason);
    this.#replies.ended(client, end);
    const sim = this.#byUuid.get(client.uuid);
    if (!sim) return;
    if (sim.client === client) sim.client = null;
    if (end.reason === "heartbeat" && sim.role !== "silent") this.#heartbeatMissed++;
    if (this.#recorder.shuttingDown && end.reason === "manager-closed") return;
    if (manager === this.#restart?.closed && end.reason === "manager-closed") return;
    if (sim.role === "silent" && end.reason === "heartbeat") {
      this.#silentDropped++;
      return;
    }
    if (sim.churned && (end.reason === "ended" || end.reason === "closed")) return;
    if (sim.role === "slow") {
      this.#slowDropped++;
      return;
    }
    this.#recorder.unexpectedDisconnect(
      `${sim.type} ${sim.uuid} (mode ${sim.mode}, ${sim.role}): ${end.reason}: ${end.message}`,
    );
  }

  /** Device-side view, for runs against an external manager. */
  #onDeviceDrop(sim: SimDevice, end: ConnectionEnd): void {
    if (this.#embedded || this.#recorder.shuttingDown || sim.churning) return;
    if (sim.role === "silent") {
      this.#silentDropped++;
      return;
    }
    if (sim.role === "slow") {
      this.#slowDropped++;
      return;
    }
    if (/no beat/.test(end.message)) this.#heartbeatMissed++;
    this.#recorder.unexpectedDisconnect(
      `${sim.type} ${sim.uuid} (mode ${sim.mode}): ${end.reason}: ${end.message}`,
    );
  }

  async #startSim(sim: SimDevice): Promise<void> {
    try {
      const device = await sim.start(this.#target, this.#recorder);
      device.on("disconnect", (end) => this.#onDeviceDrop(sim, end));
      if (!this.#embedded) {
        this.#recorder.handshakeMs.push(performance.now() - sim.dialAt);
        this.#everConnected.add(sim.uuid);
      }
    } catch (error) {
      this.#recorder.error(
        `${sim.type} ${sim.uuid} could not connect: ${(error as Error).message}`,
      );
    }
  }

  async #connectFleet(): Promise<void> {
    const jobs: (() => Promise<void>)[] = this.#sims.map((sim) => () => this.#startSim(sim));
    for (let i = 0; i < this.#malformed; i++) {
      jobs.push(async () => {
        try {
          if (await sendMalformedHandshake(this.#target, i)) this.#malformedRejected++;
          else this.#recorder.error(`malformed handshake ${i} was not rejected`);
        } catch (error) {
          this.#recorder.error(`malformed handshake ${i} failed: ${(error as Error).message}`);
        }
      });
    }
    const gapMs = 1000 / this.#options.rate;
    let due = performance.now();
    const inFlight = new Set<Promise<void>>();
    for (const job of shuffled(jobs, this.#random)) {
      if (this.#aborted) break;
      while (inFlight.size >= this.#options.concurrency) await Promise.race(inFlight);
      const wait = due - performance.now();
      if (wait >= 4) await sleep(wait);
      due = Math.max(due + gapMs, performance.now() - 50);
      const task: Promise<void> = job().finally(() => inFlight.delete(task));
      inFlight.add(task);
    }
    await Promise.all(inFlight);
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
      this.#toDevicesSent += reached;
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
      this.#toDevicesSent += await manager.send(sim.uuid, `${command} #${tag}\n`);
      this.#unicastTargets.push({ sim, tag });
    }
    await this.#until(
      () => this.#unicastTargets.every(({ sim, tag }) => !sim.stable || sim.received.has(tag)),
      10_000,
    );
  }

  /**
   * Waits until the manager has every answer the undisturbed devices sent and,
   * with `settle` (once telemetry has stopped), until nothing more has arrived
   * for 100 ms, so slow readers have finished their backlog.
   */
  async #quiet(settle = false): Promise<void> {
    await this.#until(() => {
      const answers = this.#stableAnswers();
      return answers.received >= answers.sent;
    }, 10_000);
    if (!settle) return;
    let seen = -1;
    await this.#until(
      () => {
        const settled = seen === this.#managerReceived;
        seen = this.#managerReceived;
        return settled;
      },
      3_000,
      100,
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
        this.#toDevicesSent++;
        const tag = `r${index + 1}`;
        const result = await this.#replies.roundTrip(
          client,
          job.command,
          tag,
          10,
          (text) => this.#countAnswers(client.uuid, text),
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
        onQueued: (reached) => void (this.#toDevicesSent += reached),
        onRequestReply: (client, text) => this.#countAnswers(client.uuid, text),
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
    this.#restart = record;
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
        this.#silentDropped >= silent,
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
      await this.#startSim(sim);
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
      await this.#quiet(true);
      this.#answersAtQuiet = this.#stableAnswers();
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
    if (!this.#embedded) this.#peakConnected = Math.max(this.#peakConnected, connected);
    const onStatus = this.#options.onStatus;
    if (!onStatus) return;
    const totals = this.#heartbeatTotals();
    onStatus({
      elapsed: (performance.now() - this.#started) / 1000,
      phase: this.#phase,
      connected,
      expected: this.#sims.length,
      messages: totals.received + this.#managerReceived,
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
  #figures(): RunFigures {
    const recorder = this.#recorder;
    const totals = this.#heartbeatTotals();
    const restart = this.#restart;
    const memory = this.#memory;
    return {
      target: this.#embedded ? "embedded" : "external",
      address: `${this.#target?.hostname}:${this.#target?.port}`,
      tls: this.#options.tls !== undefined || this.#options.managerTls !== undefined,
      seconds: (performance.now() - this.#started) / 1000,
      aborted: this.#aborted,
      asked: this.#options,
      devices: this.#sims,
      connected: this.#everConnected.size,
      peakConnected: this.#peakConnected,
      aliveAtShutdown: this.#aliveAtShutdown,
      malformed: { sent: this.#malformed, rejected: this.#malformedRejected },
      handshakeMs: recorder.handshakeMs,
      broadcasts: this.#broadcasts,
      unicasts: this.#unicastTargets.map(({ sim, tag }) => ({ device: sim, tag })),
      requests: this.#requests,
      answers: this.#answersAtQuiet ?? { sent: this.#stableAnswers().sent, received: 0 },
      messages: {
        toDevices: { sent: this.#toDevicesSent, delivered: recorder.commandsReceived },
        toManager: { sent: recorder.linesSent, received: this.#managerReceived },
      },
      heartbeats: {
        rounds: this.#retiredRounds + (this.#manager?.heartbeatRounds ?? 0),
        answered: totals.answered,
        ignored: totals.ignored,
        missed: this.#heartbeatMissed,
      },
      disconnects: {
        manager: this.#managerEnds,
        devices: recorder.deviceEnds,
        unexpected: recorder.unexpectedCount,
        unexpectedSamples: recorder.unexpected,
      },
      dropped: { silent: this.#silentDropped, slow: this.#slowDropped },
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
      process: { ...this.#process },
      errors: { count: recorder.errorCount, samples: recorder.errors },
    };
  }
}

/** A rejection reason or thrown value as one line of text, with its stack when it has one. */
function describe(reason: unknown): string {
  return reason instanceof Error
    ? reason.stack ?? `${reason.name}: ${reason.message}`
    : String(reason);
}
