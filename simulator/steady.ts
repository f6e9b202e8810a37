/**
 * Steady traffic for long runs: a broadcast every few seconds (`sendAll` and
 * `sendType` in turn) and a stream of `client.request()` round trips to random
 * live devices. Each is checked as it happens and kept only as running totals,
 * so a ten-minute soak holds no per-message records.
 *
 * A broadcast is due at every device that is {@linkcode SimDevice.live} when
 * it is sent; it must reach each of them within {@linkcode DELIVERY_WINDOW_MS},
 * except a device that churn closes before the message arrived (excused).
 *
 * @module
 */

import type { Client, Manager } from "@iot-manager/core";
import type { FakeType } from "./fake_devices.ts";
import type { Recorder, SimDevice } from "./fleet.ts";
import { isValidAnswer, type Replies } from "./replies.ts";
import { type LatencyDistribution, LatencyHistogram, type LatencySummary } from "./stats.ts";

/** The steady broadcasts, in turn. */
const STEADY_BROADCASTS: readonly { target: "all" | FakeType; command: string }[] = [
  { target: "all", command: "status" },
  { target: "light", command: "toggle" },
  { target: "all", command: "status" },
  { target: "lock", command: "lock" },
];
/** A broadcast that has not reached a live device this long after the send has missed it. */
export const DELIVERY_WINDOW_MS = 30_000;
/** Seconds a steady request may take. */
const REQUEST_TIMEOUT_SECONDS = 15;
const REQUEST_TICK_MS = 100;
const SWEEP_MS = 1000;

/** What the steady phase sends. */
export interface SteadyOptions {
  /** Seconds between steady broadcasts; 0 sends none. */
  readonly broadcastEvery: number;
  /** Request round trips per second; 0 sends none. */
  readonly requestsPerSecond: number;
}

/** Steady traffic, as totals. Latencies in milliseconds. */
export interface SteadyReport {
  /** Steady broadcasts. */
  readonly broadcasts: {
    /** Broadcasts sent. */
    readonly sent: number;
    /** Deliveries due: live devices of the target when each broadcast was sent. */
    readonly due: number;
    /** Deliveries seen. */
    readonly delivered: number;
    /** Due deliveries not checked because churn closed the device before the message arrived. */
    readonly excused: number;
    /** Due deliveries that did not happen within the delivery window. */
    readonly missed: number;
    /** From just before the send to the device's consumer having it. */
    readonly latency: LatencySummary;
  };
  /** Steady `client.request("status #tag")` round trips. */
  readonly requests: {
    readonly sent: number;
    /** Answered with the right tag and fields. */
    readonly answered: number;
    /** Not checked because churn closed the device before the answer came back. */
    readonly excused: number;
    /** Wrong answer, timeout, or the connection ended for another reason. */
    readonly failed: number;
    readonly latency: LatencySummary;
  };
}

/** What steady traffic needs from the run. */
export interface SteadyContext {
  readonly manager: Manager;
  readonly sims: readonly SimDevice[];
  readonly recorder: Recorder;
  readonly replies: Replies;
  readonly random: () => number;
  /** True once the run is aborted. */
  readonly aborted: () => boolean;
  /** Takes the number of devices a send was queued for. */
  readonly onQueued: (count: number) => void;
  /** Takes the message a `request()` returned, to count its lines and offer them to `replies`. */
  readonly onRequestReply: (client: Client, text: string) => void;
}

interface PendingBroadcast {
  readonly tag: string;
  readonly what: string;
  readonly sentAt: number;
  readonly waiting: Set<SimDevice>;
}

/**
 * The steady traffic of one run.
 *
 * @example
 * ```ts ignore
 * const steady = new SteadyTraffic(context, { broadcastEvery: 5, requestsPerSecond: 20 });
 * recorder.claimTag = (sim, tag, at) => steady.onTag(sim, tag, at);
 * steady.start();
 * // ... the steady phase ...
 * await steady.stop();
 * console.log(steady.report().broadcasts.missed); // 0
 * ```
 */
export class SteadyTraffic {
  readonly #context: SteadyContext;
  readonly #options: SteadyOptions;
  readonly #pending = new Map<string, PendingBroadcast>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #broadcastLatency = new LatencyHistogram();
  readonly #requestLatency = new LatencyHistogram();
  readonly #broadcasts = { sent: 0, due: 0, delivered: 0, excused: 0, missed: 0 };
  readonly #requests = { sent: 0, answered: 0, excused: 0, failed: 0 };
  #timers: ReturnType<typeof setInterval>[] = [];
  #requestCredit = 0;

  constructor(context: SteadyContext, options: SteadyOptions) {
    this.#context = context;
    this.#options = options;
  }

