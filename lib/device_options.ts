/**
 * How a {@linkcode Device} is configured, what it counts and which events it
 * emits; and the checks its options pass before anything connects.
 *
 * @module
 */

import { validate as isUuid } from "uuid";
import type { ConnectionEnd } from "./errors.ts";
import type { JsonObject, ProtocolMode } from "./protocol/mod.ts";
import type { ReconnectOptions } from "./reconnect.ts";
import type { Device } from "./device.ts";
import { checkPositive, MAX_TIMER_SECONDS, shown } from "./option_checks.ts";

/**
 * TLS settings for a device.
 *
 * @example
 * ```ts
 * import type { DeviceTlsOptions } from "@iot-manager/core";
 * const tls: DeviceTlsOptions = { caCerts: ["-----BEGIN CERTIFICATE-----\n..."] };
 * ```
 */
export interface DeviceTlsOptions {
  /**
   * Root certificates (PEM) to trust instead of the default roots, e.g. your fleet's private CA.
   * @default the default (Mozilla) roots
   */
  readonly caCerts?: readonly string[];
}

/**
 * How to connect a {@linkcode Device}.
 *
 * @example
 * ```ts
 * import type { DeviceOptions } from "@iot-manager/core";
 * const options: DeviceOptions = { port: 8595, type: "light", data: { on: false }, mode: 2 };
 * ```
 */
export interface DeviceOptions {
  /** The manager's host. @default "127.0.0.1" */
  readonly hostname?: string;
  /** The manager's port. @default 8595 */
  readonly port?: number;
  /** Connect with TLS: `true` trusts the default roots, an object may name the CAs to trust. @default false */
  readonly tls?: boolean | DeviceTlsOptions;
  /** The device's UUID (36-character form). @default crypto.randomUUID() */
  readonly uuid?: string;
  /** The device's type; must be one of the manager's `validTypes`. */
  readonly type: string;
  /** The JSON object sent in the handshake and in answers to `getinfo`. @default {} */
  readonly data?: Record<string, unknown>;
  /**
   * The device's secret, to answer a manager's authentication `CHALLENGE` (mode 2) with an
   * HMAC proof. Without it a challenged device sends an empty proof, which `hmacAuthenticator`
   * refuses.
   */
  readonly secret?: string | Uint8Array;
  /** Protocol mode: 1 (the seed's, no message boundaries) or 2 (framed). @default 2 */
  readonly mode?: ProtocolMode;
  /** Reconnect after a drop; `true` uses the defaults of {@linkcode ReconnectOptions}. @default false */
  readonly reconnect?: boolean | ReconnectOptions;
  /** Seconds allowed for each connection attempt, handshake included. @default 15 */
  readonly connectTimeout?: number;
  /**
   * Seconds the first connection keeps trying while the manager cannot be
   * reached (connection refused or reset, no handshake within
   * `connectTimeout`), waiting between attempts with the reconnect backoff
   * (`reconnect`'s settings, or its defaults when `reconnect` is off). A device
   * started a moment before its manager then still arrives, as a real one
   * that retries would. A refusal by the manager (`InvalidInfo`) and a peer
   * that breaks the protocol (`ConnectionEnd` reason `"protocol"`) are not
   * retried. 0: the first attempt fails fast. @default 0
   */
  readonly waitForManager?: number;
  /**
   * Seconds without a byte from the manager after which it counts as gone: the
   * connection ends with reason `"keepalive"` and the device reconnects if it
   * may. MQTT clients do the same with their keepalive. Measured in this
   * process's running time (a stall of the device's own process does not
   * count). @default in mode 2, the manager's promise from `WELCOME`,
   * `heartbeatRate + heartbeatTimeout`, plus 10 % and at least 1 s of slack;
   * in mode 1 (no `WELCOME`), off
   */
  readonly keepalive?: number;
  /** Answer heartbeats; `false` makes a device the manager will drop (for tests and chaos). @default true */
  readonly answerHeartbeats?: boolean;
  /**
   * Messages held unread before the device stops reading its socket. While it
   * is paused it answers no heartbeats either, so a consumer that stalls for
   * longer than the manager's heartbeat timeout gets the device disconnected;
   * the device learns of it (`connected` turns false, `send` fails) only once
   * the consumer reads again and the socket is read.
   * @default 1024
   */
  readonly highWaterMark?: number;
  /** Largest mode-2 frame accepted from the manager, in bytes. @default 1048576 */
  readonly maxFrameSize?: number;
  /** Bytes queued for sending before the manager counts as not reading and the connection ends. @default 1048576 */
  readonly maxBufferedBytes?: number;
  /**
   * Closes the device when aborted (reason `"kicked"`); aborted while
   * `connect()` is still trying, it rejects with the signal's reason, as
   * `fetch` does.
   */
  readonly signal?: AbortSignal;
  /** LogTape category root; the device logs under `[...logCategory, "device"]`. @default ["iot-manager"] */
  readonly logCategory?: string | readonly string[];
}

