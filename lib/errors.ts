/**
 * Typed errors. Every error carries a machine-readable `reason` next to its
 * human-readable message, so code can branch on it and logs can group by it.
 *
 * @module
 */

/**
 * The base of every error the library throws: a `name`, a human-readable
 * message, a machine-readable `reason` to branch on and group logs by, and an
 * optional `cause` (ES2022 `ErrorOptions`), as nats.js's errors have.
 *
 * @example
 * ```ts
 * import { InvalidInfo, IotManagerError } from "@iot-manager/core";
 * const error: IotManagerError = new InvalidInfo("type", "type \"fridge\" is not valid");
 * console.log(error instanceof IotManagerError, error.reason); // true "type"
 * ```
 */
export abstract class IotManagerError extends Error {
  /** Machine-readable cause; each subclass lists its values. */
  abstract readonly reason: string;
}

/**
 * Why a connection ended. Passed to `disconnect` handlers and resolved by
 * `client.closed`.
 *
 * - `"closed"`: the device closed its socket.
 * - `"ended"`: the device sent an end frame (mode 2).
 * - `"heartbeat"`: the device did not answer a heartbeat in time.
 * - `"replaced"`: a newer connection presented the same UUID.
 * - `"kicked"`: the application called `client.end()`.
 * - `"manager-closed"`: the manager shut down.
 * - `"protocol"`: the device broke the wire protocol (bad frame, oversize, ...).
 * - `"io"`: reading from or writing to the socket failed.
 * - `"buffer-full"`: the device stopped reading and its send buffer filled up.
 * - `"write-timeout"`: a write to the device made no progress within `writeTimeout`.
 * - `"keepalive"` (device side): the manager sent nothing for longer than it promised.
 * - `"refused"` (device side): the manager refused the handshake; `cause` is the
 *   {@linkcode InvalidInfo} with the manager's reason.
 */
export type EndReason =
  | "closed"
  | "ended"
  | "heartbeat"
  | "replaced"
  | "kicked"
  | "manager-closed"
  | "protocol"
  | "io"
  | "buffer-full"
  | "write-timeout"
  | "keepalive"
  | "refused";

/**
 * The connection to a device is over. The seed's `ConnectionEnd`: thrown by
 * `recv`, `request`, `getData` and `heartbeat` once the connection has ended,
 * and passed to `disconnect` handlers.
 *
 * @example
 * ```ts
 * import { ConnectionEnd } from "@iot-manager/core";
 * const end = new ConnectionEnd("heartbeat", "no beat within 15 s");
 * console.log(end.reason); // "heartbeat"
 * ```
 */
export class ConnectionEnd extends IotManagerError {
  /** Machine-readable cause. */
  readonly reason: EndReason;

  /**
   * Creates the error.
   *
   * @param reason Machine-readable cause.
   * @param message Human-readable detail.
   * @param options Standard error options (`cause`).
   */
  constructor(reason: EndReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionEnd";
    this.reason = reason;
  }
}

/**
 * Which part of a handshake answer was wrong.
 *
 * - `"encoding"`: not valid UTF-8.
 * - `"uuid"`: not a 36-character UUID.
 * - `"type"`: not one of the manager's valid types.
 * - `"data"`: the device data is not a JSON object.
 * - `"fields"`: not `uuid##type##{json}` (a field missing or extra bytes).
 * - `"size"`: longer than the manager's handshake limit.
 * - `"timeout"`: not complete within the handshake timeout.
 * - `"preamble"`: a mode-2 answer with an unknown version or bad framing.
 * - `"auth"`: refused by the manager's `authenticate` hook (or no proof given).
 * - `"conflict"`: another live connection holds this UUID, and the two have been
 *   taking it from each other; the holder keeps it for a minute.
 */
export type InvalidInfoReason =
  | "encoding"
  | "uuid"
  | "type"
  | "data"
  | "fields"
  | "size"
  | "timeout"
  | "preamble"
  | "auth"
  | "conflict";

/** Every {@linkcode EndReason}, for counters that start at 0. */
export const END_REASONS: readonly EndReason[] = [
  "closed",
  "ended",
  "heartbeat",
  "replaced",
  "kicked",
  "manager-closed",
  "protocol",
  "io",
  "buffer-full",
  "write-timeout",
  "keepalive",
  "refused",
];

const INVALID_INFO_REASONS: ReadonlySet<string> = new Set<InvalidInfoReason>([
  "encoding",
  "uuid",
  "type",
  "data",
  "fields",
  "size",
  "timeout",
  "preamble",
  "auth",
  "conflict",
]);

