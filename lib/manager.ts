/**
 * The manager: accepts devices over TCP or TLS, keeps the registry, runs the
 * fleet-wide heartbeat, fans messages out and hands the application its
 * devices and their messages as async iterators or event handlers.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import type { Client } from "./client.ts";
import { Connection, type ConnectionHooks } from "./connection.ts";
import { ConnectionEnd, InvalidInfo } from "./errors.ts";
import type { Authenticate } from "./auth.ts";
import type { ClusterAdapter, ClusterNode } from "./cluster.ts";
import { withGrace } from "./graceful.ts";
import { admit, type Handshake } from "./handshake.ts";
import { listenTransport, type Transport, type TransportListener } from "./transport.ts";
import { HeartbeatMonitor } from "./heartbeat.ts";
import { HandlerPool } from "./pool.ts";
import { type DeviceInfo, encodeFrame, FrameType, type ProtocolMode } from "./protocol/mod.ts";
import { AsyncQueue } from "./queue.ts";
import { Registry } from "./registry.ts";
import { Router } from "./routing.ts";
import { Subscribers, wants } from "./subscribers.ts";
import {
  type ManagerOptions,
  type ResolvedOptions,
  resolveOptions,
  validateOptions,
} from "./manager_options.ts";
import { WriteWatchdog } from "./watchdog.ts";

/** A message from a device, as {@linkcode Manager.messages} yields it. */
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

/** Options for {@linkcode Manager.clients}. */
export interface ClientsOptions extends TypeFilter {
  /** Yield the devices already connected first. @default true */
  readonly existing?: boolean;
}

/** Options for {@linkcode Manager.messages}. */
export interface MessagesOptions extends TypeFilter {
  /** Messages held unread before reading from the senders pauses. @default 1024 */
  readonly highWaterMark?: number;
}

const textDecoder = new TextDecoder();
const CLOSE_GRACE_MS = 5000;
/** A newcomer claiming a UUID taken over this recently makes the manager check the holder (ms). */
const UUID_CONFLICT_WINDOW_MS = 60_000;
/** Longest wait for the holder's heartbeat answer in that check (s; at most heartbeatTimeout). */
const HOLDER_PROBE_SECONDS = 2;
const MODE1_READ_SIZE = 16 * 1024;
// Idle devices only ever receive 5-byte heartbeat frames: 64 bytes hold one; busy ones grow.
const MODE2_READ_SIZES = [64, 64 * 1024] as const;

class Message implements DeviceMessage {
  constructor(readonly client: Client, readonly data: Uint8Array) {}
  get text(): string {
    return textDecoder.decode(this.data);
  }
}

/**
 * Accepts devices and lets the application talk to them one by one, by type,
 * or all at once: the seed's `Manager`.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 0 });
 * console.log(`listening on ${manager.port}`);
 * manager.on("message", (client, data) => console.log(client.uuid, data), { type: "lock" });
 * const reached = await manager.sendType("light", "on");
 * ```
 */
export class Manager implements AsyncIterable<Client>, AsyncDisposable {
  /** The interface the manager listens on. */
  readonly hostname: string;
  /** The port devices connect to (the OS's pick when `port: 0` was asked). */
  readonly port: number;
  /** True when listening with TLS. */
  readonly tls: boolean;
  /** The accepted device types. */
  readonly validTypes: readonly string[];
  /** Seconds between heartbeat rounds. */
  readonly heartbeatRate: number;
  /** Seconds a device has to answer a heartbeat. */
  readonly heartbeatTimeout: number;
  /** The LogTape category this manager logs under; `getLogger(manager.logCategory)` is the seed's `logger`. */
  readonly logCategory: readonly string[];
  readonly #log: Logger;
  readonly #clientLog: Logger;

