/**
 * Fleet-wide heartbeats: one timer for the whole fleet, not one per device.
 *
 * Every `rate` seconds a round pings each device that has no ping outstanding
 * and records when. One check timer, armed for the next ping to come due,
 * removes every device whose ping has gone unanswered for `timeout` seconds of
 * the manager's running time: time the process was stalled (GC, a blocked
 * event loop, SIGSTOP; see `stall_clock.ts`) does not count, and before any
 * verdict the event loop is given turns to read answers already waiting in the
 * sockets. The monitor talks to connections through {@linkcode HeartbeatTarget}
 * only, in the manner of nats.js `Heartbeat`, so it knows nothing of sockets.
 *
 * @module
 */

import { type StallClock, stallClock } from "./stall_clock.ts";

/** What the monitor needs from a connection. */
export interface HeartbeatTarget {
  /** When the outstanding ping was sent (`performance.now()`), or 0 when none is. */
  heartbeatSentAt: number;
  /** True while the application is not consuming this device's messages (reads paused). */
  readonly heartbeatPaused: boolean;
  /** Sends a heartbeat request. */
  sendHeartbeat(): void;
  /** Called when the ping went unanswered past the timeout. */
  heartbeatMissed(timeoutSeconds: number): void;
}

/**
 * Pings a fleet on a fixed rate and reports devices that stop answering.
 *
 * @example
 * ```ts
 * import { HeartbeatMonitor } from "./lib/heartbeat.ts";
 * const monitor = new HeartbeatMonitor({ rate: 60, timeout: 15, targets: () => [] });
 * monitor.start();
 * monitor.stop();
 * ```
 */
export class HeartbeatMonitor {
  readonly #rateMs: number;
  readonly #timeoutMs: number;
  readonly #timeoutSeconds: number;
  readonly #targets: () => Iterable<HeartbeatTarget>;
  readonly #clock: StallClock;
  #interval: ReturnType<typeof setInterval> | undefined;
  #checkTimer: ReturnType<typeof setTimeout> | undefined;
  #checking = false;
  #running = false;
  #roundCount = 0;

  /**
   * @param options.rate Seconds between rounds.
   * @param options.timeout Seconds of the manager's running time a device has to answer.
   * @param options.targets The live fleet, read afresh each round.
   * @param options.clock Where stalls of this process are learned. @default stallClock
   */
  constructor(
    options: {
      rate: number;
      timeout: number;
      targets: () => Iterable<HeartbeatTarget>;
      clock?: StallClock;
    },
  ) {
    this.#rateMs = options.rate * 1000;
    this.#timeoutMs = options.timeout * 1000;
    this.#timeoutSeconds = options.timeout;
    this.#targets = options.targets;
    this.#clock = options.clock ?? stallClock;
  }

  /** Rounds started so far. */
  get rounds(): number {
    return this.#roundCount;
  }

  /** Starts the rounds; the first comes one `rate` from now. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#clock.acquire();
    this.#interval = setInterval(() => this.round(), this.#rateMs);
  }

  /** Runs one round now: pings every device without a ping outstanding. */
  round(): void {
    const now = performance.now();
    this.#roundCount++;
    for (const target of this.#targets()) {
      if (target.heartbeatSentAt === 0) {
        target.heartbeatSentAt = now;
        target.sendHeartbeat();
      }
    }
    if (this.#checkTimer === undefined && !this.#checking) this.#armCheck(this.#timeoutMs);
  }

  /** Stops all timers. Idempotent. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#interval);
    clearTimeout(this.#checkTimer);
    this.#interval = undefined;
    this.#checkTimer = undefined;
    this.#clock.release();
  }

  #armCheck(delayMs: number): void {
    this.#checkTimer = setTimeout(() => {
      this.#checkTimer = undefined;
      this.#checking = true;
      this.#check().finally(() => this.#checking = false);
    }, Math.max(1, delayMs));
  }

  /**
   * Judges the pings whose time is up, on evidence: answers that arrived while
   * the process was not running are read first, and only running time counts.
   */
  async #check(): Promise<void> {
    let late = this.#late();
    if (late.length > 0) {
      await this.#readWhatArrived(late);
      if (!this.#running) return;
      late = this.#late();
    }
    for (const target of late) target.heartbeatMissed(this.#timeoutSeconds);
    // Re-arm for the next ping to come due, if any is outstanding.
    let next = Infinity;
    for (const target of this.#targets()) {
      if (target.heartbeatSentAt === 0) continue;
      const left = target.heartbeatPaused
        ? this.#timeoutMs
        : this.#timeoutMs - this.#clock.elapsedSince(target.heartbeatSentAt);
      next = Math.min(next, left);
    }
    if (next !== Infinity && this.#running && this.#checkTimer === undefined) this.#armCheck(next);
  }

  /** Targets whose ping has been outstanding for `timeout` of running time. */
  #late(): HeartbeatTarget[] {
    const late: HeartbeatTarget[] = [];
    const now = performance.now();
    for (const target of this.#targets()) {
      const sentAt = target.heartbeatSentAt;
      if (sentAt === 0 || target.heartbeatPaused) continue;
      if (this.#clock.elapsedSince(sentAt, now) >= this.#timeoutMs) late.push(target);
    }
    return late;
  }

  /**
   * Lets the runtime deliver what the sockets already hold: turns of the event
   * loop until two in a row bring no answer from these targets.
   */
  async #readWhatArrived(targets: HeartbeatTarget[]): Promise<void> {
    const sentAt = targets.map((target) => target.heartbeatSentAt);
    const unanswered = () =>
      targets.filter((target, i) => target.heartbeatSentAt === sentAt[i]).length;
    let before = unanswered();
    for (let turn = 0, quiet = 0; turn < MAX_EVIDENCE_TURNS && quiet < 2 && before > 0; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      const now = unanswered();
      quiet = now === before ? quiet + 1 : 0;
      before = now;
    }
  }
}

/** Most event-loop turns spent reading answers before a verdict. */
const MAX_EVIDENCE_TURNS = 100;
