/**
 * Many managers, one fleet, on Redis. Import it from `@iot-manager/core/redis`
 * (the main module stays free of the Redis client).
 *
 * How it works:
 * - Each manager is a node with a random id. It keeps `PREFIX:node:ID` alive
 *   with a TTL tied to its heartbeat (rate + timeout) and lists its devices in
 *   the hash `PREFIX:devices:ID`. A node that crashes stops refreshing its key;
 *   the others notice within the TTL and drop its devices.
 * - Device arrivals and departures are published on `PREFIX:events`; every
 *   node keeps a mirror of the other nodes' devices, so `getClientData()` and
 *   routing a `send(uuid)` need no round trip. A node that sees one of its own
 *   devices arrive elsewhere ends its old connection (`replaced`).
 * - Sends travel by pub/sub: broadcasts on `PREFIX:cmd`, a `send(uuid)` on
 *   the holding node's `PREFIX:cmd:ID`. Each receiving node delivers locally
 *   and replies with how many devices it reached, so counts are cluster-wide.
 * - If Redis goes away, each manager keeps serving its own devices and logs
 *   it; sends reach local devices only. When Redis returns, nodes re-register
 *   their devices and reload their mirrors.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Buffer } from "node:buffer";
import { createClient } from "redis";
import type { ClusterAdapter, ClusterNode } from "./cluster.ts";
import type { DeviceInfo } from "./protocol/mod.ts";

/** Options of {@linkcode RedisAdapter}. */
export interface RedisAdapterOptions {
  /** Redis URL. @default "redis://127.0.0.1:6379" */
  readonly url?: string;
  /** Prefix of every key and channel; managers sharing it form one cluster. @default "iot-manager" */
  readonly prefix?: string;
  /** Seconds a node's registration outlives its last refresh. @default heartbeatRate + heartbeatTimeout of the manager */
  readonly nodeTtl?: number;
  /** Seconds to wait for other nodes' delivery counts. @default 2 */
  readonly replyTimeout?: number;
  /** Seconds to wait for Redis when the manager starts before going on alone. @default 5 */
  readonly connectTimeout?: number;
}

type Client = ReturnType<typeof createClient>;

/** Each adapter's command connection, for the store that shares it (lib/redis_store.ts). */
const connections = new WeakMap<RedisAdapter, () => Client | null>();

/**
 * The command connection (not the subscriber) of `adapter`, for a store that
 * shares it; `null` before the manager has attached the adapter, or once closed.
 */
export function connectionOf(adapter: RedisAdapter): Client | null {
  return connections.get(adapter)?.() ?? null;
}
type Payload = { readonly text?: string; readonly b64?: string };
type Command = {
  readonly id: string;
  readonly from: string;
  readonly op: "all" | "type" | "one";
  readonly type?: string;
  readonly uuid?: string;
  readonly data: Payload;
};
type Event =
  | { readonly k: "up"; readonly n: string; readonly info: DeviceInfo; readonly at: number }
  | { readonly k: "down"; readonly n: string; readonly u: string }
  | { readonly k: "bye"; readonly n: string }
  | { readonly k: "state"; readonly n: string; readonly u: string };
type Pending = {
  expected: number;
  /** Subscribers the command reached that may reply (PUBLISH's count, less this node's own). */
  cap: number;
  received: number;
  count: number;
  readonly done: (count: number) => void;
};

const log = getLogger(["iot-manager", "cluster"]);

function encodePayload(data: string | Uint8Array): Payload {
  return typeof data === "string" ? { text: data } : { b64: Buffer.from(data).toString("base64") };
}

function decodePayload(payload: Payload): string | Uint8Array {
  return payload.text ?? new Uint8Array(Buffer.from(payload.b64 ?? "", "base64"));
}

/**
 * A {@linkcode ClusterAdapter} on Redis (pub/sub plus a registry with expiry).
 *
 * @example
 * ```ts ignore
 * import { Manager } from "@iot-manager/core";
 * import { RedisAdapter } from "@iot-manager/core/redis";
 * await using manager = await Manager.listen({
 *   validTypes: ["light", "lock"],
 *   port: 8595,
 *   cluster: new RedisAdapter({ url: "redis://10.0.0.5:6379" }),
 * });
 * await manager.sendAll("off"); // every light and lock, on every manager
 * ```
 */