  /** Starts sending. */
  start(): void {
    const { broadcastEvery, requestsPerSecond } = this.#options;
    if (broadcastEvery > 0) {
      this.#timers.push(setInterval(() => this.#broadcast(), broadcastEvery * 1000));
    }
    if (requestsPerSecond > 0) {
      this.#timers.push(setInterval(() => {
        this.#requestCredit += (requestsPerSecond * REQUEST_TICK_MS) / 1000;
        for (; this.#requestCredit >= 1; this.#requestCredit--) this.#request();
      }, REQUEST_TICK_MS));
    }
    this.#timers.push(setInterval(() => this.#expire(), SWEEP_MS));
  }

  /**
   * Stops sending and waits until every broadcast has reached its devices (or
   * its delivery window closed) and every request has settled.
   */
  async stop(): Promise<void> {
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    while ((this.#pending.size > 0 || this.#inFlight.size > 0) && !this.#context.aborted()) {
      this.#expire();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Takes a tag a device received. Returns true for steady tags (`s…`
   * broadcasts, counted here; `q…` requests, checked at the manager).
   */
  onTag(sim: SimDevice, tag: string, receivedAt: number): boolean {
    if (tag.startsWith("q")) return true;
    if (!tag.startsWith("s")) return false;
    const pending = this.#pending.get(tag);
    if (pending?.waiting.delete(sim)) {
      this.#broadcasts.delivered++;
      this.#broadcastLatency.add(receivedAt - pending.sentAt);
      if (pending.waiting.size === 0) this.#pending.delete(tag);
    }
    return true;
  }

  /** Churn is about to close `sim`: broadcasts still on their way to it are excused. */
  excuse(sim: SimDevice): void {
    for (const [tag, pending] of this.#pending) {
      if (!pending.waiting.delete(sim)) continue;
      this.#broadcasts.excused++;
      if (pending.waiting.size === 0) this.#pending.delete(tag);
    }
  }

  /** The totals so far. */
  report(): SteadyReport {
    return {
      broadcasts: { ...this.#broadcasts, latency: this.#broadcastLatency.summary() },
      requests: { ...this.#requests, latency: this.#requestLatency.summary() },
    };
  }

  /** The latencies so far as distributions, for plots. */
  distributions(): { broadcasts: LatencyDistribution; requests: LatencyDistribution } {
    return {
      broadcasts: this.#broadcastLatency.distribution(),
      requests: this.#requestLatency.distribution(),
    };
  }

  #broadcast(): void {
    const { manager, sims, onQueued, recorder } = this.#context;
    const step = STEADY_BROADCASTS[this.#broadcasts.sent % STEADY_BROADCASTS.length];
    const tag = `s${++this.#broadcasts.sent}`;
    const line = `${step.command} #${tag}\n`;
    const waiting = new Set<SimDevice>();
    for (const sim of sims) {
      if (sim.live && (step.target === "all" || sim.type === step.target)) waiting.add(sim);
    }
    this.#broadcasts.due += waiting.size;
    const sentAt = performance.now();
    // Both fan out synchronously, so `waiting` is exactly the live part of who they reach.
    const sent = step.target === "all"
      ? manager.sendAll(line)
      : manager.sendType(step.target, line);
    sent.then(onQueued, (error) => recorder.error(`steady broadcast ${tag} failed: ${error}`));
    const what = step.target === "all"
      ? `sendAll("${step.command}")`
      : `sendType("${step.target}", "${step.command}")`;
    if (waiting.size > 0) this.#pending.set(tag, { tag, what, sentAt, waiting });
  }

  /** Counts the devices a broadcast has not reached within the window as missed. */
  #expire(): void {
    const now = performance.now();
    for (const [tag, pending] of this.#pending) {
      if (now - pending.sentAt < DELIVERY_WINDOW_MS) continue;
      this.#pending.delete(tag);
      this.#broadcasts.missed += pending.waiting.size;
      const examples = [...pending.waiting].slice(0, 3).map((sim) =>
        `${sim.type} ${sim.uuid} (mode ${sim.mode}, ${sim.live ? "still live" : "gone"})`
      );
      this.#context.recorder.error(
        `steady broadcast ${tag} (${pending.what}) missed ${pending.waiting.size} live ` +
          `device(s) in ${DELIVERY_WINDOW_MS / 1000} s: ${examples.join(", ")}`,
      );
    }
  }

  #request(): void {
    const { sims, random } = this.#context;
    let sim: SimDevice | undefined;
    for (let tries = 0; tries < 20 && !sim?.live; tries++) {
      sim = sims[Math.floor(random() * sims.length)];
    }
    const client = sim?.client;
    if (!sim?.live || !client) return;
    const tag = `q${++this.#requests.sent}`;
    this.#context.onQueued(1);
    const task: Promise<void> = this.#roundTrip(sim, client, tag)
      .catch((error) => this.#context.recorder.error(`steady request ${tag} failed: ${error}`))
      .finally(() => this.#inFlight.delete(task));
    this.#inFlight.add(task);
  }

  async #roundTrip(sim: SimDevice, client: Client, tag: string): Promise<void> {
    const { replies, recorder, onRequestReply } = this.#context;
    const churnCycles = sim.churnCycles;
    const result = await replies.roundTrip(
      client,
      "status",
      tag,
      REQUEST_TIMEOUT_SECONDS,
      (text) => onRequestReply(client, text),
    );
    if (result.ok && isValidAnswer(sim.type, result.reply, false)) {
      this.#requests.answered++;
      this.#requestLatency.add(result.ms);
    } else if (!result.ok && sim.churnCycles !== churnCycles) {
      this.#requests.excused++;
    } else {
      this.#requests.failed++;
      recorder.error(
        `steady request ${tag} to ${sim.type} ${sim.uuid} (mode ${sim.mode}): ` +
          (result.ok ? `bad answer ${JSON.stringify(result.reply)}` : result.error.message),
      );
    }
  }
}
