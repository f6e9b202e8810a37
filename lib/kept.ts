/**
 * Messages kept for devices that are away (`send(uuid, data, { ttl })`):
 * kept in the store within its bounds (the device's oldest dropped first),
 * delivered in order when the device is back, dropped once expired, every
 * message counted.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Connection } from "./connection.ts";
import { DeliveryError } from "./errors.ts";
import { encodeMessage } from "./protocol/mod.ts";
import type { DeviceStore, KeepLimits } from "./store.ts";

/** Counters of messages kept for absent devices. */
export interface KeptStats {
  /** Messages kept so far. */
  readonly kept: number;
  /** Kept messages delivered (written, or acknowledged by devices that speak `ack`). */
  readonly delivered: number;
  /** Kept messages whose `ttl` ran out before their device came back. */
  readonly expired: number;
  /** Kept messages dropped because a bound was reached (the device's oldest go first). */
  readonly dropped: number;
}

/** Kept messages, through a store. */
export class KeptMessages {
  readonly #store: DeviceStore;
  readonly #limits: KeepLimits;
  readonly #ackTimeout: number;
  readonly #log: Logger;
  readonly #stats = { kept: 0, delivered: 0, expired: 0, dropped: 0 };

  /**
   * @param store Where they are kept.
   * @param limits Bounds per device and in all.
   * @param ackTimeout Seconds a delivery waits for its `ACK` before the message is kept again.
   * @param log Where drops and expiries are logged.
   */
  constructor(store: DeviceStore, limits: KeepLimits, ackTimeout: number, log: Logger) {
    this.#store = store;
    this.#limits = limits;
    this.#ackTimeout = ackTimeout;
    this.#log = log;
  }

  /** A snapshot of the counters. */
  get stats(): KeptStats {
    return { ...this.#stats };
  }

  /**
   * Keeps a message for `uuid` until `ttlSeconds` from now.
   *
   * @returns Whether it was kept (false when the total bound is reached by other devices).
   */
  async keep(uuid: string, data: Uint8Array, ttlSeconds: number): Promise<boolean> {
    const result = await this.#store.keep(uuid, data, Date.now() + ttlSeconds * 1000, this.#limits);
    this.#stats.dropped += result.dropped;
    if (result.dropped > 0) {
      this.#log.warn("Dropped {dropped} older kept messages for {uuid}: the bound is reached", {
        uuid,
        dropped: result.dropped,
        reason: "kept-full",
      });
    }
    if (result.kept) this.#stats.kept++;
    return result.kept;
  }

  /**
   * Delivers what is kept for a device that is back, in order: acknowledged
   * when it speaks `ack`, else once written. Expired messages are dropped and
   * counted; a message not delivered is kept again for the next time.
   */
  async deliver(connection: Connection): Promise<void> {
    const uuid = connection.uuid;
    const now = Date.now();
    const messages = await this.#store.kept(uuid);
    const expired = messages.filter((message) => message.expiresAt <= now);
    if (expired.length > 0) {
      this.#stats.expired += expired.length;
      this.#log.info("{count} messages kept for {uuid} expired before it came back", {
        uuid,
        count: expired.length,
        reason: "expired",
      });
      await this.#store.removeKept(uuid, expired.map((message) => message.seq));
    }
    const live = messages.filter((message) => message.expiresAt > now);
    if (live.length === 0) return;
    // Removed from the store before sending, so a second delivery cannot start; put back on failure.
    await this.#store.removeKept(uuid, live.map((message) => message.seq));
    const acked = connection.uses("ack");
    const results = await Promise.allSettled(
      live.map((message) =>
        acked
          ? connection.sendAcked(message.data, { timeout: this.#ackTimeout })
          : connection.enqueue(encodeMessage(message.data, connection.mode))
          ? connection.flushed().then((written) => {
            if (!written) throw new DeliveryError("disconnected", uuid, "not written");
          })
          : Promise.reject(new DeliveryError("disconnected", uuid, "not queued"))
      ),
    );
    let failed = 0;
    for (const [i, result] of results.entries()) {
      if (result.status === "fulfilled") this.#stats.delivered++;
      else {
        failed++;
        const message = live[i];
        await this.#store.keep(uuid, message.data, message.expiresAt, this.#limits);
      }
    }
    if (failed > 0) {
      this.#log.info("{failed} kept messages for {uuid} were not delivered; kept for next time", {
        uuid,
        failed,
      });
    }
  }
}
