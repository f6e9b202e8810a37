/**
 * Fleet-wide heartbeats: one timer for the whole fleet, not one per device.
 *
 * Every `rate` seconds a round pings each device that has no ping outstanding
 * and records when. `timeout` seconds after a round, one check removes every
 * device whose ping from that round (or earlier) is still unanswered. The
 * monitor talks to connections through {@linkcode HeartbeatTarget} only, in the
 * manner of nats.js `Heartbeat`, so it knows nothing of sockets.
 *
 * @module
 */

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
  #interval: ReturnType<typeof setInterval> | undefined;
  #checkTimer: ReturnType<typeof setTimeout> | undefined;
  /** Round times still awaiting their check, oldest first. */
  #rounds: number[] = [];
  #roundCount = 0;

  /**
   * @param options.rate Seconds between rounds.
   * @param options.timeout Seconds a device has to answer.
   * @param options.targets The live fleet, read afresh each round.
   */
  constructor(
    options: { rate: number; timeout: number; targets: () => Iterable<HeartbeatTarget> },
  ) {
    this.#rateMs = options.rate * 1000;
    this.#timeoutMs = options.timeout * 1000;
    this.#timeoutSeconds = options.timeout;
    this.#targets = options.targets;
  }

  /** Rounds started so far. */
  get rounds(): number {
    return this.#roundCount;
  }

  /** Starts the rounds; the first comes one `rate` from now. */
  start(): void {
    if (this.#interval !== undefined) return;
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
    this.#rounds.push(now);
    if (this.#checkTimer === undefined) this.#armCheck();
  }

  /** Stops all timers. Idempotent. */
  stop(): void {
    clearInterval(this.#interval);
    clearTimeout(this.#checkTimer);
    this.#interval = undefined;
    this.#checkTimer = undefined;
    this.#rounds = [];
  }

  #armCheck(): void {
    const round = this.#rounds[0];
    const delay = Math.max(0, round + this.#timeoutMs - performance.now());
    this.#checkTimer = setTimeout(() => {
      this.#checkTimer = undefined;
      this.#rounds.shift();
      this.#check(round);
      if (this.#rounds.length > 0) this.#armCheck();
    }, delay);
  }

  #check(round: number): void {
    const missed: HeartbeatTarget[] = [];
    for (const target of this.#targets()) {
      const sentAt = target.heartbeatSentAt;
      if (sentAt !== 0 && sentAt <= round && !target.heartbeatPaused) missed.push(target);
    }
    for (const target of missed) target.heartbeatMissed(this.#timeoutSeconds);
  }
}