/** Every {@linkcode InvalidInfoReason}, for counters that start at 0. */
export function invalidInfoReasons(): InvalidInfoReason[] {
  return [...INVALID_INFO_REASONS] as InvalidInfoReason[];
}

/**
 * Whether `reason` is one of the {@linkcode InvalidInfoReason} codes (as read
 * from a manager's `END` frame).
 *
 * @example
 * ```ts
 * import { isInvalidInfoReason } from "@iot-manager/core";
 * console.log(isInvalidInfoReason("type"), isInvalidInfoReason("heartbeat")); // true false
 * ```
 */
export function isInvalidInfoReason(reason: string): reason is InvalidInfoReason {
  return INVALID_INFO_REASONS.has(reason);
}

/**
 * A device answered the handshake (`getinfo`) with something the manager cannot
 * accept. The seed's `InvalidInfo`.
 *
 * @example
 * ```ts
 * import { parseHandshake } from "@iot-manager/core/protocol";
 * import { InvalidInfo } from "@iot-manager/core";
 * try {
 *   parseHandshake("not-a-uuid##light##{}", ["light"]);
 * } catch (error) {
 *   if (error instanceof InvalidInfo) console.log(error.reason); // "uuid"
 * }
 * ```
 */
export class InvalidInfo extends IotManagerError {
  /** Machine-readable cause. */
  readonly reason: InvalidInfoReason;

  /**
   * Creates the error.
   *
   * @param reason Machine-readable cause.
   * @param message Human-readable detail.
   * @param options Standard error options (`cause`).
   */
  constructor(reason: InvalidInfoReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidInfo";
    this.reason = reason;
  }
}

/** Why a {@linkcode ProtocolError} was thrown. */
export type ProtocolErrorReason = "frame-size" | "frame-type" | "sequence" | "payload";

/**
 * Bytes on the wire that break protocol mode 2 after the handshake: an unknown
 * frame type or a frame larger than the limit.
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "@iot-manager/core/protocol";
 * import { ProtocolError } from "@iot-manager/core";
 * const decoder = new FrameDecoder(16);
 * try {
 *   decoder.push(new Uint8Array([0x10, 0, 0, 1, 0]), () => {});
 * } catch (error) {
 *   if (error instanceof ProtocolError) console.log(error.reason); // "frame-size"
 * }
 * ```
 */
export class ProtocolError extends IotManagerError {
  /**
   * Machine-readable cause: `"frame-size"` (over the limit), `"frame-type"`
   * (unknown type), `"sequence"` (a known message where the protocol does not
   * allow it, e.g. anything but `getinfo` first), `"payload"` (a control
   * frame whose payload does not parse).
   */
  readonly reason: ProtocolErrorReason;

  /**
   * Creates the error.
   *
   * @param reason Machine-readable cause.
   * @param message Human-readable detail.
   * @param options Standard error options (`cause`).
   */
  constructor(reason: ProtocolErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.reason = reason;
  }
}

/**
 * Why an acknowledged message was not acknowledged:
 *
 * - `"timeout"`: no `ACK` within the send's `timeout`.
 * - `"disconnected"`: the connection ended first (`cause` is its {@linkcode ConnectionEnd}).
 * - `"buffer-full"`: the device's send buffer was full, so the connection ended.
 * - `"unsupported"`: the device does not speak the `ack` feature (mode 1, or an older mode-2 device).
 * - `"offline"`: no device with this UUID is connected (and no `ttl` keeps the message).
 */
export type DeliveryFailure =
  | "timeout"
  | "disconnected"
  | "buffer-full"
  | "unsupported"
  | "offline";

/**
 * An acknowledged send (`{ ack: true }`) failed for one device.
 *
 * @example
 * ```ts
 * import { DeliveryError } from "@iot-manager/core";
 * const error = new DeliveryError("timeout", "1862cfe1-5dab-4d8e-a946-50d6728f830f", "no ACK within 5 s");
 * console.log(error.reason, error.uuid); // timeout 1862cfe1-...
 * ```
 */
export class DeliveryError extends IotManagerError {
  /** Machine-readable cause. */
  readonly reason: DeliveryFailure;
  /** The device it was for. */
  readonly uuid: string;

  /**
   * Creates the error.
   *
   * @param reason Machine-readable cause.
   * @param uuid The device it was for.
   * @param message Human-readable detail.
   * @param options Standard error options (`cause`).
   */
  constructor(reason: DeliveryFailure, uuid: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DeliveryError";
    this.reason = reason;
    this.uuid = uuid;
  }
}

