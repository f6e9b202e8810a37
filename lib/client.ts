/**
 * What the application sees of one connected device: the seed's `Client`, and
 * the options of its methods. The manager's implementation is `Connection`
 * (lib/connection.ts).
 *
 * @module
 */

import type { ConnectionEnd } from "./errors.ts";
import type { DeviceInfo, ProtocolMode } from "./protocol/mod.ts";

/** Options for methods that wait for the device. */
export interface WaitOptions {
  /** Seconds to wait; `Infinity` waits for ever. @default 15 */
  readonly timeout?: number;
  /** Aborts the wait. */
  readonly signal?: AbortSignal;
}

/** Options for {@linkcode Client.send}. */
export interface SendOptions {
  /** Wait for the device's acknowledgement (`ACK`). @default false */
  readonly ack?: boolean;
  /** With `ack`: seconds to wait for it; `Infinity` waits until the connection ends. @default 15 */
  readonly timeout?: number;
  /** With `ack`: stops waiting (rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

/** Options for {@linkcode Client.messages}. */
export interface MessagesOfClientOptions {
  /** Messages held unread before reading from the device pauses. @default 1024 */
  readonly highWaterMark?: number;
  /** Ends the iterator when aborted. */
  readonly signal?: AbortSignal;
}

/** Options for {@linkcode Client.end}. */
export interface EndOptions {
  /** Why, for the logs and (mode 2) the device. @default "ended by the application" */
  readonly reason?: string;
  /** The seed's `raise_exception`: reject with {@linkcode ConnectionEnd} once ended. @default false */
  readonly raiseException?: boolean;
}

/**
 * A connected device, handed out by the manager once its handshake is done.
 * Iterate it for the device's messages; the iteration ends when it disconnects.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * manager.on("connect", async (client) => {
 *   await client.send("status");
 *   for await (const data of client) console.log(client.uuid, new TextDecoder().decode(data));
 * });
 * ```
 */
export interface Client extends AsyncIterable<Uint8Array>, AsyncDisposable {
  /** The device's UUID (lower case). */
  readonly uuid: string;
  /** The device's type, one of the manager's `validTypes`. */
  readonly type: string;
  /** The JSON object the device sent in its handshake (or last `getData()`). */
  readonly data: Record<string, unknown>;
  /** `{ uuid, type, data }`: the seed's `Data.get()` and `return_data()`. */
  readonly info: DeviceInfo;
  /** The device's address: the seed's `(IP, PORT)` pair. */
  readonly address: Deno.NetAddr;
  /** The protocol mode the device chose in its handshake. */
  readonly mode: ProtocolMode;
  /** True until the connection ends. */
  readonly connected: boolean;
  /** Resolves with the reason once the connection has ended. Never rejects. */
  readonly closed: Promise<ConnectionEnd>;
  /**
   * Sends one message. Resolves once written to the socket; with `ack: true`
   * (mode 2, feature `ack`), once the device has acknowledged receiving it:
   * MQTT's QoS 1.
   *
   * @returns `true` if written (acknowledged), `false` if the connection is
   *   (or became) closed; with `ack`, always `true` (failures reject).
   * @throws {DeliveryError} With `ack`: `timeout`, `disconnected`, `buffer-full`, or
   *   `unsupported` (mode 1, or a device that does not speak the `ack` feature).
   */
  send(data: string | Uint8Array, options?: SendOptions): Promise<boolean>;
  /**
   * Takes the next message the device sends, before handlers and iterators see it.
   *
   * @throws {TimeoutError} When nothing arrives in time (the connection stays open).
   * @throws {ConnectionEnd} When the connection ends first.
   */
  recv(options?: WaitOptions): Promise<Uint8Array>;
  /** {@linkcode Client.recv}, decoded as UTF-8. */
  recvString(options?: WaitOptions): Promise<string>;
  /**
   * Sends `data` and takes the device's next message as the answer. Requests on
   * one client run one at a time: the seed's `with client.connection_lock:`.
   *
   * @throws {TimeoutError} When no answer arrives in time.
   * @throws {ConnectionEnd} When the connection ends first.
   */
  request(data: string | Uint8Array, options?: WaitOptions): Promise<Uint8Array>;
  /** {@linkcode Client.request}, with the answer decoded as UTF-8. */
  requestString(data: string | Uint8Array, options?: WaitOptions): Promise<string>;
  /**
   * Asks the device for its info again (`getinfo`) and updates `data` (and
   * `type`). The UUID must stay the same.
   *
   * @throws {InvalidInfo} When the answer is malformed (the connection is then ended).
   * @throws {TimeoutError} When no answer arrives in time.
   */
  getData(options?: WaitOptions): Promise<DeviceInfo>;
  /**
   * Sends a heartbeat now and waits for the `beat`.
   *
   * @returns The round-trip time in milliseconds.
   * @throws {ConnectionEnd} When the device does not answer in time (it is then disconnected).
   */
  heartbeat(options?: WaitOptions): Promise<number>;
  /** Sends `end` and closes the connection. Idempotent. */
  end(options?: EndOptions): Promise<void>;
  /**
   * This device's messages as an async iterator, each iterator seeing every
   * message. When `highWaterMark` messages wait unread, reading from this
   * device pauses (it is not disconnected for missed heartbeats meanwhile).
   */
  messages(options?: MessagesOfClientOptions): AsyncIterableIterator<Uint8Array>;
}
