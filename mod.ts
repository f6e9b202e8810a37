/**
 * Run a fleet of IoT devices from one TypeScript program.
 *
 * Devices (lights, locks, thermostats, ...) connect over TCP or TLS; the
 * {@linkcode Manager} asks each who it is, checks it answers heartbeats, and
 * lets you talk to devices one by one, by type or all at once. Connected
 * devices and their messages are async iterators.
 *
 * A Deno port of the Python `iot-manager`: a device written to the original
 * protocol works unchanged (protocol mode 1); mode 2 adds framing.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 *
 * await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 0 });
 * manager.on("connect", (client) => console.log(`${client.type} ${client.uuid} is here`));
 * (async () => {
 *   for await (const { client, text } of manager.messages()) console.log(client.uuid, text);
 * })();
 * await manager.sendType("light", "on");
 * ```
 *
 * @module
 */

export { Manager } from "./lib/manager.ts";
export type { AckedSendOptions, DeliveryReport, SendToOptions } from "./lib/routing.ts";
export type { KeptStats } from "./lib/kept.ts";
export type {
  DeviceState,
  ManagerState,
  StateChange,
  StateChangesOptions,
} from "./lib/device_state.ts";
export {
  type DeviceRecord,
  type DeviceRecordChanges,
  type DeviceStore,
  EMPTY_RECORD,
  type KeepLimits,
  type KeepResult,
  type KeptMessage,
  MemoryStore,
} from "./lib/store.ts";
export { SqliteStore } from "./lib/sqlite_store.ts";
export type { ManagerStats } from "./lib/metrics.ts";
export { type HistogramSnapshot, quantile } from "./lib/histogram.ts";
export { metricsHandler, PROMETHEUS_CONTENT_TYPE, prometheusText } from "./lib/prometheus.ts";
export type { JsonObject, JsonValue } from "./lib/protocol/state.ts";
export type {
  ClientsOptions,
  DeviceMessage,
  ManagerEvents,
  MessagesOptions,
  TypeFilter,
} from "./lib/dispatcher.ts";
export type { ManagerOptions } from "./lib/manager_options.ts";
export type {
  Client,
  EndOptions,
  MessagesOfClientOptions,
  SendOptions,
  WaitOptions,
} from "./lib/client.ts";
export type { ClusterAdapter, ClusterNode } from "./lib/cluster.ts";
export {
  type Authenticate,
  type AuthRequest,
  type AuthVerdict,
  CHALLENGE_SIZE,
  computeProof,
  hmacAuthenticator,
  type SecretLookup,
} from "./lib/auth.ts";
export {
  ConnectionEnd,
  DeliveryError,
  type DeliveryFailure,
  type EndReason,
  InvalidInfo,
  type InvalidInfoReason,
  IotManagerError,
  isInvalidInfoReason,
  ListenError,
  type ListenFailure,
  ProtocolError,
  type ProtocolErrorReason,
  TimeoutError,
} from "./lib/errors.ts";
export type { DeviceInfo, ProtocolMode } from "./lib/protocol/types.ts";
export { Device } from "./lib/device.ts";
export type {
  DeviceEvents,
  DeviceOptions,
  DeviceStats,
  DeviceTlsOptions,
} from "./lib/device_options.ts";
export type { ReconnectOptions } from "./lib/reconnect.ts";
export type { ManagerSettings } from "./lib/protocol/welcome.ts";
