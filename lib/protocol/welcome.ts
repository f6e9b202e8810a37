/**
 * Mode 2's `WELCOME` frame: the manager's last word of a successful
 * handshake, a JSON object announcing the settings the device must respect.
 * Both ends use these two functions, so the field names live in one place.
 *
 * @module
 */

import { encodeFrame, FrameType } from "./frames.ts";
import { type Feature, knownFeatures } from "./delivery.ts";

/**
 * What a mode-2 manager announces in `WELCOME`. Every field is optional on the
 * wire: a device ignores what it does not know and treats a missing field as
 * "not announced".
 *
 * @example
 * ```ts
 * import { Device, Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0, heartbeatRate: 30 });
 * await using light = await Device.connect({ port: manager.port, type: "light" });
 * console.log(light.settings?.heartbeatRate); // 30
 * ```
 */
export interface ManagerSettings {
  /** Seconds between the manager's heartbeat rounds. */
  readonly heartbeatRate?: number;
  /** Seconds the manager waits for a beat. */
  readonly heartbeatTimeout?: number;
  /** Largest frame payload the manager accepts, in bytes. */
  readonly maxFrameSize?: number;
  /**
   * Optional features the manager offers (`"ack"`, `"state"`). A device that
   * uses any answers with a `FEATURES` frame before anything else; one that
   * does not know them ignores the field and is never sent their frames.
   */
  readonly features?: readonly Feature[];
}

const decoder = new TextDecoder();

/**
 * Encodes a `WELCOME` frame: `{"mode":2, ...settings}` as its JSON payload.
 *
 * @example
 * ```ts
 * import { encodeWelcome, parseWelcome } from "@iot-manager/core/protocol";
 * const frame = encodeWelcome({ heartbeatRate: 30, heartbeatTimeout: 10, maxFrameSize: 1048576 });
 * console.log(parseWelcome(frame.subarray(5)).heartbeatRate); // 30
 * ```
 */
export function encodeWelcome(settings: ManagerSettings): Uint8Array {
  return encodeFrame(FrameType.WELCOME, JSON.stringify({ mode: 2, ...settings }));
}

/**
 * Reads a `WELCOME` payload. Never throws: what is not a JSON object, or a
 * field that is not a number, counts as not announced.
 *
 * @example
 * ```ts
 * import { parseWelcome } from "@iot-manager/core/protocol";
 * console.log(parseWelcome(new TextEncoder().encode('{"heartbeatRate":"soon"}'))); // {}
 * ```
 */
export function parseWelcome(payload: Uint8Array): ManagerSettings {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    return {};
  }
  if (typeof value !== "object" || value === null) return {};
  const record = value as Record<string, unknown>;
  const settings: { -readonly [K in keyof ManagerSettings]: ManagerSettings[K] } = {};
  for (const key of ["heartbeatRate", "heartbeatTimeout", "maxFrameSize"] as const) {
    if (typeof record[key] === "number") settings[key] = record[key];
  }
  if (Array.isArray(record.features)) settings.features = knownFeatures(record.features);
  return settings;
}
