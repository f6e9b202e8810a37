/**
 * Where a send goes: to this manager's connections (fan-out: each message
 * encoded once per protocol mode and the same bytes queued on every
 * connection) and, with a cluster adapter, to the devices of the other
 * managers. Also the node the cluster adapter talks to.
 *
 * @module
 */

import type { Connection } from "./connection.ts";
import type { ClusterAdapter, ClusterNode } from "./cluster.ts";
import { type DeviceInfo, encodeMessage } from "./protocol/mod.ts";
import type { Registry } from "./registry.ts";

/**
 * Routes sends over the local registry and the cluster.
 *
 * @example
 * ```ts ignore
 * const router = new Router(registry, cluster);
 * const reached = await router.sendType("light", "on");
 * ```
 */
export class Router {
  readonly #registry: Registry<Connection>;
  readonly #cluster: ClusterAdapter | undefined;

  /**
   * @param registry This manager's connections.
   * @param cluster The other managers, if any.
   */
  constructor(registry: Registry<Connection>, cluster: ClusterAdapter | undefined) {
    this.#registry = registry;
    this.#cluster = cluster;
  }

  /** To every device; resolves with how many it was queued for. */
  async sendAll(data: string | Uint8Array): Promise<number> {
    const local = fanOut(this.#registry.all(), data);
    return this.#cluster ? local + await this.#cluster.sendAll(data) : local;
  }

  /** To every device of `type`. */
  async sendType(type: string, data: string | Uint8Array): Promise<number> {
    const local = fanOut(this.#registry.ofType(type), data);
    return this.#cluster ? local + await this.#cluster.sendType(type, data) : local;
  }

  /** To the device with this UUID (lower case), here or on another manager. */
  send(uuid: string, data: string | Uint8Array): Promise<number> {
    const connection = this.#registry.get(uuid);
    if (!connection) return this.#cluster ? this.#cluster.send(uuid, data) : Promise.resolve(0);
    return Promise.resolve(connection.enqueue(encodeMessage(data, connection.mode)) ? 1 : 0);
  }

  /** Every device's info, the other managers' included. */
  clientData(): DeviceInfo[] {
    const local = [...this.#registry.all()].map((connection) => connection.info);
    return this.#cluster ? [...local, ...this.#cluster.remoteDevices()] : local;
  }

  /** What the cluster adapter sees of this manager. */
  node(identity: Pick<ClusterNode, "nodeId" | "heartbeatRate" | "heartbeatTimeout">): ClusterNode {
    const registry = this.#registry;
    return {
      ...identity,
      deliverAll: (data) => fanOut(registry.all(), data),
      deliverType: (type, data) => fanOut(registry.ofType(type), data),
      deliver: (uuid, data) => {
        const connection = registry.get(uuid);
        return connection ? fanOut([connection], data) : 0;
      },
      localDevices: () => [...registry.all()].map((connection) => connection.info),
      evict: (uuid, message) => registry.get(uuid)?.terminate("replaced", message),
    };
  }
}

/** Queues `data` on every target, encoded once per protocol mode; returns how many took it. */
function fanOut(targets: Iterable<Connection>, data: string | Uint8Array): number {
  let mode1: Uint8Array | undefined;
  let mode2: Uint8Array | undefined;
  let reached = 0;
  for (const connection of targets) {
    const bytes = connection.mode === 1
      ? (mode1 ??= encodeMessage(data, 1))
      : (mode2 ??= encodeMessage(data, 2));
    if (connection.enqueue(bytes)) reached++;
  }
  return reached;
}
