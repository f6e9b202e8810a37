/**
 * The run's ticker: four times a second it notes the process's peak memory
 * (and, against an external manager, the most devices connected at once) and
 * hands the live figures to `onStatus` for the status line (`status.ts`).
 *
 * @module
 */

import { countConnected, heartbeatTotals, type Recorder, type SimDevice } from "./fleet.ts";
import type { Ledger } from "./ledger.ts";
import type { LiveStatus } from "./options.ts";

const TICK_MS = 250;

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
  readonly onStatus?: (status: LiveStatus) => void;
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
    this.#timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Stops ticking. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One tick, now. */
  tick(): void {
    const { sims, recorder, ledger, onStatus } = this.#context;
    const rss = Deno.memoryUsage().rss;
    this.peakRss = Math.max(this.peakRss, rss);
    const connected = countConnected(sims);
    if (!this.#context.embedded()) ledger.peakConnected = Math.max(ledger.peakConnected, connected);
    if (!onStatus) return;
    const totals = heartbeatTotals(sims, recorder);
    onStatus({
      elapsed: (performance.now() - this.#context.started) / 1000,
      phase: this.#context.phase(),
      connected,
      expected: sims.length,
      messages: totals.received + ledger.managerReceived,
      heartbeatsAnswered: totals.answered,
      errors: recorder.errorCount,
      rss,
    });
  }
}