  readonly #listener: TransportListener;
  readonly #options: ResolvedOptions;
  readonly #cluster: ClusterAdapter | undefined;
  /** This manager's id among its cluster peers. */
  readonly nodeId: string = crypto.randomUUID();
  readonly #authenticate: Authenticate | undefined;
  readonly #watchdog: WriteWatchdog;
  readonly #registry = new Registry<Connection>();
  readonly #router: Router;
  readonly #heartbeat: HeartbeatMonitor;
  readonly #pool: HandlerPool;
  readonly #hooks: ConnectionHooks;
  readonly #handlers = {
    connect: new Subscribers<ManagerEvents["connect"]>(),
    message: new Subscribers<ManagerEvents["message"]>(),
    disconnect: new Subscribers<ManagerEvents["disconnect"]>(),
  };
  readonly #clientSubs = new Subscribers<AsyncQueue<Client>>();
  readonly #messageSubs = new Subscribers<AsyncQueue<DeviceMessage>>();
  readonly #handshaking = new Set<Transport>();
  readonly #tasks = new Set<Promise<void>>();
  #closing: Promise<void> | null = null;

  /** Use {@linkcode Manager.listen}. */
  private constructor(listener: TransportListener, options: ManagerOptions) {
    const addr = listener.addr as Deno.NetAddr;
    this.#listener = listener;
    this.hostname = addr.hostname;
    this.port = addr.port;
    this.tls = options.tls !== undefined;
    this.validTypes = [...options.validTypes];
    this.#options = resolveOptions(options, this.validTypes, addr);
    this.#authenticate = options.authenticate;
    this.#cluster = options.cluster;
    this.#router = new Router(this.#registry, options.cluster);
    this.heartbeatRate = this.#options.heartbeatRate;
    this.heartbeatTimeout = this.#options.heartbeatTimeout;
    const category = options.logCategory ?? ["iot-manager"];
    this.logCategory = typeof category === "string" ? [category] : [...category];
    this.#log = getLogger([...this.logCategory, "manager"]);
    this.#clientLog = getLogger([...this.logCategory, "client"]);
    this.#pool = new HandlerPool({
      concurrency: this.#options.maxConcurrentHandlers,
      onError: (error, context) =>
        this.#log.error("A {event} handler failed for device {uuid}: {error}", {
          ...context,
          error,
          message: String(error),
        }),
      slotTimeout: this.#options.handlerTimeout,
      onSlow: (context, seconds) =>
        this.#log.warn(
          "A {event} handler for device {uuid} is still running after {seconds} s; its slot is freed",
          { ...context, seconds, reason: "handler-timeout" },
        ),
    });
    this.#heartbeat = new HeartbeatMonitor({
      rate: this.heartbeatRate,
      timeout: this.heartbeatTimeout,
      targets: () => this.#registry.all(),
    });
    this.#hooks = {
      onMessage: (connection, data) => this.#onMessage(connection, data),
      onClose: (connection, end) => this.#onClose(connection, end),
      onInfoChanged: (connection, previousType) => {
        // Only a device still registered (not replaced meanwhile) is re-indexed and mirrored.
        if (!this.#registry.retype(connection)) return;
        this.#cluster?.deviceConnected(connection.info);
        if (previousType === connection.type) return;
        // A device that became this type joins the iterators of this type.
        for (const sub of this.#clientSubs) {
          if (sub.type === connection.type) sub.target.push(connection);
        }
      },
    };
    this.#watchdog = new WriteWatchdog({
      timeout: this.#options.writeTimeout,
      targets: () => this.#registry.all(),
    });
    this.#heartbeat.start();
    this.#watchdog.start();
    this.#track(this.#acceptLoop());
  }

  /**
   * Starts a manager listening on `hostname:port`, with TLS when `tls` is given.
   *
   * @throws {TypeError} On invalid options.
   * @throws {Deno.errors.AddrInUse} When the port is taken.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * const manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * await manager.close();
   * ```
   */
  static async listen(options: ManagerOptions): Promise<Manager> {
    validateOptions(options);
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 8595;
    const listener = await listenTransport({ hostname, port, tls: options.tls });
    const manager = new Manager(listener, options);
    try {
      await options.cluster?.attach(manager.#clusterNode());
    } catch (error) {
      await manager.close();
      throw error;
    }
    return manager;
  }

  /** Number of connected devices. */
  get size(): number {
    return this.#registry.size;
  }

  /** Connections accepted but still in handshake. */
  get pendingHandshakes(): number {
    return this.#handshaking.size;
  }

  /** Heartbeat rounds run so far. */
  get heartbeatRounds(): number {
    return this.#heartbeat.rounds;
  }

  /** The connected device with this UUID. */
  get(uuid: string): Client | undefined {
    return this.#registry.get(uuid.toLowerCase());
  }

  /** Number of connected devices of `type`. */
  countOfType(type: string): number {
    return this.#registry.countOfType(type);
  }

  /**
   * Every connected device's `{ uuid, type, data }`: the seed's `get_client_data()`.
   * With a `cluster` adapter, the devices of every manager in the cluster.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * console.log(JSON.stringify(manager.getClientData())); // []
   * ```
   */
  getClientData(): DeviceInfo[] {
    return this.#router.clientData();
  }

  /**
   * Sends `data` to every connected device (the seed's `send_all` and `send_all_string`).
   * The message is encoded once per protocol mode and queued on each connection.
   *
   * @returns How many devices it was queued for.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * console.log(await manager.sendAll("off")); // 0: nobody is connected yet
   * ```
   */
  sendAll(data: string | Uint8Array): Promise<number> {
    return this.#router.sendAll(data);
  }

  /**
   * Sends `data` to every device of `type` (the seed's `send_type` and `send_type_string`).
   *
   * @returns How many devices it was queued for.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * await manager.sendType("light", "brightness 40");
   * ```
   */
  sendType(type: string, data: string | Uint8Array): Promise<number> {
    return this.#router.sendType(type, data);
  }

  /**
   * Sends `data` to the device with this UUID (the seed's `send` and `send_string`).
   *
   * @returns 1 when queued, 0 when no such device is connected.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
   * await manager.send("1862cfe1-5dab-4d8e-a946-50d6728f830f", "unlock"); // 0
   * ```
   */
  send(uuid: string, data: string | Uint8Array): Promise<number> {
    return this.#router.send(uuid.toLowerCase(), data);
  }

  /**
   * Registers an event handler (the seed's `on_connect`, `on_message`,
   * `on_connect_[type]`, `on_message_[type]`, plus `disconnect`). Handlers may
   * be async; at most `maxConcurrentHandlers` run at once and one that throws is
   * logged without affecting the others.
   *
   * @returns A function that removes the handler.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * const off = manager.on("connect", (client) => console.log("hello", client.uuid), {
   *   type: "light",
   * });
   * off();
   * ```
   */
  on<E extends keyof ManagerEvents>(
    event: E,
    handler: ManagerEvents[E],
    options: TypeFilter = {},
  ): () => void {
    const set = this.#handlers[event] as Subscribers<ManagerEvents[E]> | undefined;
    if (!set) throw new TypeError(`unknown event ${JSON.stringify(event)}`);
    return set.add(handler, options.type, options.signal);
  }

  /**
   * Connected devices as an async iterator: those already connected (unless
   * `existing: false`), then each new one as it completes its handshake. With
   * `type`, also a device that becomes that type by answering `getData()`
   * differently. Ends when the manager closes.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * (async () => {
   *   for await (const light of manager.clients({ type: "light" })) await light.send("on");
   * })();
   * ```
   */
  clients(options: ClientsOptions = {}): AsyncIterableIterator<Client> {
    const queue = this.#subscribe(this.#clientSubs, options, Infinity);
    if (options.existing ?? true) {
      const current = options.type ? this.#registry.ofType(options.type) : this.#registry.all();
      for (const connection of current) queue.push(connection);
    }
    return queue[Symbol.asyncIterator]();
  }

  /** Same as {@linkcode Manager.clients} with no filter. */
  [Symbol.asyncIterator](): AsyncIterator<Client> {
    return this.clients();
  }

  /**
   * Every device's messages as one async iterator of `{ client, data, text }`.
   * Messages taken by `recv`/`request` do not appear. Ends when the manager
   * closes. When `highWaterMark` messages wait unread, reading from the senders
   * pauses until the consumer catches up.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
   * (async () => {
   *   for await (const { client, text } of manager.messages({ type: "lock" })) {
   *     console.log(client.uuid, text);
   *   }
   * })();
   * ```
   */
  messages(options: MessagesOptions = {}): AsyncIterableIterator<DeviceMessage> {
    return this.#subscribe(this.#messageSubs, options, options.highWaterMark ?? 1024)
      [Symbol.asyncIterator]();
  }

  /**
   * Stops listening, ends every connection (each device gets `end`), ends every
   * iterator and waits for handlers to finish: resolves within about 6 s
   * whatever is queued (1 s for the goodbyes, 5 s for handlers). Message handler
   * calls still waiting for a slot are dropped, with their count logged
   * (reason `shutdown`); every device's `disconnect` handlers run, started at
   * once; handlers still running when the grace ends are logged with their
   * count and left to finish on their own. Idempotent.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * const manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * await manager.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** `await using manager = ...` closes it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#log.info("Manager on {hostname}:{port} closing with {size} devices", {
      hostname: this.hostname,
      port: this.port,
      size: this.size,
    });
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    this.#heartbeat.stop();
    this.#watchdog.stop();
    for (const sub of this.#clientSubs) sub.target.stop();
    for (const conn of this.#handshaking) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    // The message backlog goes; every device's disconnect handlers still run, at once.
    const dropped = this.#pool.close();
    if (dropped > 0) {
      this.#log.warn("Dropped {dropped} queued message handler calls at shutdown", {
        dropped,
        reason: "shutdown",
      });
    }
    for (const connection of [...this.#registry.all()]) {
      connection.terminate("manager-closed", "the manager is shutting down");
    }
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
    await this.#cluster?.close();
    await withGrace(this.#pool.idle(), CLOSE_GRACE_MS);
    if (this.#pool.running > 0) {
      this.#log.warn(
        "{running} handler calls still running after the {seconds} s shutdown grace; close() returns without them",
        { running: this.#pool.running, seconds: CLOSE_GRACE_MS / 1000, reason: "shutdown" },
      );
    }
    this.#pool.stop();
    for (const sub of this.#messageSubs) sub.target.stop();
  }

  #clusterNode(): ClusterNode {
    return this.#router.node({
      nodeId: this.nodeId,
      heartbeatRate: this.heartbeatRate,
      heartbeatTimeout: this.heartbeatTimeout,
    });
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
    if (this.#closing) queue.stop();
    else remove = subs.add(queue, filter.type);
    return queue;
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.then(() => this.#tasks.delete(task));
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closing) {
      let conn: Transport;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        this.#log.error("Accepting a connection failed: {message}", {
          message: (error as Error).message,
        });
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (this.#closing) {
        conn.close();
        return;
      }
      this.#track(this.#handle(conn));
    }
  }

  async #handle(conn: Transport): Promise<void> {
    const addr = conn.remoteAddr as Deno.NetAddr;
    const address = `${addr.hostname}:${addr.port}`;
    const refuse = this.#handshaking.size >= this.#options.maxPendingHandshakes
      ? `${this.#handshaking.size} connections are already in handshake (maxPendingHandshakes)`
      : this.#registry.size + this.#handshaking.size >= this.#options.maxClients
      ? `${this.#registry.size} devices are connected (maxClients)`
      : null;
    if (refuse) {
      this.#log.warn("Refused connection from {address}: {message}", {
        address,
        reason: "limit",
        message: refuse,
      });
      conn.close();
      return;
    }
    this.#handshaking.add(conn);
    let handshake: Handshake;
    try {
      handshake = await admit(conn, {
        validTypes: this.validTypes,
        timeout: this.#options.handshakeTimeout,
        maxSize: this.#options.maxHandshakeSize,
        authenticate: this.#authenticate && this.#judge.bind(this, this.#authenticate, addr),
        admissible: (handshake) => this.#checkHolder(handshake.info.uuid, address),
      });
    } catch (error) {
      if (!this.#closing) this.#logRejection(address, error);
      return;
    } finally {
      this.#handshaking.delete(conn);
    }
    if (this.#closing) {
      conn.close();
      return;
    }
    this.#admit(conn, handshake.mode, handshake.info, handshake.leftover, address);
  }

  /**
   * A newcomer claims a UUID whose holder itself took it over within the last
   * minute: two live devices fighting over one UUID, or one device back again
   * after its last connection went stale? Evidence decides: the holder is sent
   * a heartbeat now. A holder that answers is alive, and the newcomer is
   * refused (reason `conflict`, logged once with both addresses); a holder that
   * does not is dropped for it (reason `heartbeat`) and the newcomer admitted.
   */
  async #checkHolder(uuid: string, address: string): Promise<InvalidInfo | undefined> {
    const holder = this.#registry.get(uuid);
    if (!holder || holder.tookOverFrom === undefined) return undefined;
    if (performance.now() - holder.admittedAt >= UUID_CONFLICT_WINDOW_MS) return undefined;
    const timeout = Math.min(this.heartbeatTimeout, HOLDER_PROBE_SECONDS);
    const alive = await holder.heartbeat({ timeout }).then(() => true, () => false);
    if (!alive || !holder.connected) return undefined;
    const holderAddress = `${holder.address.hostname}:${holder.address.port}`;
    if (!holder.conflictLogged) {
      holder.conflictLogged = true;
      this.#log.warn(
        "UUID {uuid} is claimed by two live connections, {address} and {other}: the one connected keeps it",
        { uuid, address, other: holderAddress, reason: "uuid-conflict" },
      );
    }
    return new InvalidInfo(
      "conflict",
      `UUID ${uuid} is held by another live connection (${holderAddress}), which answered a heartbeat ` +
        "just now; two devices use this UUID: fix the duplicate",
    );
  }

  /** Asks the `authenticate` hook about a handshake; a hook that throws refuses (and is logged). */
  async #judge(
    authenticate: Authenticate,
    address: Deno.NetAddr,
    handshake: Handshake,
  ): Promise<boolean | string> {
    try {
      return await authenticate({
        info: handshake.info,
        address,
        mode: handshake.mode,
        replacing: this.#registry.get(handshake.info.uuid) !== undefined,
        challenge: handshake.challenge,
        proof: handshake.proof,
      });
    } catch (error) {
      // The detail stays in the log: the device is not authenticated and hears only this.
      this.#log.error("The authenticate hook failed: {error}", { error });
      return "the authenticate hook failed";
    }
  }

  #logRejection(address: string, error: unknown): void {
    if (error instanceof InvalidInfo) {
      // A conflict was logged once at warning level; each refused retry is only debug.
      this.#log[error.reason === "conflict" ? "debug" : "warn"](
        "Rejected handshake from {address}: {message}",
        {
          address,
          reason: error.reason,
          message: error.message,
        },
      );
    } else if (error instanceof ConnectionEnd) {
      this.#log.warn("Connection from {address} ended before its handshake: {message}", {
        address,
        reason: error.reason,
        message: error.message,
      });
    } else {
      this.#log.error("Handshake with {address} failed: {message}", {
        address,
        message: String(error),
      });
    }
  }

  #admit(
    conn: Transport,
    mode: ProtocolMode,
    info: DeviceInfo,
    leftover: Uint8Array,
    address: string,
  ): void {
    const connection = new Connection(conn, mode, info, this.#hooks, {
      maxFrameSize: this.#options.maxFrameSize,
      maxBufferedBytes: this.#options.maxBufferedBytes,
      validTypes: this.validTypes,
      maxHandshakeSize: this.#options.maxHandshakeSize,
      mode1ReadSize: MODE1_READ_SIZE,
      mode2ReadSize: MODE2_READ_SIZES,
    }, this.#clientLog);
    const previous = this.#registry.get(info.uuid);
    if (previous) {
      connection.tookOverFrom = `${previous.address.hostname}:${previous.address.port}`;
      connection.conflictLogged = previous.conflictLogged;
      previous.terminate("replaced", `replaced by a new connection from ${address}`);
    }
    this.#registry.add(connection);
    this.#cluster?.deviceConnected(info);
    if (mode === 2) {
      connection.enqueue(encodeFrame(
        FrameType.WELCOME,
        JSON.stringify({
          mode: 2,
          heartbeatRate: this.heartbeatRate,
          heartbeatTimeout: this.heartbeatTimeout,
          maxFrameSize: this.#options.maxFrameSize,
        }),
      ));
    }
    this.#log.info("Device {uuid} ({type}) connected from {address} in mode {mode}", {
      uuid: info.uuid,
      type: info.type,
      address,
      mode,
    });
    for (const sub of this.#clientSubs) if (wants(sub, info.type)) sub.target.push(connection);
    for (const entry of this.#handlers.connect) {
      if (!wants(entry, info.type)) continue;
      const handler = entry.target;
      this.#pool.run(() => handler(connection), { event: "connect", uuid: info.uuid }, "lifecycle");
    }
    connection.start(leftover);
  }

  #onMessage(connection: Connection, data: Uint8Array): Promise<void> | undefined {
    let stalls: Promise<void>[] | undefined;
    if (this.#messageSubs.size > 0) {
      const message = new Message(connection, data);
      for (const sub of this.#messageSubs) {
        if (!wants(sub, connection.type)) continue;
        if (!sub.target.push(message)) (stalls ??= []).push(sub.target.writable());
      }
    }
    const messageContext = { event: "message", uuid: connection.uuid };
    for (const entry of this.#handlers.message) {
      if (!wants(entry, connection.type)) continue;
      const handler = entry.target;
      if (!this.#pool.run(() => handler(connection, data), messageContext)) {
        (stalls ??= []).push(this.#pool.writable());
      }
    }
    return stalls ? Promise.all(stalls).then(() => {}) : undefined;
  }

  #onClose(connection: Connection, end: ConnectionEnd): void {
    // Tracked from its end, not its start: idle connections cost no promise here.
    this.#track(connection.finished);
    // On shutdown the adapter deregisters the whole node at once instead.
    if (this.#registry.remove(connection) && !this.#closing) {
      this.#cluster?.deviceDisconnected(connection.info);
    }
    for (const entry of this.#handlers.disconnect) {
      if (!wants(entry, connection.type)) continue;
      const handler = entry.target;
      const context = { event: "disconnect", uuid: connection.uuid };
      this.#pool.run(() => handler(connection, end), context, "lifecycle");
    }
  }
}
