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
import { DeliveryError, type DeliveryFailure } from "./errors.ts";
import { type DeviceInfo, encodeMessage, FRAME_HEADER_SIZE } from "./protocol/mod.ts";
import type { ManagerMetrics } from "./metrics.ts";
import type { Registry } from "./registry.ts";

/** Options of an acknowledged send (`sendAll`, `sendType`, `send` with `ack: true`). */
export interface AckedSendOptions {
  /** Wait for each device's acknowledgement (mode 2, feature `ack`). */
  readonly ack: true;
  /** With `send(uuid, ...)`: keep the message for an absent device (see {@linkcode SendToOptions}). */
  readonly ttl?: number;
  /** Seconds to wait for the acknowledgements, all together. @default 15 */
  readonly timeout?: number;
  /** Stops waiting: devices not yet acknowledged count as `timeout`. */
  readonly signal?: AbortSignal;
}

/**
 * What an acknowledged send achieved.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
 * const report = await manager.sendType("lock", "lock", { ack: true, timeout: 5 });
 * console.log(report.acknowledged, report.failed); // 0 []
 * ```
 */
export interface DeliveryReport {
  /** This manager's devices the message was for. */
  readonly targets: number;
  /** How many of them acknowledged it. */
  readonly acknowledged: number;
  /** The ones that did not, and why. */
  readonly failed: readonly { readonly uuid: string; readonly reason: DeliveryFailure }[];
  /** Devices of other managers in the cluster it was queued for, without acknowledgement. */
  readonly remote: number;
  /** Absent devices it was kept for (`send` with `ttl`), to be delivered when they are back. */
  readonly kept: number;
}

