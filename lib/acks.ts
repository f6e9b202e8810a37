/**
 * The manager's side of acknowledged delivery on one connection: ids for
 * `MESSAGE` frames, the sends waiting for their `ACK`, and failing them all at
 * once when the connection ends. Created on a connection's first acknowledged
 * send, so connections that never use acks pay nothing.
 *
 * @module
 */

import { DeliveryError } from "./errors.ts";
import { type Waiter, waitIn } from "./waiters.ts";

/** The sends on one connection that wait for an `ACK`. */
export class AckTracker {
  readonly #uuid: string;
  readonly #pending = new Map<number, Waiter<void>>();
  #nextId = 1;

  /** @param uuid The device, for the errors. */
  constructor(uuid: string) {
    this.#uuid = uuid;
  }

  /** Sends waiting for their `ACK`. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Reserves an id and waits for its `ACK`.
   *
   * @param timeout Seconds; `Infinity` waits until the connection ends.
   * @param signal Ends the wait with its reason.
   * @returns The id to send, and a promise that resolves on its `ACK` or
   *   rejects with {@linkcode DeliveryError} (`timeout`, or what {@linkcode AckTracker.failAll} says).
   */
  track(timeout: number, signal?: AbortSignal): { id: number; acked: Promise<void> } {
    const id = this.#nextId;
    this.#nextId = this.#nextId === 0xffff_ffff ? 1 : this.#nextId + 1;
    const holder: Waiter<void>[] = [];
    const acked = waitIn(holder, { timeout, signal }, "", () => this.#pending.delete(id))
      .catch((error: Error) => {
        if (error instanceof DeliveryError) throw error;
        if (error.name === "TimeoutError") {
          throw new DeliveryError("timeout", this.#uuid, `no ACK within ${timeout} s`);
        }
        throw error;
      });
    this.#pending.set(id, holder[0]);
    return { id, acked };
  }

  /** An `ACK` arrived. Returns false when nothing waits for this id (late, or never sent). */
  ack(id: number): boolean {
    const waiter = this.#pending.get(id);
    waiter?.resolve();
    return waiter !== undefined;
  }

  /** Fails the send waiting for `id`. */
  fail(id: number, error: DeliveryError): void {
    this.#pending.get(id)?.reject(error);
  }

  /** Fails every waiting send with `error` (the connection ended). */
  failAll(error: DeliveryError): void {
    for (const waiter of [...this.#pending.values()]) waiter.reject(error);
  }
}
