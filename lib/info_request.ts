/**
 * One `client.getData()`: the manager asks a connected device for its info
 * again (`getinfo`) and reads the answer with the handshake's own parser
 * (`HandshakeReader`, `parseHandshake`): in mode 1 from the reads as they
 * come (what follows the answer in the same read is the device's next
 * message), in mode 2 from one `INFO` frame. The answer must keep the UUID.
 *
 * @module
 */

import { InvalidInfo } from "./errors.ts";
import { decodeUtf8, type DeviceInfo, HandshakeReader, parseHandshake } from "./protocol/mod.ts";
import { type Waiter, waitIn, type WaitLimits } from "./waiters.ts";

/** What the answer must respect. */
export interface InfoRequestLimits {
  readonly validTypes: readonly string[];
  /** Largest answer, in bytes. */
  readonly maxSize: number;
}

/** A pending `getinfo`, settled once by the answer, a failure, the timeout or the signal. */
export class InfoRequest {
  /** The device's new info; rejects with {@linkcode InvalidInfo}, a `TimeoutError` or the end. */
  readonly answer: Promise<DeviceInfo>;
  readonly #waiter: Waiter<DeviceInfo>;
  readonly #reader: HandshakeReader;
  readonly #limits: InfoRequestLimits;
  readonly #uuid: string;
  #settled = false;

  /**
   * @param uuid The device's UUID, which the answer must keep.
   * @param limits What the answer must respect.
   * @param wait The timeout and signal of the wait.
   * @param timeoutMessage The `TimeoutError`'s message.
   */
  constructor(uuid: string, limits: InfoRequestLimits, wait: WaitLimits, timeoutMessage: string) {
    const holder: Waiter<DeviceInfo>[] = [];
    this.answer = waitIn(holder, wait, timeoutMessage, () => this.#settled = true);
    this.#waiter = holder[0];
    this.#uuid = uuid;
    this.#limits = limits;
    this.#reader = new HandshakeReader({ ...limits, mode: 1 });
  }

  /** True once answered, failed or given up. */
  get settled(): boolean {
    return this.#settled;
  }

  /**
   * Mode 1: one read from the device.
   *
   * @returns `null` while the answer is incomplete; once it is complete, the
   *   bytes after it in the same read (empty if none).
   */
  read(data: Uint8Array): Uint8Array | null {
    try {
      const scan = this.#reader.push(data);
      if (scan.status === "incomplete") return null;
      this.#answered(scan.info);
      return scan.leftover;
    } catch (error) {
      this.#waiter.reject(error as Error);
      return new Uint8Array(0);
    }
  }

  /** Mode 2: the `INFO` frame. */
  frame(payload: Uint8Array): void {
    try {
      this.#answered(parseHandshake(decodeUtf8(payload), this.#limits.validTypes));
    } catch (error) {
      this.#waiter.reject(error as Error);
    }
  }

  /** Gives up with `error` (the connection ended). */
  fail(error: Error): void {
    this.#waiter.reject(error);
  }

  #answered(info: DeviceInfo): void {
    if (info.uuid !== this.#uuid) {
      throw new InvalidInfo(
        "uuid",
        `getinfo answer changed the UUID from ${this.#uuid} to ${info.uuid}`,
      );
    }
    this.#waiter.resolve(info);
  }
}