export class RedisAdapter implements ClusterAdapter {
  readonly #url: string;
  readonly #prefix: string;
  readonly #options: RedisAdapterOptions;
  #node: ClusterNode | null = null;
  #pub: Client | null = null;
  #sub: Client | null = null;
  #ttlMs = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  #closed = false;
  #everReady = false;
  #lostLogged = false;
  /** Devices on other nodes: uuid -> holder and info. */
  readonly #mirror = new Map<string, { node: string; info: DeviceInfo; at: number }>();
  /** Other nodes known alive: only they reply (PUBLISH also counts any other subscriber). */
  readonly #peers = new Set<string>();
  readonly #pending = new Map<string, Pending>();

  /**
   * Creates an adapter; the manager connects it when it starts.
   *
   * @param options Where Redis is and how the cluster is named.
   */
  constructor(options: RedisAdapterOptions = {}) {
    this.#options = options;
    this.#url = options.url ?? "redis://127.0.0.1:6379";
    this.#prefix = options.prefix ?? "iot-manager";
    connections.set(this, () => this.#closed ? null : this.#pub);
  }

  /** True while connected to Redis. */
  get connected(): boolean {
    return this.#pub?.isReady === true && this.#sub?.isReady === true;
  }

  /** The prefix of this cluster's keys and channels. */
  get prefix(): string {
    return this.#prefix;
  }

  /** Number of devices known on other nodes. */
  get remoteCount(): number {
    return this.#mirror.size;
  }

  /**
   * Joins the cluster; waits up to `connectTimeout` for Redis, then goes on alone.
   *
   * @throws {Deno.errors.NotCapable} When Deno's permissions forbid what the
   *   Redis client needs (`--allow-net` for the Redis host, `--allow-env`):
   *   waiting would not help, and running alone would split the cluster unseen.
   */
  async attach(node: ClusterNode): Promise<void> {
    this.#node = node;
    this.#ttlMs = (this.#options.nodeTtl ?? node.heartbeatRate + node.heartbeatTimeout) * 1000;
    const reconnectStrategy = (retries: number) => Math.min(50 * 2 ** retries, 2000);
    this.#pub = createClient({
      url: this.#url,
      disableOfflineQueue: true,
      socket: { reconnectStrategy },
    });
    this.#sub = this.#pub.duplicate();
    const forbidden = Promise.withResolvers<Error>();
    for (const client of [this.#pub, this.#sub]) {
      client.on("error", (error: Error) => {
        if (isPermissionError(error)) forbidden.resolve(error);
        else this.#onLost(error);
      });
    }
    // Whichever client is ready last (re)registers this node.
    this.#pub.on("ready", () => this.#onReady());
    this.#sub.on("ready", () => this.#onReady());
    const connecting = Promise.all([this.#pub.connect(), this.#sub.connect()]).then(async () => {
      await this.#subscribe();
      await this.#onReady();
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const seconds = this.#options.connectTimeout ?? 5;
    const joined = await Promise.race([
      connecting.then(() => true, (error) => {
        if (isPermissionError(error)) forbidden.resolve(error);
        else this.#onLost(error);
        return false;
      }),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), seconds * 1000)),
      forbidden.promise.then(() => false),
    ]);
    clearTimeout(timer);
    const denied = await Promise.race([forbidden.promise, Promise.resolve(null)]);
    if (denied) {
      await this.close();
      throw new Deno.errors.NotCapable(
        `RedisAdapter cannot reach Redis at ${this.#url}: ${denied.message} ` +
          "(the Redis client needs --allow-net for its host and --allow-env)",
        { cause: denied },
      );
    }
    if (!joined) {
      log.error("Redis at {url} is not reachable; manager {node} runs alone until it is", {
        url: this.#url,
        node: node.nodeId,
      });
    }
    this.#timer = setInterval(() => this.#tick(), Math.max(50, this.#ttlMs / 3));
  }

  /** Publishes a local arrival and records it in this node's hash. */
  deviceConnected(info: DeviceInfo): void {
    const at = Date.now();
    // Held here now: whatever another node (alive or dead) had of it is stale.
    this.#mirror.delete(info.uuid);
    this.#run("register a device", async (pub) => {
      await pub.hSet(this.#devicesKey(this.#nodeId), info.uuid, JSON.stringify({ info, at }));
      await pub.publish(
        this.#key("events"),
        JSON.stringify({ k: "up", n: this.#nodeId, info, at }),
      );
    });
  }

  /** Publishes a local departure and removes it from this node's hash. */
  deviceDisconnected(info: DeviceInfo): void {
    this.#run("unregister a device", async (pub) => {
      await pub.hDel(this.#devicesKey(this.#nodeId), info.uuid);
      await pub.publish(
        this.#key("events"),
        JSON.stringify({ k: "down", n: this.#nodeId, u: info.uuid }),
      );
    });
  }

  /** Asks every other node to deliver to all its devices. */
  sendAll(data: string | Uint8Array): Promise<number> {
    return this.#command(this.#key("cmd"), { op: "all", data: encodePayload(data) }, true);
  }

  /** Asks every other node to deliver to its devices of `type`. */
  sendType(type: string, data: string | Uint8Array): Promise<number> {
    return this.#command(this.#key("cmd"), { op: "type", type, data: encodePayload(data) }, true);
  }

  /** Asks the node holding `uuid` to deliver to it. */
  send(uuid: string, data: string | Uint8Array): Promise<number> {
    const holder = this.#mirror.get(uuid);
    if (!holder) return Promise.resolve(0);
    return this.#command(
      this.#key(`cmd:${holder.node}`),
      { op: "one", uuid, data: encodePayload(data) },
      false,
    );
  }

  /** Tells the other nodes that the desired state of `uuid` changed in the shared store. */
  stateChanged(uuid: string): void {
    this.#run(
      "announce a state change",
      (pub) =>
        pub.publish(this.#key("events"), JSON.stringify({ k: "state", n: this.#nodeId, u: uuid })),
    );
  }

  /** The other nodes' devices, as last known. */
  remoteDevices(): Iterable<DeviceInfo> {
    return [...this.#mirror.values()].map((entry) => entry.info);
  }

  /** Leaves the cluster: removes this node's registration and disconnects. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const pending of this.#pending.values()) pending.done(pending.count);
    this.#pending.clear();
    const pub = this.#pub;
    if (pub?.isReady) {
      try {
        await pub.multi()
          .del(this.#devicesKey(this.#nodeId))
          .del(this.#key(`node:${this.#nodeId}`))
          .sRem(this.#key("nodes"), this.#nodeId)
          .publish(this.#key("events"), JSON.stringify({ k: "bye", n: this.#nodeId }))
          .exec();
      } catch (error) {
        log.warn("Could not deregister node {node} from Redis: {message}", {
          node: this.#nodeId,
          message: String(error),
        });
      }
    }
    for (const client of [this.#sub, this.#pub]) {
      if (!client) continue;
      try {
        if (client.isOpen) client.destroy();
      } catch { /* already gone */ }
    }
  }

  get #nodeId(): string {
    return this.#node?.nodeId ?? "";
  }

  #key(name: string): string {
    return `${this.#prefix}:${name}`;
  }

  #devicesKey(node: string): string {
    return this.#key(`devices:${node}`);
  }

  /** Runs a Redis task in the background; failures are logged, never thrown. */
  #run(what: string, task: (pub: Client) => Promise<unknown>): void {
    const pub = this.#pub;
    if (!pub?.isReady || this.#closed) return; // re-registered wholesale when Redis returns
    task(pub).catch((error) =>
      log.warn("Could not {what} in Redis: {message}", { what, message: String(error) })
    );
  }

  async #subscribe(): Promise<void> {
    const sub = this.#sub!;
    await sub.subscribe(this.#key("events"), (message) => this.#onEvent(message));
    await sub.subscribe(this.#key("cmd"), (message) => this.#onCommand(message));
    await sub.subscribe(this.#key(`cmd:${this.#nodeId}`), (message) => this.#onCommand(message));
    await sub.subscribe(this.#key(`reply:${this.#nodeId}`), (message) => this.#onReply(message));
  }

  /** (Re)registers this node and its devices, and reloads the mirror. */
  async #onReady(): Promise<void> {
    const pub = this.#pub;
    if (!pub?.isReady || !this.#sub?.isReady || this.#closed) return;
    if (this.#everReady && this.#lostLogged) {
      log.info("Redis at {url} is back; node {node} rejoins the cluster", {
        url: this.#url,
        node: this.#nodeId,
      });
    }
    this.#everReady = true;
    this.#lostLogged = false;
    try {
      const own = this.#devicesKey(this.#nodeId);
      const batch = pub.multi()
        .set(this.#key(`node:${this.#nodeId}`), "1", { PX: this.#ttlMs })
        .sAdd(this.#key("nodes"), this.#nodeId)
        .del(own);
      const at = Date.now();
      for (const info of this.#node!.localDevices()) {
        batch.hSet(own, info.uuid, JSON.stringify({ info, at }));
        batch.publish(this.#key("events"), JSON.stringify({ k: "up", n: this.#nodeId, info, at }));
      }
      await batch.exec();
      await this.#reload(pub);
    } catch (error) {
      this.#onLost(error);
    }
  }

  /** Rebuilds the mirror from the registry, dropping nodes whose key has expired. */
  async #reload(pub: Client): Promise<void> {
    const nodes = (await pub.sMembers(this.#key("nodes"))).filter((n) => n !== this.#nodeId);
    const alive = nodes.length === 0
      ? []
      : await pub.mGet(nodes.map((node) => this.#key(`node:${node}`)));
    const mirror = new Map<string, { node: string; info: DeviceInfo; at: number }>();
    const local = new Set([...this.#node?.localDevices() ?? []].map((info) => info.uuid));
    for (const [index, node] of nodes.entries()) {
      if (alive[index] === null) {
        await this.#purge(pub, node);
        continue;
      }
      const devices = await pub.hGetAll(this.#devicesKey(node));
      for (const [uuid, value] of Object.entries(devices)) {
        const { info, at } = JSON.parse(value) as { info: DeviceInfo; at: number };
        if (local.has(uuid)) continue; // held here: another node's entry is stale
        const known = mirror.get(uuid);
        if (!known || known.at < at) mirror.set(uuid, { node, info, at });
      }
    }
    this.#mirror.clear();
    for (const [uuid, entry] of mirror) this.#mirror.set(uuid, entry);
    this.#peers.clear();
    for (const [index, node] of nodes.entries()) if (alive[index] !== null) this.#peers.add(node);
  }

  /** Purges the peers whose registration has expired. */
  async #checkPeers(pub: Client): Promise<void> {
    const peers = [...this.#peers];
    if (peers.length === 0) return;
    const alive = await pub.mGet(peers.map((node) => this.#key(`node:${node}`)));
    for (const [index, node] of peers.entries()) {
      if (alive[index] === null) await this.#purge(pub, node);
    }
  }

  /** Removes a dead node's registration and its devices. */
  async #purge(pub: Client, node: string): Promise<void> {
    let removed = 0;
    for (const [uuid, entry] of this.#mirror) {
      if (entry.node === node) {
        this.#mirror.delete(uuid);
        removed++;
      }
    }
    this.#peers.delete(node);
    await pub.multi().del(this.#devicesKey(node)).sRem(this.#key("nodes"), node).exec();
    log.warn("Node {node} stopped refreshing its registration; {removed} devices removed", {
      node,
      removed,
    });
  }

  async #tick(): Promise<void> {
    const pub = this.#pub;
    if (!pub?.isReady || this.#closed) return;
    try {
      await pub.set(this.#key(`node:${this.#nodeId}`), "1", { PX: this.#ttlMs });
      // Every third tick, reconcile with the registry: catches nodes that died or events lost
      // while Redis was away. In between, only the peers' liveness (cheap): a dead node's
      // devices go within a third of the TTL of its key expiring, not a whole TTL later.
      if (this.#ticks++ % 3 === 0) await this.#reload(pub);
      else await this.#checkPeers(pub);
    } catch (error) {
      this.#onLost(error);
    }
  }

  #onLost(error: unknown): void {
    if (this.#closed || this.#lostLogged) return;
    this.#lostLogged = true;
    log.error(
      "Lost Redis at {url}: {message}; node {node} keeps serving its own devices and retries",
      { url: this.#url, message: String(error), node: this.#nodeId },
    );
  }

  #onEvent(message: string): void {
    const event = JSON.parse(message) as Event;
    if (event.n === this.#nodeId) return;
    if (event.k === "bye") this.#peers.delete(event.n);
    else this.#peers.add(event.n);
    if (event.k === "up") {
      const known = this.#mirror.get(event.info.uuid);
      if (!known || known.at <= event.at) {
        this.#mirror.set(event.info.uuid, { node: event.n, info: event.info, at: event.at });
      }
      this.#node?.evict(event.info.uuid, `the device reconnected to manager ${event.n}`);
    } else if (event.k === "state") {
      this.#node?.refreshState(event.u);
    } else if (event.k === "down") {
      if (this.#mirror.get(event.u)?.node === event.n) this.#mirror.delete(event.u);
    } else {
      for (const [uuid, entry] of this.#mirror) {
        if (entry.node === event.n) this.#mirror.delete(uuid);
      }
    }
  }

  #onCommand(message: string): void {
    const command = JSON.parse(message) as Command;
    if (command.from === this.#nodeId || !this.#node) return;
    const data = decodePayload(command.data);
    const count = command.op === "all"
      ? this.#node.deliverAll(data)
      : command.op === "type"
      ? this.#node.deliverType(command.type ?? "", data)
      : this.#node.deliver(command.uuid ?? "", data);
    this.#run("reply with a delivery count", (pub) =>
      pub.publish(
        this.#key(`reply:${command.from}`),
        JSON.stringify({ id: command.id, n: this.#nodeId, count }),
      ));
  }

  #onReply(message: string): void {
    const reply = JSON.parse(message) as { id: string; n: string; count: number };
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    if (!this.#peers.has(reply.n)) {
      // A node that joined since the last reload and has announced no device yet: count it in.
      this.#peers.add(reply.n);
      pending.expected = Math.min(pending.cap, pending.expected + 1);
    }
    pending.received++;
    pending.count += reply.count;
    if (pending.received >= pending.expected) pending.done(pending.count);
  }

  /** Publishes a command and sums the delivery counts the receiving nodes reply with. */
  async #command(
    channel: string,
    body: Omit<Command, "id" | "from">,
    broadcast: boolean,
  ): Promise<number> {
    const pub = this.#pub;
    if (!pub?.isReady || this.#closed) return 0;
    const id = crypto.randomUUID();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const { promise, resolve } = Promise.withResolvers<number>();
    const pending: Pending = {
      expected: Infinity,
      cap: Infinity,
      received: 0,
      count: 0,
      done: (count) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(count);
      },
    };
    this.#pending.set(id, pending);
    let receivers: number;
    try {
      receivers = await pub.publish(
        channel,
        JSON.stringify({ ...body, id, from: this.#nodeId } satisfies Command),
      );
    } catch (error) {
      this.#onLost(error);
      pending.done(0);
      return promise;
    }
    // A broadcast reaches this node's own subscriber too, which does not reply; so does any
    // other client subscribed to the channel (a `PSUBSCRIBE prefix:*` left open to watch).
    pending.cap = broadcast ? receivers - 1 : receivers;
    pending.expected = Math.min(pending.cap, broadcast ? this.#peers.size : 1);
    if (pending.received >= pending.expected) {
      pending.done(pending.count);
    } else if (this.#pending.has(id)) {
      const seconds = this.#options.replyTimeout ?? 2;
      timer = setTimeout(() => {
        log.warn("Only {received} of {expected} nodes reported deliveries within {seconds} s", {
          received: pending.received,
          expected: pending.expected,
          seconds,
        });
        pending.done(pending.count);
      }, seconds * 1000);
    }
    return promise;
  }
}

/** A Deno permission refused (it would be refused again: not a Redis outage). */
function isPermissionError(error: unknown): boolean {
  return error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied;
}