/**
 * Counters a device keeps over its whole life, reconnections included.
 *
 * @example
 * ```ts
 * import { Device, Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * await using light = await Device.connect({ port: manager.port, type: "light" });
 * const { heartbeatsAnswered, messagesReceived } = light.stats;
 * ```
 */
export interface DeviceStats {
  /** Messages received from the manager (reads, in mode 1). */
  readonly messagesReceived: number;
  /** Messages received after the consumer stopped iterating, and so dropped. */
  readonly messagesDropped: number;
  /** Messages queued for sending. */
  readonly messagesSent: number;
  /** Heartbeats answered. */
  readonly heartbeatsAnswered: number;
  /** Heartbeats left unanswered because `answerHeartbeats` was false. */
  readonly heartbeatsIgnored: number;
  /** Successful reconnections. */
  readonly reconnects: number;
}

/**
 * Event handlers of a {@linkcode Device}, registered with `device.on(event, handler)`.
 *
 * @example
 * ```ts
 * import type { DeviceEvents } from "@iot-manager/core";
 * const onDisconnect: DeviceEvents["disconnect"] = (end, willReconnect) =>
 *   console.log(`dropped (${end.reason})${willReconnect ? ", reconnecting" : ""}`);
 * ```
 */
export interface DeviceEvents {
  /** The connection ended; `willReconnect` says whether the device tries again. */
  disconnect: (end: ConnectionEnd, willReconnect: boolean) => void;
  /** The device reconnected and completed its handshake again. */
  reconnect: (device: Device) => void;
  /**
   * The manager sent the difference between the desired state and what this
   * device reported (mode 2, feature `state`): on connecting, and whenever
   * the application changes the desired state. Apply it, then `report()`.
   */
  delta: (delta: JsonObject, version: number) => void;
}

/** Throws a `TypeError` unless `data` is a JSON object (not an array, not null). */
export function validateData(data: unknown): void {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new TypeError("device data must be a JSON object");
  }
}

/** Throws a `TypeError` naming the first invalid option. */
export function validateOptions(options: DeviceOptions): void {
  if (options.uuid !== undefined && !isUuid(options.uuid)) {
    throw new TypeError(`invalid uuid ${JSON.stringify(options.uuid)}: a 36-character UUID`);
  }
  if (typeof options.type !== "string" || options.type === "" || options.type.includes("##")) {
    throw new TypeError(
      `invalid device type ${JSON.stringify(options.type)}: a non-empty string without "##"`,
    );
  }
  if (options.data !== undefined) validateData(options.data);
  if (options.mode !== undefined && options.mode !== 1 && options.mode !== 2) {
    throw new TypeError(`mode must be 1 or 2, got ${shown(options.mode)}`);
  }
  const reconnect = typeof options.reconnect === "object" ? options.reconnect : {};
  // Durations (seconds) must also fit a timer; counts and sizes need only be positive.
  checkPositive("connectTimeout", options.connectTimeout, true);
  checkPositive("keepalive", options.keepalive, true);
  checkPositive("reconnect.initialDelay", reconnect.initialDelay, true);
  checkPositive("reconnect.maxDelay", reconnect.maxDelay, true);
  checkPositive("highWaterMark", options.highWaterMark);
  checkPositive("maxFrameSize", options.maxFrameSize);
  checkPositive("maxBufferedBytes", options.maxBufferedBytes);
  checkPositive("reconnect.maxAttempts", reconnect.maxAttempts);
  checkPositive("reconnect.maxReplaced", reconnect.maxReplaced);
  const wait = options.waitForManager;
  if (wait !== undefined && !(typeof wait === "number" && wait >= 0 && wait <= MAX_TIMER_SECONDS)) {
    throw new TypeError(
      `waitForManager must be a number of seconds from 0 to ${MAX_TIMER_SECONDS}, got ${
        shown(wait)
      }`,
    );
  }
  const jitter = reconnect.jitter;
  if (jitter !== undefined && !(typeof jitter === "number" && jitter >= 0 && jitter <= 1)) {
    throw new TypeError(`reconnect.jitter must be between 0 and 1, got ${shown(jitter)}`);
  }
}
