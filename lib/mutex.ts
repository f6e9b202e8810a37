/**
 * A minimal async mutex: the seed's `connection_lock`, without threads.
 *
 * @module
 */

/**
 * Serialises async critical sections in call order.
 *
 * @example
 * ```ts
 * import { Mutex } from "./lib/mutex.ts";
 * const lock = new Mutex();
 * const result = await lock.run(async () => "only one at a time");
 * ```
 */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /**
   * Runs `task` once every task queued before it has finished.
   *
   * @returns What `task` returns.
   */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.then(() => {}, () => {});
    return result;
  }
}
