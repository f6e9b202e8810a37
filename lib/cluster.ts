/**
 * Scaling out: the contract between a manager and a cluster adapter. A single
 * manager needs none (the default keeps everything in process); with an
 * adapter such as `RedisAdapter` (`@iot-manager/core/redis`) several managers
 * behind a load balancer act as one: sends reach devices on any node, client
 * data is cluster-wide and a device that moves to another node replaces its
 * old connection there.
 *
 * @module
 */

import type { DeviceInfo } from "./protocol/mod.ts";

/**
 * What a manager offers its cluster adapter: local delivery and its own
 * devices. Adapters never see sockets.
 */
export interface ClusterNode {
  /** This manager's id in the cluster (random per manager). */
  readonly nodeId: string;
  /** Seconds between the manager's heartbeat rounds (adapters tie expiry to it). */
  readonly heartbeatRate: number;
  /** Seconds a device has to answer a heartbeat. */
  readonly heartbeatTimeout: number;
  /** Sends to every local device; returns how many it reached. */
  deliverAll(data: string | Uint8Array): number;
  /** Sends to local devices of `type`; returns how many it reached. */
  deliverType(type: string, data: string | Uint8Array): number;
  /** Sends to the local device with `uuid`; returns 1 or 0. */
  deliver(uuid: string, data: string | Uint8Array): number;
  /** The devices connected to this manager. */
  localDevices(): Iterable<DeviceInfo>;
  /** Ends a local device's connection because it reconnected to another node. */
  evict(uuid: string, message: string): void;
  /**
   * Another node changed the desired state of `uuid` in the store the nodes
   * share: read it back, and send the delta if the device is connected here.
   */
  refreshState(uuid: string): void;
}

/**
 * Connects a manager to its peers. The manager calls `attach` once at start,
 * `deviceConnected`/`deviceDisconnected` as its own devices come and go, the send methods
 * for the part of a send that is not local, and `close` on shutdown.
 *
 * @example
 * ```ts
 * import { type ClusterAdapter, Manager } from "@iot-manager/core";
 * // A do-nothing adapter: the same as running without one.
 * const solo: ClusterAdapter = {
 *   attach: () => Promise.resolve(),
 *   deviceConnected: () => {},
 *   deviceDisconnected: () => {},
 *   sendAll: () => Promise.resolve(0),
 *   sendType: () => Promise.resolve(0),
 *   send: () => Promise.resolve(0),
 *   remoteDevices: () => [],
 *   close: () => Promise.resolve(),
 * };
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0, cluster: solo });
 * ```
 */
export interface ClusterAdapter {
  /** Joins the cluster as `node`. */
  attach(node: ClusterNode): Promise<void>;
  /** A device completed its handshake on this node (or changed its info). */
  deviceConnected(info: DeviceInfo): void;
  /** A device of this node disconnected. */
  deviceDisconnected(info: DeviceInfo): void;
  /** Sends to every device on the other nodes; resolves with how many it reached. */
  sendAll(data: string | Uint8Array): Promise<number>;
  /** Sends to devices of `type` on the other nodes; resolves with how many it reached. */
  sendType(type: string, data: string | Uint8Array): Promise<number>;
  /** Sends to `uuid` if another node holds it; resolves with 1 or 0. */
  send(uuid: string, data: string | Uint8Array): Promise<number>;
  /** Devices connected to the other nodes, as last known. */
  remoteDevices(): Iterable<DeviceInfo>;
  /** Leaves the cluster. */
  close(): Promise<void>;
  /**
   * This node changed the desired state of `uuid` in the shared store: tell the
   * others (each calls its node's `refreshState`). Optional: adapters without a
   * shared store have nothing to tell.
   */
  stateChanged?(uuid: string): void;
}
