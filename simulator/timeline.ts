/**
 * The run over time, for plots (`--html`): at every tick of the status ticker
 * (`ticker.ts`, four times a second) the devices connected, the messages each
 * way, heartbeats, disconnects, errors and memory, and when each phase began.
 * Counts are running totals, so a rate is the difference of two samples over
 * the time between them, and thinning the samples loses none of the counts.
 * Bounded whatever the run's length: once {@linkcode TIMELINE_MAX_SAMPLES}
 * are held, every other one is dropped and from then on every other tick is
 * taken.
 *
 * @module
 */

/** Most samples a timeline holds: a 10-minute soak at two a second. */
export const TIMELINE_MAX_SAMPLES = 1200;
/** Most phase changes a timeline notes (a run has about ten). */
const MAX_PHASES = 100;

/** The run at one moment. Counts are totals since the start; sizes in bytes. */
export interface TimelineSample {
  /** Seconds since the run started. */
  readonly elapsed: number;
  /** Devices connected now (embedded: registered by the manager). */
  readonly connected: number;
  /** Command lines the devices received. */
  readonly toDevices: number;
  /** Lines the manager received (external: lines the devices sent). */
  readonly toManager: number;
  /** Heartbeats the devices answered. */
  readonly heartbeatsAnswered: number;
  /** Heartbeat rounds the manager ran (0 external). */
  readonly heartbeatRounds: number;
  /** Disconnects (embedded: as the manager saw them; external: as the devices did). */
  readonly disconnects: number;
  /** Unexpected errors. */
  readonly errors: number;
  /** Resident set size of the process. */
  readonly rss: number;
  /** V8 heap in use (garbage included: no GC is forced for these samples). */
  readonly heapUsed: number;
  /** Memory held outside the V8 heap by JS objects. */
  readonly external: number;
}

/** When a phase of the run began. */
export interface TimelinePhase {
  /** The phase, as the status line names it, e.g. `"steady"`. */
  readonly name: string;
  /** Seconds since the run started. */
  readonly at: number;
}

/** The run over time. */
export interface Timeline {
  /** Seconds between two samples at the end of the run (the tick, doubled at each thinning). */
  readonly every: number;
  /** The samples, oldest first; the last is taken as the run ends. */
  readonly samples: readonly TimelineSample[];
  /** The phases in the order they began. */
  readonly phases: readonly TimelinePhase[];
}

/**
 * Keeps a {@linkcode Timeline}, bounded.
 *
 * @example
 * ```ts
 * import { TimelineRecorder } from "./timeline.ts";
 * const recorder = new TimelineRecorder(0.25, 4);
 * recorder.phase("steady", 0);
 * for (let tick = 0; tick < 6; tick++) {
 *   recorder.add({
 *     elapsed: tick * 0.25, connected: 10, toDevices: tick, toManager: tick, heartbeatsAnswered: 0,
 *     heartbeatRounds: 0, disconnects: 0, errors: 0, rss: 0, heapUsed: 0, external: 0,
 *   });
 * }
 * const timeline = recorder.timeline();
 * console.log(timeline.every, timeline.samples.map((sample) => sample.elapsed)); // 0.5 [0, 0.5, 1]
 * ```
 */
export class TimelineRecorder {
  readonly #samples: TimelineSample[] = [];
  readonly #phases: TimelinePhase[] = [];
  readonly #tickSeconds: number;
  readonly #maxSamples: number;
  /** Samples are taken every `#stride`-th tick. */
  #stride = 1;
  #ticks = 0;

  /**
   * @param tickSeconds Seconds between two calls of {@linkcode add}.
   * @param maxSamples Most samples held (at least 2).
   */
  constructor(tickSeconds: number, maxSamples: number = TIMELINE_MAX_SAMPLES) {
    this.#tickSeconds = tickSeconds;
    this.#maxSamples = Math.max(2, maxSamples);
  }

  /**
   * Takes one tick's figures: kept when the tick is due, or when `last`.
   *
   * @param last True for the run's final figures, which are always kept.
   */
  add(sample: TimelineSample, last = false): void {
    const due = this.#ticks % this.#stride === 0;
    this.#ticks++;
    if (!due && !last) return;
    this.#samples.push(sample);
    if (this.#samples.length < this.#maxSamples) return;
    let kept = 0;
    for (let i = 0; i < this.#samples.length; i += 2) this.#samples[kept++] = this.#samples[i];
    this.#samples.length = kept;
    this.#stride *= 2;
  }

  /** Notes that the run entered `name` at `at` seconds since the start. */
  phase(name: string, at: number): void {
    if (this.#phases.at(-1)?.name === name || this.#phases.length >= MAX_PHASES) return;
    this.#phases.push({ name, at });
  }

  /** The timeline so far. */
  timeline(): Timeline {
    return {
      every: this.#tickSeconds * this.#stride,
      samples: [...this.#samples],
      phases: [...this.#phases],
    };
  }
}
