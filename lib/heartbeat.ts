/**
 * Fleet-wide heartbeats: one timer for the whole fleet, not one per device.
 *
 * A round lasts `rate` seconds and is cut into up to {@linkcode MAX_SLICES}
 * slices. Each device is given a slice when first seen (in turn, so the fleet
 * is spread evenly) and keeps it: every slice of every round, the devices of
 * that slice with no ping outstanding are pinged. Each device is thus pinged
 * every `rate` seconds, as documented, and the fleet is smeared over the
 * round instead of written to in one burst (a burst of 10,000 pings and their
 * 10,000 answers cost twice as much per round trip as 1,000:
 * `bench/heartbeat_profile.ts`). One check timer, armed for the next ping to come due,
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
  /** The slice of the round this target is pinged in; -1 until the monitor gives it one. */
  heartbeatSlice: number;
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
  readonly #slices: number;
  #interval: ReturnType<typeof setInterval> | undefined;
  #checkTimer: ReturnType<typeof setTimeout> | undefined;
  #checking = false;
  #running = false;
  #roundCount = 0;
  /** The slice the next tick pings. */
  #slice = 0;
  /** The slice the next newcomer is given (in turn). */
  #nextSlice = 0;

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
    // Slices of at least MIN_SLICE_MS: a 0.1 s rate (tests) is cut in 10, 1 s and more in 20.
    this.#slices = Math.max(1, Math.min(MAX_SLICES, Math.floor(this.#rateMs / MIN_SLICE_MS)));
  }

  /** Rounds run to their end so far (every slice pinged). */
  get rounds(): number {
    return this.#roundCount;
  }

  /**
   * Starts the rounds: a tick every `rate / slices`, each pinging one slice of
   * the fleet, so each device is first pinged within one `rate` of now.
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#clock.acquire();
    this.#interval = setInterval(() => this.#tick(), this.#rateMs / this.#slices);
  }

  /** One slice of the round: its devices pinged; the round counted once its last slice is. */
  #tick(): void {
    this.#ping(this.#slice);
    this.#slice = (this.#slice + 1) % this.#slices;
    if (this.#slice === 0) this.#roundCount++;
  }

  /**
   * Pings the devices of `slice` that have no ping outstanding. It walks the
   * whole fleet (20 visits per device per round, tens of nanoseconds each)
   * rather than keep a list per slice that every connect and disconnect
   * would have to update.
   */
  #ping(slice: number): void {
    const now = performance.now();
    for (const target of this.#targets()) {
      if (target.heartbeatSlice < 0) {
        target.heartbeatSlice = this.#nextSlice;
        this.#nextSlice = (this.#nextSlice + 1) % this.#slices;
      }
      if (target.heartbeatSlice !== slice) continue;
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

/** Most slices a round is cut into. */
export const MAX_SLICES = 20;
/** Shortest slice, in milliseconds. */
const MIN_SLICE_MS = 10;

/** Most event-loop turns spent reading answers before a verdict. */
const MAX_EVIDENCE_TURNS = 100;
