/**
 * The desired-state scenario (`--desired`): while churn takes devices away and
 * brings them back, the desired state of every lock and every light changes
 * every few seconds (`manager.state.setDesiredType`, connected or away), and
 * each device churn takes away has its own desired state changed while it is
 * away (`manager.state.setDesired`: a lock that is locked while offline) and is
 * sent two messages with a `ttl`: one that outlives its absence and one that
 * expires before it is back. Once churn and
 * steady traffic have stopped, one last change is made and the run waits until
 * every connected device is in step and every kept message is accounted for.
 *
 * With a restart (`--restart`) the scenario crosses it: just before the
 * manager closes, the changes pause, a share of the fleet is taken away, one
 * change is made to the whole fleet (the locks locked while some are offline)
 * and each device away is sent two ttl messages; the new manager reads the
 * same store (`follow`), the devices away dial it again and must get in step
 * within a second, and the changes go on once the fleet is back.
 *
 * When each device gets in step is read from `manager.state.changes()`: a
 * device is out of step from a change of desired state that leaves it a
 * non-empty delta (timed from the `setDesiredType` call), or from dialling
 * again when it comes back with one, until a report or a change empties it.
 * Times go into fixed histograms, so a long run holds no per-change records.
 * The judge (`judge.ts`) turns the figures into expectations.
 *
 * @module
 */

import type {
  DeviceState,
  DeviceStore,
  JsonObject,
  KeptStats,
  Manager,
  StateChange,
} from "@iot-manager/core";
import type { FakeType } from "./fake_devices.ts";
import type { Recorder, SimDevice } from "./fleet.ts";
import type { DesiredFigures } from "./judge.ts";
import { LatencyHistogram, type LatencySummary, type Tally } from "./stats.ts";
import { sleep, until } from "./wait.ts";

/** A device must be in step this soon after reconnecting (issue 13: "locked within a second"). */
export const IN_STEP_AFTER_RECONNECT_LIMIT_MS = 1000;
/** Outlives any churned device's absence: must be delivered when it is back. */
const KEPT_TTL_SECONDS = 60;
/** Shorter than any churned device's absence (churn waits at least 50 ms): expires unless the device is already back. */
const EXPIRING_TTL_SECONDS = 0.01;
/** Seconds a ttl message waits for its acknowledgement when the device is already back. */
const ACK_TIMEOUT_SECONDS = 15;
/** The longest the run waits for the fleet to get in step after the last change. */
const SETTLE_TIMEOUT_MS = 30_000;
const SETTLE_POLL_MS = 50;
/** Share of each type taken away just before a restart (at least one device of each). */
const AWAY_AT_RESTART_SHARE = 0.1;
/** The longest a restart waits for the fleet to get in step, and for devices it took away to be gone. */
const RESTART_PREPARE_TIMEOUT_MS = 10_000;
/** The lights' desired brightness, in turn (five levels against two on/off values: ten states). */
const LEVELS = [30, 70, 50, 100, 10] as const;

/**
 * The desired state of change number `change` (from 0), for each type: locks
 * alternate unlocked and locked (they start locked, so the first change has
 * every lock to do), lights alternate on and off through five levels.
 *
 * @example
 * ```ts
 * import { desiredStates } from "./desired.ts";
 * console.log(desiredStates(0)); // { lock: { locked: false }, light: { on: true, brightness: 30 } }
 * ```
 */
export function desiredStates(change: number): Record<FakeType, JsonObject> {
  return {
    lock: { locked: change % 2 === 1 },
    light: { on: change % 2 === 0, brightness: LEVELS[change % LEVELS.length] },
  };
}

/** Messages sent with a `ttl` to devices that were away, and what became of them. */
export interface TtlReport {
  /** Messages sent (two per device churn took away). */
  readonly sent: number;
  /** Of them, kept by the manager: the device was away (the send's report said `kept`). */
  readonly kept: number;
  /** Of them, acknowledged at once: the device was already back. */
  readonly direct: number;
  /** The others, by the reason the send gave (`disconnected`: churn took the device again first). */
  readonly failed: Tally;
  /** Of the kept, the direct and the failed, how many the devices received. */
  readonly received: {
    readonly kept: number;
    readonly direct: number;
    readonly failed: number;
  };
  /** The manager's books (`manager.state.keptStats`), and what its store still keeps at the end. */
  readonly manager: {
    readonly kept: number;
    readonly delivered: number;
    readonly expired: number;
    readonly dropped: number;
    readonly stillKept: number;
  };
}

