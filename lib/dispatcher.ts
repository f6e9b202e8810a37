/**
 * The manager's audience: what happens to a device's arrival, messages and
 * departure. Each goes to the application's iterators (bounded queues; when
 * one is full, reading from the sender pauses) and to its event handlers (run
 * on the {@linkcode HandlerPool}, at most `maxConcurrentHandlers` at once),
 * each for every device or for one type.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Client } from "./client.ts";
import type { Connection } from "./connection.ts";
import type { ConnectionEnd } from "./errors.ts";
import { withGrace } from "./graceful.ts";
import type { ManagerMetrics } from "./metrics.ts";
import { HandlerPool } from "./pool.ts";
import { AsyncQueue } from "./queue.ts";
import { Subscribers } from "./subscribers.ts";

/** A message from a device, as `Manager.messages()` yields it. */
export interface DeviceMessage {
  /** The device that sent it. */
  readonly client: Client;
  /** The message bytes. */
  readonly data: Uint8Array;
  /** The message decoded as UTF-8. */
  readonly text: string;
}

/** Event handlers, with the seed's arguments. Each may be async. */
export interface ManagerEvents {
  /** A device completed its handshake (the seed's `on_connect`). */
  connect: (client: Client) => unknown;
  /** A device sent a message (the seed's `on_message`). */
  message: (client: Client, data: Uint8Array) => unknown;
  /** A device's connection ended, with the reason. */
  disconnect: (client: Client, reason: ConnectionEnd) => unknown;
}

/** Narrows what an iterator or handler sees. */
export interface TypeFilter {
  /** Only devices of this type (the seed's `on_message_[type]`). */
  readonly type?: string;
  /** Ends the iterator (or removes the handler) when aborted. */
  readonly signal?: AbortSignal;
}

/** Options for `Manager.clients()`. */
export interface ClientsOptions extends TypeFilter {
  /** Yield the devices already connected first. @default true */
  readonly existing?: boolean;
}

/** Options for `Manager.messages()`. */
export interface MessagesOptions extends TypeFilter {
  /** Messages held unread before reading from the senders pauses. @default 1024 */
  readonly highWaterMark?: number;
}

/** How handlers run. */
export interface DispatcherOptions {
  /** Handler calls at once. */
  readonly maxConcurrentHandlers: number;
  /** Seconds after which a running handler's slot is freed (it is logged, not stopped). */
  readonly handlerTimeout: number;
}

const textDecoder = new TextDecoder();

class Message implements DeviceMessage {
  constructor(readonly client: Client, readonly data: Uint8Array) {}
  get text(): string {
    return textDecoder.decode(this.data);
  }
}

