/**
 * The run's ticker: four times a second it notes the process's peak memory
 * (and, against an external manager, the most devices connected at once),
 * hands the live figures to `onStatus` for the status line (`status.ts`) and,
 * when the run keeps one, adds them to its timeline (`timeline.ts`).
 *
 * @module
 */

import { countConnected, heartbeatTotals, type Recorder, type SimDevice } from "./fleet.ts";
import type { Ledger } from "./ledger.ts";
import type { LiveStatus } from "./options.ts";
import type { Tally } from "./stats.ts";
import type { TimelineRecorder } from "./timeline.ts";

/** Milliseconds between two ticks. */
export const TICK_MS = 250;

/** What the ticker reads from the run. */
export interface TickerContext {
  readonly sims: readonly SimDevice[];
  readonly recorder: Recorder;
  readonly ledger: Ledger;
  /** `performance.now()` at the run's start. */
  readonly started: number;
  /** The run's phase now. */
  readonly phase: () => string;
  /** True once the run has an embedded manager (which counts registrations itself). */
  readonly embedded: () => boolean;
  /** Devices the embedded manager has registered now; null without one. */
  readonly registered: () => number | null;
  /** Heartbeat rounds run so far, by every manager of the run. */
  readonly heartbeatRounds: () => number;
  readonly onStatus?: (status: LiveStatus) => void;
  /** Where each tick's figures go, when the run keeps a timeline. */
  readonly timeline?: TimelineRecorder;
}

/**
 * Ticks for one run.
 *
 * @example
 * ```ts ignore
 * const ticker = new StatusTicker(context);
 * ticker.start();
 * // ... the run ...
 * ticker.tick();
 * ticker.stop();
 * console.log(ticker.peakRss);
 * ```
 */
export class StatusTicker {
  /** The largest RSS seen, in bytes. */
  peakRss = 0;
  readonly #context: TickerContext;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(context: TickerContext) {
    this.#context = context;
  }

  /** Ticks every 250 ms until {@linkcode stop}. */
  start(): void {
    // The timeline starts with the run, a tick before the status line does.
    if (this.#context.timeline) this.#tick(false, false);
    this.#timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Stops ticking. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One tick, now.
   *
   * @param last True for the run's final tick, which the timeline always keeps.
   */
  tick(last = false): void {
    this.#tick(true, last);
  }

  #tick(status: boolean, last: boolean): void {
    const { sims, recorder, ledger, timeline } = this.#context;
    const onStatus = status ? this.#context.onStatus : undefined;
    const { rss, heapUsed, external } = Deno.memoryUsage();
    this.peakRss = Math.max(this.peakRss, rss);
    const connected = countConnected(sims);
    const embedded = this.#context.embedded();
    if (!embedded) ledger.peakConnected = Math.max(ledger.peakConnected, connected);
    if (!onStatus && !timeline) return;
    const totals = heartbeatTotals(sims, recorder);
    const elapsed = (performance.now() - this.#context.started) / 1000;
    onStatus?.({
      elapsed,
      phase: this.#context.phase(),
      connected,
      expected: sims.length,
      messages: totals.received + ledger.managerReceived,
      heartbeatsAnswered: totals.answered,
      errors: recorder.errorCount,
      rss,
    });
    timeline?.add({
      elapsed,
      connected: this.#context.registered() ?? connected,
      toDevices: recorder.commandsReceived,
      toManager: embedded ? ledger.managerReceived : recorder.linesSent,
      heartbeatsAnswered: totals.answered,
      heartbeatRounds: this.#context.heartbeatRounds(),
      disconnects: sum(embedded ? ledger.managerEnds : recorder.deviceEnds),
      errors: recorder.errorCount,
      rss,
      heapUsed,
      external,
    }, last);
  }
}

function sum(tally: Tally): number {
  let total = 0;
  for (const key in tally) total += tally[key];
  return total;
}