/** The desired state across a restart (`--restart`): what crossed it, through the store. */
export interface DesiredRestartReport {
  /**
   * Mode-2 devices taken away just before the close: the fleet was changed and
   * each was sent two ttl messages while it was away.
   */
  readonly away: number;
  /** Of them, those that came back to the new manager out of step (as each should). */
  readonly awayBackOutOfStep: number;
  /** Mode-2 devices in the fleet. */
  readonly devices: number;
  /** Of them, those the new manager knew on starting with the desired state set last before the close. */
  readonly known: number;
}

/** The desired-state scenario, as the report shows it. Times in milliseconds. */
export interface DesiredReport {
  /** Seconds between two changes. */
  readonly every: number;
  /** Changes of desired state made, each to every lock and every light; the last once all was quiet. */
  readonly changes: number;
  /** Changes made to single devices while churn had them away. */
  readonly awayChanges: number;
  /** Whether the fleet got in step, and the kept messages balanced, before the run stopped waiting. */
  readonly settled: boolean;
  /** Mode-2 devices connected at the end, those of them in step, and mode-1 devices left out. */
  readonly devices: { readonly connected: number; readonly inStep: number; readonly mode1: number };
  /** Up to three devices out of step at the end, described. */
  readonly outOfStepSamples: readonly string[];
  /** From a change of desired state to each connected device it moved being in step. */
  readonly afterChange: LatencySummary;
  /** From a device dialling again (and coming back out of step) to it being in step. */
  readonly afterReconnect: LatencySummary;
  /** Devices that came back during the scenario, and how many of them out of step. */
  readonly reconnects: { readonly total: number; readonly outOfStep: number };
  /** The longest any connected device was out of step after a change or a reconnect. */
  readonly worst: number;
  /** Messages sent with a `ttl` to devices that were away. */
  readonly ttl: TtlReport;
  /** The desired state across the restart; null without one. */
  readonly restart: DesiredRestartReport | null;
}

/** What the scenario needs from the run. */
export interface DesiredContext {
  /** The run's manager; a restart's new one comes through {@linkcode DesiredScenario.follow}. */
  readonly manager: Manager;
  /** The manager's store: what it still keeps for each device is counted there. */
  readonly store: DeviceStore;
  readonly sims: readonly SimDevice[];
  readonly recorder: Recorder;
  /** Dials a device again (a restart brings back the devices it took away). */
  readonly start: (sim: SimDevice) => Promise<void>;
  readonly signal?: AbortSignal;
}

/** A restart the scenario crosses. */
interface Restart {
  /** Devices taken away just before the close, still to come back. */
  readonly away: Set<SimDevice>;
  /** How many were taken away. */
  readonly taken: number;
  awayBackOutOfStep: number;
  /** The desired state of each type set last before the close. */
  readonly desired: Record<FakeType, JsonObject>;
  /** Mode-2 devices the new manager knew with it; -1 until it started. */
  known: number;
}

interface OutOfStep {
  /** `performance.now()` of the change or the reconnect. */
  readonly since: number;
  readonly cause: "change" | "reconnect";
}

interface TtlMessage {
  readonly sim: SimDevice;
  /** How the send resolved: `kept`, `direct`, a failure reason; null while in flight. */
  outcome: string | null;
  received: boolean;
}

/**
 * The desired-state scenario of one run.
 *
 * @example
 * ```ts ignore
 * const desired = new DesiredScenario({ manager, store, sims, recorder, start }, 1);
 * recorder.claimTag = (sim, tag) => desired.onTag(sim, tag);
 * desired.start();
 * // ... the steady phase, with churn; or a restart:
 * await desired.beforeRestart();
 * await manager.close();
 * desired.follow(await Manager.listen({ ...options, store }), store); // the same store
 * await desired.afterRestart(); // once the fleet is back
 * await desired.stop();
 * // ... churn stopped ...
 * await desired.settle();
 * console.log(desired.figures()?.connected.length);
 * ```
 */