/**
 * A wait (`recv`, `request`, `getData`, `heartbeat`) ran past its timeout. The
 * connection stays open unless the method says otherwise.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@iot-manager/core";
 * const error = new TimeoutError("no answer within 15 s");
 * console.log(error.name, error.reason); // "TimeoutError" "timeout"
 * ```
 */
export class TimeoutError extends IotManagerError {
  /** Always `"timeout"`. */
  readonly reason = "timeout" as const;

  /**
   * Creates the error.
   *
   * @param message Human-readable detail.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
  }
}

/**
 * Why a manager could not listen (`ListenError.reason`):
 * - `"address-in-use"`: another program (or another manager) holds the port.
 * - `"permission-denied"`: the process may not listen there (a port below
 *   1024 without the right, or Deno run without `--allow-net` for it).
 * - `"address-not-available"`: `hostname` is not an address of this machine.
 * - `"io"`: anything else the operating system said; `cause` has it.
 */
export type ListenFailure =
  | "address-in-use"
  | "permission-denied"
  | "address-not-available"
  | "io";

/**
 * `Manager.listen` could not open its port. The message is one line that
 * says where and why, e.g. `cannot listen on 127.0.0.1:8595: the port is
 * already in use (choose another port, or 0 for any free one)`; `cause` is
 * the operating system's error.
 *
 * @example
 * ```ts
 * import { ListenError, Manager } from "@iot-manager/core";
 * await using first = await Manager.listen({ validTypes: ["light"], port: 0 });
 * try {
 *   await Manager.listen({ validTypes: ["light"], port: first.port });
 * } catch (error) {
 *   if (error instanceof ListenError) console.log(error.reason); // "address-in-use"
 * }
 * ```
 */
export class ListenError extends IotManagerError {
  /** Machine-readable cause. */
  readonly reason: ListenFailure;
  /** The interface it tried to listen on. */
  readonly hostname: string;
  /** The port it tried to listen on. */
  readonly port: number;

  /**
   * Creates the error; the message is made from the three.
   *
   * @param reason Machine-readable cause.
   * @param hostname The interface.
   * @param port The port.
   * @param options Standard error options (`cause`: the operating system's
   *   error), and `reusePort` when the listener asked to share the port (the
   *   message then says that every listener on it must).
   */
  constructor(
    reason: ListenFailure,
    hostname: string,
    port: number,
    options?: ErrorOptions & { readonly reusePort?: boolean },
  ) {
    const shared = reason === "address-in-use" && options?.reusePort
      ? "; a port is shared only when every listener on it sets reusePort"
      : "";
    super(
      `cannot listen on ${hostname}:${port}: ${LISTEN_FAILURES[reason](options?.cause)}${shared}`,
      options,
    );
    this.name = "ListenError";
    this.reason = reason;
    this.hostname = hostname;
    this.port = port;
  }

  /**
   * The `ListenError` for an error thrown by `Deno.listen`, `Deno.serve` or a
   * `node:net` server's `listen` (by its `code`).
   *
   * @example
   * ```ts
   * import { ListenError } from "@iot-manager/core";
   * const error = ListenError.from(new Deno.errors.AddrInUse("taken"), "127.0.0.1", 8595);
   * console.log(error.reason); // "address-in-use"
   * ```
   */
  static from(error: unknown, hostname: string, port: number, reusePort = false): ListenError {
    const code = (error as { code?: unknown } | null)?.code;
    const reason: ListenFailure = error instanceof Deno.errors.AddrInUse || code === "EADDRINUSE"
      ? "address-in-use"
      : error instanceof Deno.errors.PermissionDenied ||
          error instanceof Deno.errors.NotCapable || code === "EACCES"
      ? "permission-denied"
      : error instanceof Deno.errors.AddrNotAvailable || code === "EADDRNOTAVAIL"
      ? "address-not-available"
      : "io";
    return new ListenError(reason, hostname, port, { cause: error, reusePort });
  }
}

const LISTEN_FAILURES: Readonly<Record<ListenFailure, (cause: unknown) => string>> = {
  "address-in-use": () => "the port is already in use (choose another port, or 0 for any free one)",
  "permission-denied": (cause) =>
    `permission denied (${
      cause instanceof Deno.errors.NotCapable
        ? "run Deno with --allow-net for it"
        : "ports below 1024 need privileges; choose a higher port"
    })`,
  "address-not-available": () => "no such address on this machine (check the hostname)",
  "io": (cause) => (cause as Error)?.message ?? String(cause),
};
