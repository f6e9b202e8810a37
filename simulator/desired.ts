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
 * When each device gets in step is read from `manager.state.changes()`: a
 * device is out of step from a change of desired state that leaves it a
 * non-empty delta (timed from the `setDesiredType` call), or from dialling
 * again when it comes back with one, until a report or a change empties it.
 * Times go into fixed histograms, so a long run holds no per-change records.
 * The judge (`judge.ts`) turns the figures into expectations.
 *
 * @module
 */

import type { DeviceState, DeviceStore, JsonObject, Manager, StateChange } from "@iot-manager/core";
import type { FakeType } from "./fake_devices.ts";
import type { Recorder, SimDevice } from "./fleet.ts";
import type { DesiredFigures } from "./judge.ts";
import { LatencyHistogram, type LatencySummary, type Tally } from "./stats.ts";
import { sleep } from "./wait.ts";

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
}

/** What the scenario needs from the run. */
export interface DesiredContext {
  readonly manager: Manager;
  /** The manager's store: what it still keeps for each device is counted there. */
  readonly store: DeviceStore;
  readonly sims: readonly SimDevice[];
  readonly recorder: Recorder;
  readonly signal?: AbortSignal;
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
 * const desired = new DesiredScenario({ manager, store, sims, recorder }, 1);
 * recorder.claimTag = (sim, tag) => desired.onTag(sim, tag);
 * desired.start();
 * // ... the steady phase, with churn ...
 * await desired.stop();
 * // ... churn stopped ...
 * await desired.settle();
 * console.log(desired.figures()?.connected.length);
 * ```
 */
export class DesiredScenario {
  readonly #context: DesiredContext;
  readonly #everyMs: number;
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
  readonly #stopWatching = new AbortController();
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
    for (const sim of context.sims) this.#byUuid.set(sim.uuid, sim);
  }

  /** Starts watching the manager's state changes, and changing the desired state. */
  start(): void {
    const { manager, sims, signal } = this.#context;
    const changes = manager.state.changes({
      // One change of desired state queues a change per device at once.
      highWaterMark: Math.max(1024, 4 * sims.length),
      signal: signal
        ? AbortSignal.any([signal, this.#stopWatching.signal])
        : this.#stopWatching.signal,
    });
    this.#watching = this.#watch(changes);
    this.#changing = this.#changeEvery();
  }

  /** Stops changing the desired state (the fleet goes on being watched). */
  async stop(): Promise<void> {
    this.#stopChanging.abort();
    await this.#changing;
  }

  /**
   * Once churn and steady traffic have stopped: makes one last change, waits
   * until every connected device is in step, every ttl send has resolved and
   * the manager's kept messages balance (or a deadline), then takes the
   * figures and stops watching.
   */
  async settle(): Promise<void> {
    await this.stop();
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

  async #changeEvery(): Promise<void> {
    const stop = this.#context.signal
      ? AbortSignal.any([this.#context.signal, this.#stopChanging.signal])
      : this.#stopChanging.signal;
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
        await this.#context.manager.state.setDesiredType(type, states[type]);
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
      case "connected":
        this.#reconnects.total++;
        this.#outOfStep.delete(sim.uuid);
        if (inStep) return;
        this.#reconnects.outOfStep++;
        this.#outOfStep.set(sim.uuid, {
          since: reconnectedSince(sim, state, now),
          cause: "reconnect",
        });
        return;
      case "reported":
        if (inStep) this.#inStep(sim, now);
        return;
      case "disconnected":
        this.#outOfStep.delete(sim.uuid);
        // Churn took it away (nothing else drops a well-behaved device).
        if (sim.role === "normal" && !this.#stopChanging.signal.aborted) {
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
   * light's `on`), so it comes back with something to do, and sends it one
   * message that outlives its absence, then one that cannot.
   */
  #whileAway(sim: SimDevice, desired: JsonObject): void {
    const { manager, recorder } = this.#context;
    const task: Promise<void> = (async () => {
      const patch: JsonObject = sim.type === "lock"
        ? { locked: desired.locked !== true }
        : { on: desired.on !== true };
      this.#deviceChangedAt.set(sim.uuid, performance.now());
      this.#awayChanges++;
      await manager.state.setDesired(sim.uuid, patch);
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
    })().catch((error) =>
      recorder.error(`changing ${sim.uuid} while away failed: ${String(error)}`)
    )
      .finally(() => this.#sends.delete(task));
    this.#sends.add(task);
  }

  /** Every connected device in step, every ttl send resolved, and the kept messages balanced. */
  async #settled(): Promise<boolean> {
    if (this.#sends.size > 0) return false;
    const { manager } = this.#context;
    for (const sim of this.#context.sims) {
      const state = sim.mode === 2 ? manager.state.get(sim.uuid) : undefined;
      if (state?.connected && Object.keys(state.delta).length > 0) return false;
    }
    const { kept, delivered, expired, dropped } = manager.state.keptStats;
    return kept === delivered + expired + dropped + await this.#stillKept();
  }

  /** Messages the manager's store still keeps, for the whole fleet. */
  async #stillKept(): Promise<number> {
    let count = 0;
    for (const sim of this.#context.sims) {
      count += (await this.#context.store.kept(sim.uuid)).length;
    }
    return count;
  }

  async #collect(settled: boolean): Promise<DesiredFigures> {
    const { manager, sims } = this.#context;
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
        manager: { ...manager.state.keptStats, stillKept: await this.#stillKept() },
      },
    };
  }
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
