/**
 * The shapes both ends share: the protocol mode and a device's identity.
 *
 * @module
 */

/** Protocol mode of a connection: 1 (the seed's) or 2 (framed). */
export type ProtocolMode = 1 | 2;

/**
 * A device's identity as sent in the handshake: the seed's `Data`.
 *
 * @example
 * ```ts
 * import type { DeviceInfo } from "@iot-manager/core";
 * const info: DeviceInfo = { uuid: crypto.randomUUID(), type: "light", data: { room: "hall" } };
 * ```
 */
export interface DeviceInfo {
  /** The device's UUID in its 36-character form. */
  readonly uuid: string;
  /** One of the manager's valid types. */
  readonly type: string;
  /** The JSON object the device sent. */
  readonly data: Record<string, unknown>;
}
