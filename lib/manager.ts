/**
 * The manager: accepts devices over TCP or TLS, keeps the registry, runs the
 * fleet-wide heartbeat, fans messages out and hands the application its
 * devices and their messages as async iterators or event handlers.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import type { Client } from "./client.ts";
import {
  Connection,
  type ConnectionHooks,
  type ConnectionLimits,
  connectionLimits,
} from "./connection.ts";
import type { ConnectionEnd } from "./errors.ts";
import type { ClusterAdapter, ClusterNode } from "./cluster.ts";
import { Admission, type Admitted } from "./admission.ts";
import {
  type ClientsOptions,
  type DeviceMessage,
  Dispatcher,
  type ManagerEvents,
  type MessagesOptions,
  type TypeFilter,
} from "./dispatcher.ts";
import { listenTransport, type Transport, type TransportListener } from "./transport.ts";
import { HeartbeatMonitor } from "./heartbeat.ts";
import { type DeviceInfo, FEATURES } from "./protocol/mod.ts";
import { DeviceStates, type ManagerState } from "./device_state.ts";
import { ManagerMetrics, type ManagerStats, managerStats } from "./metrics.ts";
import { publishMetrics } from "./otel.ts";
import { Registry } from "./registry.ts";
import { type DeviceStore, MemoryStore } from "./store.ts";
import {
  type AckedSendOptions,
  type DeliveryReport,
  Router,
  sendOptionsProblem,
  type SendToOptions,
} from "./routing.ts";
import {
  type ManagerOptions,
  type ResolvedOptions,
  resolveOptions,
  validateOptions,
} from "./manager_options.ts";
import { WriteWatchdog } from "./watchdog.ts";

const CLOSE_GRACE_MS = 5000;
// Idle devices only ever receive 5-byte heartbeat frames: 64 bytes hold one; busy ones grow.
const MODE2_READ_SIZES = [64, 64 * 1024] as const;

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
  readonly #connectionLimits: ConnectionLimits;
  readonly #cluster: ClusterAdapter | undefined;
  /** This manager's id among its cluster peers. */
  readonly nodeId: string = crypto.randomUUID();
  readonly #admission: Admission;
  readonly #watchdog: WriteWatchdog;
  readonly #registry = new Registry<Connection>();
  readonly #router: Router;
  readonly #heartbeat: HeartbeatMonitor;
  readonly #dispatcher: Dispatcher;
  readonly #states: DeviceStates;
  readonly #store: DeviceStore;
  readonly #hooks: ConnectionHooks;
  readonly #tasks = new Set<Promise<void>>();
  readonly #metrics = new ManagerMetrics();
  readonly #closedSignal = Promise.withResolvers<void>();
  readonly #unpublish: () => void;
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
    this.#connectionLimits = connectionLimits({
      maxFrameSize: this.#options.maxFrameSize,
      maxBufferedBytes: this.#options.maxBufferedBytes,
      validTypes: this.validTypes,
      maxHandshakeSize: this.#options.maxHandshakeSize,
      mode1ReadSize: this.#options.mode1ReadSize,
      mode2ReadSize: MODE2_READ_SIZES,
    });
    this.#cluster = options.cluster;
    this.#router = new Router(this.#registry, options.cluster, this.#metrics);
    this.heartbeatRate = this.#options.heartbeatRate;
    this.heartbeatTimeout = this.#options.heartbeatTimeout;
    const category = options.logCategory ?? ["iot-manager"];
    this.logCategory = typeof category === "string" ? [category] : [...category];
    this.#log = getLogger([...this.logCategory, "manager"]);
    this.#clientLog = getLogger([...this.logCategory, "client"]);
    this.#admission = new Admission(
      {
        validTypes: this.validTypes,
        handshakeTimeout: this.#options.handshakeTimeout,
        maxHandshakeSize: this.#options.maxHandshakeSize,
        maxPendingHandshakes: this.#options.maxPendingHandshakes,
        maxClients: this.#options.maxClients,
        heartbeatTimeout: this.heartbeatTimeout,
        welcome: {
          heartbeatRate: this.heartbeatRate,
          heartbeatTimeout: this.heartbeatTimeout,
          maxFrameSize: this.#options.maxFrameSize,
          features: FEATURES,
        },
        authenticate: options.authenticate,
      },
      this.#registry,
      this.#log,
      this.#metrics,
    );
    this.#dispatcher = new Dispatcher(
      {
        maxConcurrentHandlers: this.#options.maxConcurrentHandlers,
        handlerTimeout: this.#options.handlerTimeout,
      },
      this.#log,
      this.#metrics,
    );
    this.#store = options.store ?? new MemoryStore();
    this.#states = new DeviceStates(this.#registry, {
      store: this.#store,
      keep: { perDevice: this.#options.maxKeptPerDevice, total: this.#options.maxKept },
      ackTimeout: this.heartbeatTimeout,
      onDesired: (uuid) => this.#cluster?.stateChanged?.(uuid),
      maxStateSize: this.#options.maxStateSize,
    }, this.#log);
    this.#heartbeat = new HeartbeatMonitor({
      rate: this.heartbeatRate,
      timeout: this.heartbeatTimeout,
      targets: () => this.#registry.all(),
    });
    this.#hooks = {
      onMessage: (connection, data) => this.#dispatcher.message(connection, data),
      onClose: (connection, end) => this.#onClose(connection, end),
      onInfoChanged: (connection, previousType) => {
        // Only a device still registered (not replaced meanwhile) is re-indexed and mirrored.
        if (!this.#registry.retype(connection)) return;
        this.#cluster?.deviceConnected(connection.info);
        this.#states.retyped(connection);
        if (previousType !== connection.type) this.#dispatcher.retyped(connection);
      },
      onReport: (connection, patch) => this.#states.reported(connection, patch),
      onFeatures: (connection) => this.#track(this.#states.ready(connection)),
      metrics: this.#metrics,
    };
    this.#watchdog = new WriteWatchdog({
      timeout: this.#options.writeTimeout,
      targets: () => this.#registry.all(),
    });
    this.#unpublish = publishMetrics(this, this.#metrics, { "server.port": this.port });
    this.#heartbeat.start();
    this.#watchdog.start();
    this.#track(this.#acceptLoop());
  }

  /**
   * Starts a manager listening on `hostname:port`, with TLS when `tls` is given.
   *
   * @throws {TypeError} On invalid options.
   * @throws {ListenError} When the port cannot be opened: `reason` `"address-in-use"`,
   *   `"permission-denied"`, `"address-not-available"` or `"io"`; the message is one line
   *   that says where and why.
   * @throws {Deno.errors.NotCapable} When the `cluster` adapter lacks a Deno permission it needs.
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
    options.signal?.throwIfAborted();
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 8595;
    const listener = await listenTransport({
      hostname,
      port,
      tls: options.tls,
      reusePort: options.reusePort,
    });
    const manager = new Manager(listener, options);
    try {
      // The cluster first: a store shared through it (Redis) needs its connection.
      await options.cluster?.attach(manager.#clusterNode());
      await manager.#states.open();
    } catch (error) {
      await manager.close();
      throw error;
    }
    const signal = options.signal;
    if (signal) {
      const onAbort = () => void manager.close();
      signal.addEventListener("abort", onAbort, { once: true });
      manager.#closedSignal.promise.then(() => signal.removeEventListener("abort", onAbort));
      if (signal.aborted) onAbort();
    }
    return manager;
  }

  /** Number of connected devices. */
  get size(): number {
    return this.#registry.size;
  }

  /** Connections accepted but still in handshake. */
  get pendingHandshakes(): number {
    return this.#admission.pending;
  }

  /**
   * Desired and reported state of every device this manager knows, connected
   * or not, and messages kept for those away: see {@linkcode ManagerState}.
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
   * await manager.state.setDesiredType("lock", { locked: true });
   * for (const lock of manager.state.all({ type: "lock" })) console.log(lock.uuid, lock.delta);
   * ```
   */
  get state(): ManagerState {
    return this.#states;
  }

  /**
   * A snapshot of the manager's figures: devices by type and mode, handshakes
   * accepted and refused by reason, disconnects by reason, messages and bytes
   * each way, fan-out sizes, heartbeat round trips, buffered bytes, handler
   * backlog, kept messages and, in a cluster, the other managers' devices.
   * `prometheusText(manager.stats())` renders it for Prometheus; with Deno's
   * OpenTelemetry on, the same figures are exported (see README).
   *
   * @example
   * ```ts
   * import { Manager } from "@iot-manager/core";
   * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
   * console.log(manager.stats().handshakes.accepted); // 0
   * ```
   */
  stats(): ManagerStats {
    return managerStats(this.#metrics, {
      types: this.validTypes,
      connections: this.#registry.all(),
      pending: this.#admission.pending,
      rounds: this.#heartbeat.rounds,
      handlers: this.#dispatcher.backlog,
      kept: this.#states.keptStats,
      remoteDevices: this.#cluster ? [...this.#cluster.remoteDevices()].length : undefined,
    });
  }

  /** Heartbeat rounds run to their end so far: each pinged every device it had (see `heartbeatRate`). */
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
  sendAll(data: string | Uint8Array): Promise<number>;
  /** With `ack: true`: waits for the acknowledgements and resolves with a {@linkcode DeliveryReport}. */
  sendAll(data: string | Uint8Array, options: AckedSendOptions): Promise<DeliveryReport>;
  sendAll(
    data: string | Uint8Array,
    options?: AckedSendOptions,
  ): Promise<number | DeliveryReport> {
    if (!options?.ack) return this.#router.sendAll(data);
    const problem = sendOptionsProblem(options);
    return problem ? Promise.reject(problem) : this.#router.sendAllAcked(data, options);
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
  sendType(type: string, data: string | Uint8Array): Promise<number>;
  /** With `ack: true`: waits for the acknowledgements and resolves with a {@linkcode DeliveryReport}. */
  sendType(
    type: string,
    data: string | Uint8Array,
    options: AckedSendOptions,
  ): Promise<DeliveryReport>;
  sendType(
    type: string,
    data: string | Uint8Array,
    options?: AckedSendOptions,
  ): Promise<number | DeliveryReport> {
    if (!options?.ack) return this.#router.sendType(type, data);
    const problem = sendOptionsProblem(options);
    return problem ? Promise.reject(problem) : this.#router.sendTypeAcked(type, data, options);
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
  send(uuid: string, data: string | Uint8Array): Promise<number>;
  /**
   * With `ack: true`: waits for the acknowledgement and resolves with a
   * {@linkcode DeliveryReport} (a device not connected counts as `offline`,
   * or as `kept` with a `ttl`).
   */
  send(uuid: string, data: string | Uint8Array, options: AckedSendOptions): Promise<DeliveryReport>;
  /**
   * With `ttl` (seconds): a known device that is not connected gets the message
   * when it is back, if within `ttl` (see {@linkcode SendToOptions}); resolves
   * with 1 when sent or kept.
   */
  send(uuid: string, data: string | Uint8Array, options: SendToOptions): Promise<number>;
  async send(
    uuid: string,
    data: string | Uint8Array,
    options: SendToOptions = {},
  ): Promise<number | DeliveryReport> {
    uuid = uuid.toLowerCase();
    const ttl = options.ttl;
    const problem = sendOptionsProblem(options);
    if (problem) throw problem;
    if (ttl !== undefined && bytesOf(data).length > this.#options.maxBufferedBytes) {
      throw new RangeError(
        `a message of ${bytesOf(data).length} bytes is too large to keep (maxBufferedBytes)`,
      );
    }
    if (options.ack) {
      const report = await this.#router.sendAcked(uuid, data, { ...options, ack: true });
      // With a ttl, a device away, or gone before it acknowledged, gets the message when back.
      const away = ["offline", "disconnected", "buffer-full"].includes(report.failed[0]?.reason);
      if (ttl === undefined || !away) return report;
      if (!await this.#states.keep(uuid, bytesOf(data), ttl)) return report;
      return { targets: 1, acknowledged: 0, failed: [], remote: 0, kept: 1 };
    }
    const sent = await this.#router.send(uuid, data);
    if (sent > 0 || ttl === undefined) return sent;
    return await this.#states.keep(uuid, bytesOf(data), ttl) ? 1 : 0;
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
    return this.#dispatcher.on(event, handler, options);
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
    const existing = !(options.existing ?? true)
      ? []
      : options.type
      ? this.#registry.ofType(options.type)
      : this.#registry.all();
    return this.#dispatcher.clients(options, existing);
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
    return this.#dispatcher.messages(options, options.highWaterMark ?? 1024);
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
    this.#unpublish();
    this.#watchdog.stop();
    this.#dispatcher.close();
    this.#admission.close();
    for (const connection of [...this.#registry.all()]) {
      connection.terminate("manager-closed", "the manager is shutting down");
    }
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
    // State writes land before the cluster (whose connection a Redis store may use) goes.
    await this.#states.close();
    await this.#cluster?.close();
    await this.#dispatcher.drain(CLOSE_GRACE_MS);
    await this.#store.close();
    this.#closedSignal.resolve();
  }

  #clusterNode(): ClusterNode {
    return this.#router.node({
      nodeId: this.nodeId,
      heartbeatRate: this.heartbeatRate,
      heartbeatTimeout: this.heartbeatTimeout,
      refreshState: (uuid) => this.#track(this.#states.refresh(uuid)),
    });
  }

  #track(task: Promise<void>): void {
    // A background task that fails is logged: it must never take the process down.
    const tracked = task.catch((error) =>
      this.#log.error("A background task failed: {error}", { error })
    );
    this.#tasks.add(tracked);
    tracked.then(() => this.#tasks.delete(tracked));
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
    const admitted = await this.#admission.admit(conn);
    if (admitted) this.#admit(conn, admitted);
  }

  #admit(conn: Transport, admitted: Admitted): void {
    const { mode, info, address } = admitted;
    this.#metrics.handshakesAccepted++;
    const connection = new Connection(
      conn,
      mode,
      info,
      this.#hooks,
      this.#connectionLimits,
      this.#clientLog,
    );
    const previous = this.#registry.get(info.uuid);
    if (previous) {
      connection.tookOverFrom = `${previous.address.hostname}:${previous.address.port}`;
      connection.conflictLogged = previous.conflictLogged;
      previous.terminate("replaced", `replaced by a new connection from ${address}`);
    }
    this.#registry.add(connection);
    this.#cluster?.deviceConnected(info);
    if (admitted.welcome) connection.enqueue(admitted.welcome);
    this.#log.info("Device {uuid} ({type}) connected from {address} in mode {mode}", {
      uuid: info.uuid,
      type: info.type,
      address,
      mode,
    });
    this.#states.connected(connection);
    this.#dispatcher.connected(connection);
    connection.start(admitted.leftover);
    // Mode 1 has no features to wait for: kept messages go now.
    if (mode === 1) this.#track(this.#states.ready(connection));
  }

  #onClose(connection: Connection, end: ConnectionEnd): void {
    this.#metrics.disconnected(end.reason);
    // Tracked from its end, not its start: idle connections cost no promise here.
    this.#track(connection.finished);
    // On shutdown the adapter deregisters the whole node at once instead.
    if (this.#registry.remove(connection) && !this.#closing) {
      this.#cluster?.deviceDisconnected(connection.info);
    }
    this.#states.disconnected(connection, end);
    this.#dispatcher.disconnected(connection, end);
  }
}

const encoder = new TextEncoder();

function bytesOf(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}
