/**
 * Failures nothing handled, counted during a run instead of ending the
 * process: an unhandled promise rejection or an uncaught error fails the run
 * and the report says how many and why, but the run goes on to its report.
 *
 * @module
 */

import type { Recorder } from "./fleet.ts";

/** The counts so far, and the listeners removed on dispose. */
export interface ProcessFailures extends Disposable {
  /** The counts now, for the report. */
  counts(): { unhandledRejections: number; uncaughtErrors: number };
}

/**
 * Counts `unhandledrejection` and `error` events (and records each as an
 * error, with its stack) until disposed.
 *
 * @example
 * ```ts
 * import { Recorder } from "./fleet.ts";
 * import { watchProcessFailures } from "./process_failures.ts";
 * using failures = watchProcessFailures(new Recorder());
 * console.log(failures.counts()); // { unhandledRejections: 0, uncaughtErrors: 0 }
 * ```
 */
export function watchProcessFailures(recorder: Recorder): ProcessFailures {
  const counts = { unhandledRejections: 0, uncaughtErrors: 0 };
  const onRejection = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    counts.unhandledRejections++;
    recorder.error(`unhandled rejection: ${describe(event.reason)}`);
  };
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    counts.uncaughtErrors++;
    recorder.error(`uncaught error: ${describe(event.error ?? event.message)}`);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  return {
    counts: () => ({ ...counts }),
    [Symbol.dispose]() {
      globalThis.removeEventListener("unhandledrejection", onRejection);
      globalThis.removeEventListener("error", onError);
    },
  };
}

/** A rejection reason or thrown value as one line of text, with its stack when it has one. */
function describe(reason: unknown): string {
  return reason instanceof Error
    ? reason.stack ?? `${reason.name}: ${reason.message}`
    : String(reason);
}