export class DesiredScenario {
  readonly #context: DesiredContext;
  readonly #everyMs: number;
  #manager: Manager;
  #store: DeviceStore;
  /** The kept-message books of managers a restart closed. */
  readonly #retiredKept = { kept: 0, delivered: 0, expired: 0, dropped: 0 };
  readonly #byUuid = new Map<string, SimDevice>();
  readonly #outOfStep = new Map<string, OutOfStep>();
  /** When the latest change to each type was made. */
  readonly #changedAt: Record<FakeType, number> = { light: 0, lock: 0 };
  /** When the latest change to a single device was made. */
  readonly #deviceChangedAt = new Map<string, number>();
  readonly #afterChange = new LatencyHistogram();
  readonly #afterReconnect = new LatencyHistogram();
  readonly #reconnects = { total: 0, outOfStep: 0 };
  readonly #messages = new Map<string, TtlMessage>();
  readonly #sends = new Set<Promise<void>>();
  readonly #stopChanging = new AbortController();
  /** Pauses the changes every few seconds (a restart); a new one each time they start. */
  #pauseChanging = new AbortController();
  readonly #stopWatching = new AbortController();
  /** The devices a restart brings back, dialling. */
  readonly #returns = new Set<Promise<void>>();
  /** Set from just before a restart's close until its fleet is back: disconnects are the restart's. */
  #restarting = false;
  #restart: Restart | null = null;
  #changes = 0;
  #awayChanges = 0;
  #tags = 0;
  #changing: Promise<void> = Promise.resolve();
  #watching: Promise<void> = Promise.resolve();
  #figures: DesiredFigures | null = null;

  /** @param everySeconds Seconds between two changes of desired state. */
  constructor(context: DesiredContext, everySeconds: number) {
    this.#context = context;
    this.#everyMs = everySeconds * 1000;
    this.#manager = context.manager;
    this.#store = context.store;
    for (const sim of context.sims) this.#byUuid.set(sim.uuid, sim);
  }

  /** Starts watching the manager's state changes, and changing the desired state. */
  start(): void {
    this.#watchManager();
    this.#startChanging();
  }

  /** Stops changing the desired state (the fleet goes on being watched). */
  async stop(): Promise<void> {
    this.#stopChanging.abort();
    await this.#changing;
  }