/** Options of `send(uuid, data, options)`: a `ttl` keeps the message for an absent device. */
export interface SendToOptions {
  /**
   * Seconds to keep the message for a known device that is not connected; it is
   * delivered, in order, when the device is back (acknowledged if it speaks
   * `ack`), or dropped and counted once it expires. @default none: not kept
   */
  readonly ttl?: number;
  /** Wait for the acknowledgement: resolve with a {@linkcode DeliveryReport}. */
  readonly ack?: boolean;
  /** With `ack`: seconds to wait for it. @default 15 */
  readonly timeout?: number;
  /** With `ack`: stops waiting. */
  readonly signal?: AbortSignal;
}

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
  readonly #metrics: ManagerMetrics;

  /**
   * @param registry This manager's connections.
   * @param cluster The other managers, if any.
   * @param metrics Where sends are counted.
   */
  constructor(
    registry: Registry<Connection>,
    cluster: ClusterAdapter | undefined,
    metrics: ManagerMetrics,
  ) {
    this.#registry = registry;
    this.#cluster = cluster;
    this.#metrics = metrics;
  }

  /** To every device; resolves with how many it was queued for. */
  async sendAll(data: string | Uint8Array): Promise<number> {
    const local = this.#counted(fanOut(this.#registry.all(), data));
    return this.#cluster ? local + await this.#cluster.sendAll(data) : local;
  }

  /** To every device of `type`. */
  async sendType(type: string, data: string | Uint8Array): Promise<number> {
    const local = this.#counted(fanOut(this.#registry.ofType(type), data));
    return this.#cluster ? local + await this.#cluster.sendType(type, data) : local;
  }

  /** To the device with this UUID (lower case), here or on another manager. */
  send(uuid: string, data: string | Uint8Array): Promise<number> {
    const connection = this.#registry.get(uuid);
    if (!connection) return this.#cluster ? this.#cluster.send(uuid, data) : Promise.resolve(0);
    const bytes = encodeMessage(data, connection.mode);
    if (!connection.enqueue(bytes)) return Promise.resolve(0);
    this.#metrics.sent(1, payloadSize(bytes, connection.mode));
    return Promise.resolve(1);
  }

  /** To every device, acknowledged. */
  async sendAllAcked(
    data: string | Uint8Array,
    options: AckedSendOptions,
  ): Promise<DeliveryReport> {
    const remote = this.#cluster ? this.#cluster.sendAll(data) : Promise.resolve(0);
    const report = await this.#fanOutAcked(this.#registry.all(), data, options);
    return { ...report, remote: await remote, kept: 0 };
  }

  /** To every device of `type`, acknowledged. */
  async sendTypeAcked(
    type: string,
    data: string | Uint8Array,
    options: AckedSendOptions,
  ): Promise<DeliveryReport> {
    const remote = this.#cluster ? this.#cluster.sendType(type, data) : Promise.resolve(0);
    const report = await this.#fanOutAcked(this.#registry.ofType(type), data, options);
    return { ...report, remote: await remote, kept: 0 };
  }

  /** To the device with this UUID, acknowledged; an absent device counts as `offline`. */
  async sendAcked(
    uuid: string,
    data: string | Uint8Array,
    options: AckedSendOptions,
  ): Promise<DeliveryReport> {
    const connection = this.#registry.get(uuid);
    if (connection) {
      return { ...await fanOutAcked([connection], data, options), remote: 0, kept: 0 };
    }
    const remote = this.#cluster ? await this.#cluster.send(uuid, data) : 0;
    if (remote > 0) return { targets: 0, acknowledged: 0, failed: [], remote, kept: 0 };
    return {
      targets: 1,
      acknowledged: 0,
      failed: [{ uuid, reason: "offline" }],
      remote: 0,
      kept: 0,
    };
  }

  /** Counts a fan-out that reached `reached` devices (each counted as sent by its connection when acked). */
  #counted({ reached, payload }: { reached: number; payload: number }): number {
    this.#metrics.fannedOut(reached);
    this.#metrics.sent(reached, payload);
    return reached;
  }

  async #fanOutAcked(
    targets: Iterable<Connection>,
    data: string | Uint8Array,
    options: AckedSendOptions,
  ): Promise<Omit<DeliveryReport, "remote" | "kept">> {
    const report = await fanOutAcked(targets, data, options);
    this.#metrics.fannedOut(report.targets);
    return report;
  }

  /**
   * Every device's info, the other managers' included, each UUID once: a
   * device held here is listed as this manager sees it, whatever a mirror of
   * another manager (one that died, say) still says of it.
   */
  clientData(): DeviceInfo[] {
    const local = [...this.#registry.all()].map((connection) => connection.info);
    if (!this.#cluster) return local;
    const remote = [...this.#cluster.remoteDevices()].filter((info) =>
      !this.#registry.get(info.uuid)
    );
    return [...local, ...remote];
  }

  /** What the cluster adapter sees of this manager. */
  node(
    identity: Pick<ClusterNode, "nodeId" | "heartbeatRate" | "heartbeatTimeout" | "refreshState">,
  ): ClusterNode {
    const registry = this.#registry;
    return {
      ...identity,
      deliverAll: (data) => fanOut(registry.all(), data).reached,
      deliverType: (type, data) => fanOut(registry.ofType(type), data).reached,
      deliver: (uuid, data) => {
        const connection = registry.get(uuid);
        return connection ? fanOut([connection], data).reached : 0;
      },
      localDevices: () => [...registry.all()].map((connection) => connection.info),
      evict: (uuid, message) => registry.get(uuid)?.terminate("replaced", message),
    };
  }
}

/** Queues `data` on every target, encoded once per protocol mode; returns how many took it. */
function fanOut(
  targets: Iterable<Connection>,
  data: string | Uint8Array,
): { reached: number; payload: number } {
  let mode1: Uint8Array | undefined;
  let mode2: Uint8Array | undefined;
  let reached = 0;
  for (const connection of targets) {
    const bytes = connection.mode === 1
      ? (mode1 ??= encodeMessage(data, 1))
      : (mode2 ??= encodeMessage(data, 2));
    if (connection.enqueue(bytes)) reached++;
  }
  // The payload's size, read off what was encoded anyway (a string is not encoded again to count).
  const payload = mode1 ? mode1.length : mode2 ? payloadSize(mode2, 2) : 0;
  return { reached, payload };
}

/** The application payload's size in an encoded message: mode 2 has a frame header in front. */
function payloadSize(encoded: Uint8Array, mode: 1 | 2): number {
  return mode === 2 ? encoded.length - FRAME_HEADER_SIZE : encoded.length;
}

const encoder = new TextEncoder();
const DEFAULT_ACK_SECONDS = 15;

/**
 * Sends `data` to every target as a `MESSAGE` and waits for the `ACK`s: the
 * message bytes are encoded once and shared, each device gets its own 9-byte
 * header, and one deadline covers them all (no timer per device).
 */
async function fanOutAcked(
  targets: Iterable<Connection>,
  data: string | Uint8Array,
  options: AckedSendOptions,
): Promise<Omit<DeliveryReport, "remote" | "kept">> {
  const body = typeof data === "string" ? encoder.encode(data) : data;
  const seconds = options.timeout ?? DEFAULT_ACK_SECONDS;
  const sent: { uuid: string; acked: Promise<void>; cancel(error: Error): void }[] = [];
  for (const connection of targets) {
    sent.push({ uuid: connection.uuid, ...connection.sendAckedCancellable(body) });
  }
  // One deadline and one listener for the whole fan-out: what has not been acknowledged by then
  // fails as `timeout` (each send's own waits stay free of timers and listeners).
  const expire = () => {
    for (const entry of sent) {
      entry.cancel(new DeliveryError("timeout", entry.uuid, `no ACK within ${seconds} s`));
    }
  };
  const timer = Number.isFinite(seconds) ? setTimeout(expire, seconds * 1000) : undefined;
  options.signal?.addEventListener("abort", expire, { once: true });
  if (options.signal?.aborted) expire();
  const outcomes = await Promise.allSettled(sent.map((entry) => entry.acked));
  clearTimeout(timer);
  options.signal?.removeEventListener("abort", expire);
  const failed: { uuid: string; reason: DeliveryFailure }[] = [];
  outcomes.forEach((outcome, i) => {
    if (outcome.status === "fulfilled") return;
    const error = outcome.reason;
    failed.push({
      uuid: sent[i].uuid,
      reason: error instanceof DeliveryError ? error.reason : "timeout",
    });
  });
  return { targets: sent.length, acknowledged: sent.length - failed.length, failed };
}

/** A `TypeError` for a `ttl` or `timeout` that is not a number of seconds, else undefined. */
export function sendOptionsProblem(
  options: { readonly ttl?: number; readonly timeout?: number },
): TypeError | undefined {
  const { ttl, timeout } = options;
  if (ttl !== undefined && !(typeof ttl === "number" && ttl > 0 && Number.isFinite(ttl))) {
    return new TypeError(`ttl must be a positive number of seconds, got ${String(ttl)}`);
  }
  if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0)) {
    return new TypeError(`timeout must be a number of seconds >= 0, got ${String(timeout)}`);
  }
  return undefined;
}