/** The manager's iterators and handlers, and the pool its handlers run on. */
export class Dispatcher {
  readonly #log: Logger;
  readonly #pool: HandlerPool;
  readonly #handlers = {
    connect: new Subscribers<ManagerEvents["connect"]>(),
    message: new Subscribers<ManagerEvents["message"]>(),
    disconnect: new Subscribers<ManagerEvents["disconnect"]>(),
  };
  readonly #clientSubs = new Subscribers<AsyncQueue<Client>>();
  readonly #messageSubs = new Subscribers<AsyncQueue<DeviceMessage>>();
  #closed = false;

  constructor(options: DispatcherOptions, log: Logger, metrics: ManagerMetrics) {
    this.#log = log;
    this.#pool = new HandlerPool({
      concurrency: options.maxConcurrentHandlers,
      onError: (error, context) => {
        metrics.handlersFailed++;
        log.error("A {event} handler failed for device {uuid}: {error}", {
          ...context,
          error,
          message: String(error),
        });
      },
      slotTimeout: options.handlerTimeout,
      onSlow: (context, seconds) => {
        metrics.handlersSlow++;
        log.warn(
          "A {event} handler for device {uuid} is still running after {seconds} s; its slot is freed",
          { ...context, seconds, reason: "handler-timeout" },
        );
      },
    });
  }

  /** Handler calls running and waiting for a slot. */
  get backlog(): { running: number; waiting: number } {
    return { running: this.#pool.running, waiting: this.#pool.waiting };
  }

  /** Adds a handler; returns a function that removes it. */
  on<E extends keyof ManagerEvents>(
    event: E,
    handler: ManagerEvents[E],
    filter: TypeFilter,
  ): () => void {
    const set = this.#handlers[event] as Subscribers<ManagerEvents[E]> | undefined;
    if (!set) throw new TypeError(`unknown event ${JSON.stringify(event)}`);
    return set.add(handler, filter.type, filter.signal);
  }

  /** An iterator of devices: `existing` ones first, then each that connects (or becomes the type). */
  clients(filter: TypeFilter, existing: Iterable<Client>): AsyncIterableIterator<Client> {
    const queue = this.#subscribe(this.#clientSubs, filter, Infinity);
    for (const client of existing) queue.push(client);
    return queue[Symbol.asyncIterator]();
  }

  /** An iterator of every matching device's messages. */
  messages(filter: TypeFilter, highWaterMark: number): AsyncIterableIterator<DeviceMessage> {
    return this.#subscribe(this.#messageSubs, filter, highWaterMark)[Symbol.asyncIterator]();
  }

  /** A device was admitted. */
  connected(connection: Connection): void {
    for (const queue of this.#clientSubs.matching(connection.type)) queue.push(connection);
    for (const handler of this.#handlers.connect.matching(connection.type)) {
      const context = { event: "connect", uuid: connection.uuid };
      this.#pool.run(() => handler(connection), context, "lifecycle");
    }
  }

  /** A device became `connection.type` by answering `getData()`: it joins that type's iterators. */
  retyped(connection: Connection): void {
    for (const queue of this.#clientSubs.ofType(connection.type)) queue.push(connection);
  }

  /**
   * A device's message, for iterators and handlers.
   *
   * @returns A promise to wait for before reading more from the device, when one is full.
   */
  message(connection: Connection, data: Uint8Array): Promise<void> | undefined {
    let stalls: Promise<void>[] | undefined;
    if (this.#messageSubs.size > 0) {
      const message = new Message(connection, data);
      for (const queue of this.#messageSubs.matching(connection.type)) {
        if (!queue.push(message)) (stalls ??= []).push(queue.writable());
      }
    }
    const context = { event: "message", uuid: connection.uuid };
    for (const handler of this.#handlers.message.matching(connection.type)) {
      if (!this.#pool.run(() => handler(connection, data), context)) {
        (stalls ??= []).push(this.#pool.writable());
      }
    }
    return stalls ? Promise.all(stalls).then(() => {}) : undefined;
  }

  /** A device's connection ended. */
  disconnected(connection: Connection, end: ConnectionEnd): void {
    const context = { event: "disconnect", uuid: connection.uuid };
    for (const handler of this.#handlers.disconnect.matching(connection.type)) {
      this.#pool.run(() => handler(connection, end), context, "lifecycle");
    }
  }

  /**
   * First step of a shutdown: device iterators end, new iterators end at once,
   * and queued message handler calls are dropped (logged, reason `shutdown`);
   * disconnect handlers still run, at once.
   */
  close(): void {
    this.#closed = true;
    for (const sub of this.#clientSubs) sub.target.stop();
    const dropped = this.#pool.close();
    if (dropped > 0) {
      this.#log.warn("Dropped {dropped} queued message handler calls at shutdown", {
        dropped,
        reason: "shutdown",
      });
    }
  }

  /**
   * Last step of a shutdown: waits up to `graceMs` for running handlers (those
   * still running are logged and left to finish), then ends message iterators.
   */
  async drain(graceMs: number): Promise<void> {
    await withGrace(this.#pool.idle(), graceMs);
    if (this.#pool.running > 0) {
      this.#log.warn(
        "{running} handler calls still running after the {seconds} s shutdown grace; close() returns without them",
        { running: this.#pool.running, seconds: graceMs / 1000, reason: "shutdown" },
      );
    }
    this.#pool.stop();
    for (const sub of this.#messageSubs) sub.target.stop();
  }

  #subscribe<T>(
    subs: Subscribers<AsyncQueue<T>>,
    filter: TypeFilter,
    highWaterMark: number,
  ): AsyncQueue<T> {
    let remove = () => {};
    const queue: AsyncQueue<T> = new AsyncQueue<T>({
      highWaterMark,
      onStop: () => remove(),
      signal: filter.signal,
    });
    if (this.#closed) queue.stop();
    else remove = subs.add(queue, filter.type);
    return queue;
  }
}