  /**
   * Just before a restart closes the manager: pauses the changes, waits for
   * the fleet to be in step, takes a share of each type away, changes the
   * desired state of the whole fleet (each device away misses it) and sends
   * each device away a ttl message that outlives the restart and one that
   * cannot; resolves once the manager kept them and the devices still
   * connected are in step, so the change is on the store before the close.
   */
  async beforeRestart(): Promise<void> {
    const { sims, signal } = this.#context;
    const manager = this.#manager;
    this.#restarting = true;
    this.#pauseChanging.abort();
    await this.#changing;
    // In step with the latest change first, so the restart's change is one every device away misses.
    await this.#waitFor("the fleet in step before the restart", () => this.#fleetInStep());
    const away = takenAway(sims.filter((sim) => sim.mode === 2 && sim.live));
    for (const sim of away) {
      // Disturbed: held to what churned devices are held to (the ledger expects their goodbyes).
      sim.churned = true;
      sim.churning = true;
    }
    await Promise.all(away.map((sim) => sim.stop("away for the restart")));
    await this.#waitFor(
      "the devices taken away gone from the manager",
      () => away.every((sim) => manager.state.get(sim.uuid)?.connected === false),
    );
    if (signal?.aborted) return;
    await this.#change();
    for (const sim of away) this.#sendTtl(sim);
    await this.#waitFor(
      "the ttl messages kept and the fleet in step before the restart",
      () => this.#sends.size === 0 && this.#fleetInStep(),
    );
    this.#restart = {
      away: new Set(away),
      taken: away.length,
      awayBackOutOfStep: 0,
      desired: desiredStates(this.#changes - 1),
      known: -1,
    };
  }

  /**
   * A restart's new manager is listening, on the same store: watches it,
   * counts the devices it knew with the desired state set before the close,
   * and dials the devices taken away again. Call it before the new manager
   * can have registered a device (in the same turn as `Manager.listen`
   * resolving), so no `connected` change is missed.
   */
  follow(manager: Manager, store: DeviceStore): void {
    // The closed manager's books are final; the new one's start at 0.
    addKept(this.#retiredKept, this.#manager.state.keptStats);
    this.#manager = manager;
    this.#store = store;
    this.#watchManager();
    const restart = this.#restart;
    if (!restart) return;
    restart.known = 0;
    for (const sim of this.#context.sims) {
      const state = sim.mode === 2 ? manager.state.get(sim.uuid) : undefined;
      if (state && holds(state.desired, restart.desired[sim.type])) restart.known++;
    }
    for (const sim of restart.away) {
      sim.churning = false;
      const dialled: Promise<void> = this.#context.start(sim)
        .finally(() => this.#returns.delete(dialled));
      this.#returns.add(dialled);
    }
  }

  /**
   * A restart's fleet is back: once the devices taken away are too, the
   * changes go on. Not before: a change made while one of them is still
   * dialling could give a lock back the state it already has.
   */
  async afterRestart(): Promise<void> {
    await Promise.all(this.#returns);
    const away = this.#restart?.away;
    if (away) await this.#waitFor("the devices taken away back", () => away.size === 0);
    this.#restarting = false;
    this.#startChanging();
  }

  /**
   * Once churn and steady traffic have stopped: makes one last change, waits
   * until every connected device is in step, every ttl send has resolved and
   * the manager's kept messages balance (or a deadline), then takes the
   * figures and stops watching.
   */
  async settle(): Promise<void> {
    await this.stop();
    await Promise.all(this.#returns);
    const { signal } = this.#context;
    let settled = false;
    if (!signal?.aborted) {
      await this.#change();
      const deadline = performance.now() + SETTLE_TIMEOUT_MS;
      while (!(settled = await this.#settled()) && performance.now() < deadline) {
        if (signal?.aborted) break;
        await sleep(SETTLE_POLL_MS);
      }
    }
    this.#figures = await this.#collect(settled);
    this.#stopWatching.abort();
    await this.#watching;
  }

  /** The figures, once {@linkcode settle} has run; null before. */
  figures(): DesiredFigures | null {
    return this.#figures;
  }

  /**
   * Takes a tag a device received. Returns true for the ttl messages' tags
   * (`k…` kept, `e…` expiring), counted here.
   */
  onTag(sim: SimDevice, tag: string): boolean {
    if (!/^[ke]\d/.test(tag)) return false;
    const message = this.#messages.get(tag);
    if (!message || message.sim !== sim || message.received) {
      this.#context.recorder.error(
        `ttl message ${tag} reached ${sim.type} ${sim.uuid} ` +
          (message?.received ? "twice" : "but was not sent to it"),
      );
    } else message.received = true;
    return true;
  }

  /** Watches the manager's state changes (a restart's new manager's too, as it starts). */
  #watchManager(): void {
    const { sims, signal } = this.#context;
    const changes = this.#manager.state.changes({
      // One change of desired state queues a change per device at once.
      highWaterMark: Math.max(1024, 4 * sims.length),
      signal: signal
        ? AbortSignal.any([signal, this.#stopWatching.signal])
        : this.#stopWatching.signal,
    });
    // The closed manager's iterator has ended or is ending: both are waited for.
    const watching = this.#watching;
    const next = this.#watch(changes);
    this.#watching = Promise.all([watching, next]).then(() => {});
  }

  #startChanging(): void {
    if (this.#stopChanging.signal.aborted) return;
    this.#pauseChanging = new AbortController();
    this.#changing = this.#changeEvery();
  }

  async #changeEvery(): Promise<void> {
    const stops = [this.#stopChanging.signal, this.#pauseChanging.signal];
    if (this.#context.signal) stops.push(this.#context.signal);
    const stop = AbortSignal.any(stops);
    while (!stop.aborted) {
      await this.#change();
      await sleep(this.#everyMs, stop);
    }
  }

  /** One change of desired state: every lock, then every light. */
  async #change(): Promise<void> {
    const states = desiredStates(this.#changes++);
    for (const type of ["lock", "light"] as const) {
      this.#changedAt[type] = performance.now();
      try {
        await this.#manager.state.setDesiredType(type, states[type]);
      } catch (error) {
        this.#context.recorder.error(`setDesiredType("${type}") failed: ${String(error)}`);
      }
    }
  }

  async #watch(changes: AsyncIterableIterator<StateChange>): Promise<void> {
    try {
      for await (const change of changes) this.#onChange(change, performance.now());
    } catch (error) {
      this.#context.recorder.error(`watching state changes failed: ${String(error)}`);
    }
  }

  #onChange({ kind, state }: StateChange, now: number): void {
    const sim = this.#byUuid.get(state.uuid);
    if (!sim || sim.mode !== 2) return; // mode 1 gets no delta: left out
    const inStep = Object.keys(state.delta).length === 0;
    switch (kind) {
      case "desired":
        // A device away is judged when it is back.
        if (!state.connected) return;
        if (inStep) this.#inStep(sim, now);
        else if (!this.#outOfStep.has(sim.uuid)) {
          // The latest change that reached it: to its type, or to it alone.
          const since = Math.max(
            this.#changedAt[sim.type],
            this.#deviceChangedAt.get(sim.uuid) ?? 0,
          );
          this.#outOfStep.set(sim.uuid, { since, cause: "change" });
        }
        return;
      case "connected": {
        this.#reconnects.total++;
        this.#outOfStep.delete(sim.uuid);
        const restart = this.#restart;
        const backFromRestart = restart?.away.delete(sim) ?? false;
        if (inStep) return;
        this.#reconnects.outOfStep++;
        if (backFromRestart) restart!.awayBackOutOfStep++;
        this.#outOfStep.set(sim.uuid, {
          since: reconnectedSince(sim, state, now),
          cause: "reconnect",
        });
        return;
      }
      case "reported":
        if (inStep) this.#inStep(sim, now);
        return;
      case "disconnected":
        this.#outOfStep.delete(sim.uuid);
        // Churn took it away (nothing else drops a well-behaved device but a restart).
        if (sim.role === "normal" && !this.#stopChanging.signal.aborted && !this.#restarting) {
          this.#whileAway(sim, state.desired);
        }
        return;
    }
  }

  #inStep(sim: SimDevice, now: number): void {
    const outOfStep = this.#outOfStep.get(sim.uuid);
    if (!outOfStep) return;
    this.#outOfStep.delete(sim.uuid);
    const histogram = outOfStep.cause === "change" ? this.#afterChange : this.#afterReconnect;
    histogram.add(now - outOfStep.since);
  }

  /**
   * While a device is away: flips its own desired state (a lock's `locked`, a
   * light's `on`), so it comes back with something to do, and sends it the
   * ttl messages.
   */
  #whileAway(sim: SimDevice, desired: JsonObject): void {
    const manager = this.#manager;
    this.#track(sim, async () => {
      const patch: JsonObject = sim.type === "lock"
        ? { locked: desired.locked !== true }
        : { on: desired.on !== true };
      this.#deviceChangedAt.set(sim.uuid, performance.now());
      this.#awayChanges++;
      await manager.state.setDesired(sim.uuid, patch);
      await this.#ttlMessages(manager, sim);
    });
  }

  /** Sends a device that is away the ttl messages. */
  #sendTtl(sim: SimDevice): void {
    const manager = this.#manager;
    this.#track(sim, () => this.#ttlMessages(manager, sim));
  }

  /** Runs `work` for a device away, as one of the sends the scenario waits for. */
  #track(sim: SimDevice, work: () => Promise<void>): void {
    const task: Promise<void> = work()
      .catch((error) =>
        this.#context.recorder.error(`changing ${sim.uuid} while away failed: ${String(error)}`)
      )
      .finally(() => this.#sends.delete(task));
    this.#sends.add(task);
  }

  /** One message that outlives the device's absence, then one that cannot. */
  async #ttlMessages(manager: Manager, sim: SimDevice): Promise<void> {
    for (const [prefix, ttl] of [["k", KEPT_TTL_SECONDS], ["e", EXPIRING_TTL_SECONDS]] as const) {
      const tag = `${prefix}${++this.#tags}`;
      const message: TtlMessage = { sim, outcome: null, received: false };
      this.#messages.set(tag, message);
      // Acknowledged: the report says whether it was kept or delivered at once.
      const report = await manager.send(sim.uuid, `status #${tag}\n`, {
        ttl,
        ack: true,
        timeout: ACK_TIMEOUT_SECONDS,
      });
      message.outcome = report.kept === 1
        ? "kept"
        : report.acknowledged === 1
        ? "direct"
        : report.failed[0]?.reason ?? "unknown";
    }
  }

  /** Every connected mode-2 device in step with its desired state. */
  #fleetInStep(): boolean {
    for (const sim of this.#context.sims) {
      const state = sim.mode === 2 ? this.#manager.state.get(sim.uuid) : undefined;
      if (state?.connected && Object.keys(state.delta).length > 0) return false;
    }
    return true;
  }

  /** Polls `condition` for a restart's preparation; a deadline passed is a recorded error. */
  async #waitFor(what: string, condition: () => boolean): Promise<void> {
    const { signal, recorder } = this.#context;
    const held = await until(condition, RESTART_PREPARE_TIMEOUT_MS, { signal });
    if (!held && !signal?.aborted) {
      recorder.error(`waited ${RESTART_PREPARE_TIMEOUT_MS / 1000} s for ${what}`);
    }
  }

  /** The kept-message books of every manager of the run, the closed ones' included. */
  #keptStats(): KeptStats {
    const books = { ...this.#retiredKept };
    addKept(books, this.#manager.state.keptStats);
    return books;
  }

  /** Every connected device in step, every ttl send resolved, and the kept messages balanced. */
  async #settled(): Promise<boolean> {
    if (this.#sends.size > 0 || !this.#fleetInStep()) return false;
    const { kept, delivered, expired, dropped } = this.#keptStats();
    return kept === delivered + expired + dropped + await this.#stillKept();
  }

  /** Messages the manager's store still keeps, for the whole fleet. */
  async #stillKept(): Promise<number> {
    let count = 0;
    for (const sim of this.#context.sims) {
      count += (await this.#store.kept(sim.uuid)).length;
    }
    return count;
  }

  async #collect(settled: boolean): Promise<DesiredFigures> {
    const manager = this.#manager;
    const { sims } = this.#context;
    const connected: DesiredFigures["connected"][number][] = [];
    for (const sim of sims) {
      const state = sim.mode === 2 ? manager.state.get(sim.uuid) : undefined;
      if (state?.connected) connected.push({ uuid: sim.uuid, type: sim.type, delta: state.delta });
    }
    const ttl = { sent: 0, kept: 0, direct: 0 };
    const failed: Tally = {};
    const received = { kept: 0, direct: 0, failed: 0 };
    for (const message of this.#messages.values()) {
      ttl.sent++;
      const outcome = message.outcome ?? "unresolved";
      const bucket = outcome === "kept" || outcome === "direct" ? outcome : "failed";
      if (bucket === "failed") failed[outcome] = (failed[outcome] ?? 0) + 1;
      else ttl[bucket]++;
      if (message.received) received[bucket]++;
    }
    return {
      every: this.#everyMs / 1000,
      changes: this.#changes,
      awayChanges: this.#awayChanges,
      settled,
      mode1: sims.filter((sim) => sim.mode === 1).length,
      connected,
      afterChange: this.#afterChange.summary(),
      afterReconnect: this.#afterReconnect.summary(),
      reconnects: { ...this.#reconnects },
      ttl: {
        ...ttl,
        failed,
        received,
        manager: { ...this.#keptStats(), stillKept: await this.#stillKept() },
      },
      restart: this.#restart && {
        away: this.#restart.taken,
        awayBackOutOfStep: this.#restart.awayBackOutOfStep,
        devices: sims.filter((sim) => sim.mode === 2).length,
        known: Math.max(0, this.#restart.known),
      },
    };
  }
}

/**
 * The devices a restart takes away: of each type, an evenly spread
 * {@linkcode AWAY_AT_RESTART_SHARE} of `candidates`, at least one.
 */
function takenAway(candidates: readonly SimDevice[]): SimDevice[] {
  const away: SimDevice[] = [];
  for (const type of ["lock", "light"] as const) {
    const ofType = candidates.filter((sim) => sim.type === type);
    if (ofType.length === 0) continue;
    const count = Math.max(1, Math.round(ofType.length * AWAY_AT_RESTART_SHARE));
    for (let i = 0; i < count; i++) away.push(ofType[Math.floor((i * ofType.length) / count)]);
  }
  return away;
}

/** Whether `desired` holds every key of `expected` with its value (the values are scalars). */
function holds(desired: JsonObject, expected: JsonObject): boolean {
  return Object.entries(expected).every(([key, value]) => desired[key] === value);
}

/**
 * When a device that came back began its way back: its dial, or, for one
 * that reconnected by itself (no event marks that dial), the moment the
 * manager registered it (`lastSeen`), which leaves its handshake out.
 */
function reconnectedSince(sim: SimDevice, state: DeviceState, now: number): number {
  if (sim.dialAt > sim.droppedAt) return sim.dialAt;
  return now - Math.max(0, Date.now() - state.lastSeen);
}

function addKept(books: { -readonly [K in keyof KeptStats]: number }, add: KeptStats): void {
  books.kept += add.kept;
  books.delivered += add.delivered;
  books.expired += add.expired;
  books.dropped += add.dropped;
}
