/**
 * Someone waiting for the next thing a connection receives (a message, a
 * `beat`, a `getinfo` answer), with a timeout and an abort signal, settled
 * once. Lists of them sit on the manager's `Connection`.
 *
 * @module
 */

import { TimeoutError } from "./errors.ts";

/** One pending wait; settling it removes it from its list. */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** How long to wait, and what ends the wait early. */
export interface WaitLimits {
  /** Seconds; `Infinity` waits for ever. */
  readonly timeout: number;
  /** Aborts the wait with its reason. */
  readonly signal?: AbortSignal;
}

/**
 * Adds a waiter to `list` and returns its promise. It settles once: with the
 * value, with an error, with {@linkcode TimeoutError} (`timeoutMessage`) after
 * `timeout` seconds, or with the signal's reason; either way it leaves the list
 * and its timer is cleared.
 *
 * @example
 * ```ts
 * import { type Waiter, waitIn } from "./lib/waiters.ts";
 * const waiters: Waiter<string>[] = [];
 * const next = waitIn(waiters, { timeout: 1 }, "nothing within 1 s");
 * waiters[0].resolve("hello");
 * console.log(await next, waiters.length); // "hello" 0
 * ```
 */
export function waitIn<T>(
  list: Waiter<T>[],
  limits: WaitLimits,
  timeoutMessage: string,
  onSettle?: () => void,
): Promise<T> {
  const { signal, timeout } = limits;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const abort = () => settle(() => reject(signal!.reason));
  const settle = (finish: () => void) => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", abort);
    const index = list.indexOf(waiter);
    if (index >= 0) list.splice(index, 1);
    onSettle?.();
    finish();
  };
  const waiter: Waiter<T> = {
    resolve: (value) => settle(() => resolve(value)),
    reject: (error) => settle(() => reject(error)),
  };
  signal?.addEventListener("abort", abort, { once: true });
  if (Number.isFinite(timeout)) {
    timer = setTimeout(() => waiter.reject(new TimeoutError(timeoutMessage)), timeout * 1000);
  }
  list.push(waiter);
  return promise;
}
