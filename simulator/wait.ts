/**
 * Waiting, for the run and its parts: a sleep that an abort cuts short, and
 * polling a condition against a deadline (the run waits on figures that
 * devices and the manager update from their own callbacks).
 *
 * @module
 */

/**
 * Sleeps `ms`, or less when `signal` aborts.
 *
 * @example
 * ```ts
 * import { sleep } from "./wait.ts";
 * await sleep(10, AbortSignal.timeout(1000));
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** How {@linkcode until} polls. */
export interface UntilOptions {
  /** Milliseconds between two looks at the condition. @default 20 */
  readonly everyMs?: number;
  /** Stops waiting once aborted. */
  readonly signal?: AbortSignal;
}

/**
 * Polls `condition` until it holds, `timeoutMs` passes or `signal` aborts.
 *
 * @returns True when the condition held, false on the deadline or an abort.
 *
 * @example
 * ```ts
 * import { until } from "./wait.ts";
 * const start = performance.now();
 * console.log(await until(() => performance.now() - start > 30, 1000)); // true
 * ```
 */
export async function until(
  condition: () => boolean,
  timeoutMs: number,
  options: UntilOptions = {},
): Promise<boolean> {
  const { everyMs = 20, signal } = options;
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline || signal?.aborted) return false;
    await sleep(everyMs);
  }
  return true;
}
