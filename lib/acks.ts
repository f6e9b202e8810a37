/**
 * The manager's side of acknowledged delivery on one connection (feature
 * `ack`, MQTT's QoS 1): ids for `MESSAGE` frames, the sends waiting for their
 * `ACK`, sends held until the device's features are known, and failing them
 * all, with the reason, when the connection ends. Created on a connection's
 * first acknowledged send, so connections that never use acks pay nothing.
 *
 * @module
 */

import { type ConnectionEnd, DeliveryError } from "./errors.ts";
import { encodeAckedHeader, type Feature, type ProtocolMode } from "./protocol/mod.ts";
import { type Waiter, waitIn, type WaitLimits } from "./waiters.ts";

/** What acknowledged sends need from their connection. */
export interface AckTarget {
  readonly uuid: string;
  readonly mode: ProtocolMode;
  /** Why the connection ended; `null` while open. */
  readonly endedWith: ConnectionEnd | null;
  /** Whether the device uses `feature`; `undefined` while not yet known. */
  uses(feature: Feature): boolean | undefined;
  /** Queues bytes; false once ended or when the send buffer is full. */
  enqueue(bytes: Uint8Array): boolean;
}

/** Acknowledged sends on one connection. */
export class Acks {
  readonly #target: AckTarget;
  readonly #pending = new Map<number, Waiter<void>>();
  /** Sends waiting for the device's features to be known. */
  #held: { id: number; body: Uint8Array }[] = [];
  #nextId = 1;

  constructor(target: AckTarget) {
    this.#target = target;
  }

  /**
   * Sends `body` as a `MESSAGE` (now, or once the features are known) and
   * waits for its `ACK`. The bytes are not copied: a fan-out shares them.
   *
   * @param timeout Seconds; `Infinity` waits until the connection ends.
   * @param signal Ends the wait with its reason.
   * @throws {DeliveryError} `timeout`, `disconnected`, `buffer-full` or `unsupported`.
   */
  send(body: Uint8Array, timeout: number, signal?: AbortSignal): Promise<void> {
    const target = this.#target;
    return this.#send(body, { timeout, signal }).acked.catch((error: Error) => {
      if (error.name !== "TimeoutError") throw error;
      throw new DeliveryError("timeout", target.uuid, `no ACK within ${timeout} s`);
    });
  }

  /**
   * The same with no timer and no signal of its own: the caller ends the wait
   * with `cancel`. A fan-out gives its thousands of sends one deadline this
   * way (a listener per send on one signal would cost it O(n²)).
   */
  sendCancellable(body: Uint8Array): { acked: Promise<void>; cancel(error: Error): void } {
    return this.#send(body, { timeout: Infinity });
  }

  #send(
    body: Uint8Array,
    limits: WaitLimits,
  ): { acked: Promise<void>; cancel(error: Error): void } {
    const target = this.#target;
    const failed = (error: Error) => ({ acked: Promise.reject(error), cancel: () => {} });
    if (target.endedWith) return failed(this.#failure(target.endedWith));
    if (target.uses("ack") === false) return failed(this.#unsupported());
    const id = this.#nextId;
    this.#nextId = this.#nextId === 0xffff_ffff ? 1 : this.#nextId + 1;
    const holder: Waiter<void>[] = [];
    const acked = waitIn(holder, limits, "", () => this.#pending.delete(id));
    const waiter = holder[0];
    this.#pending.set(id, waiter);
    if (target.uses("ack") === undefined) this.#held.push({ id, body });
    else this.#write(id, body);
    return { acked, cancel: (error) => waiter.reject(error) };
  }

  /** The device's features are known: held sends go out, or fail as `unsupported`. */
  featuresKnown(): void {
    const held = this.#held;
    this.#held = [];
    for (const { id, body } of held) {
      if (this.#target.uses("ack")) this.#write(id, body);
      else this.#pending.get(id)?.reject(this.#unsupported());
    }
  }

  /** An `ACK` arrived. Returns false when nothing waits for this id (late, or never sent). */
  ack(id: number): boolean {
    const waiter = this.#pending.get(id);
    waiter?.resolve();
    return waiter !== undefined;
  }

  /** The connection ended: every waiting send fails with why. */
  ended(end: ConnectionEnd): void {
    const error = this.#failure(end);
    for (const waiter of [...this.#pending.values()]) waiter.reject(error);
  }

  #write(id: number, body: Uint8Array): void {
    // Header and body are queued apart: the body's bytes are shared by a fan-out.
    const target = this.#target;
    if (!target.enqueue(encodeAckedHeader(id, body.length)) || !target.enqueue(body)) {
      this.#pending.get(id)?.reject(this.#failure(target.endedWith));
    }
  }

  #unsupported(): DeliveryError {
    return new DeliveryError(
      "unsupported",
      this.#target.uuid,
      this.#target.mode === 1
        ? "mode 1 has no acknowledgements"
        : "the device does not use the ack feature (an older device?)",
    );
  }

  #failure(end: ConnectionEnd | null): DeliveryError {
    const reason = end?.reason === "buffer-full" ? "buffer-full" : "disconnected";
    const message = `the connection ended before the ACK: ${end?.message ?? "closed"}`;
    return new DeliveryError(reason, this.#target.uuid, message, { cause: end ?? undefined });
  }
}
