/**
 * How a manager is configured: every option with its unit and default (the
 * seed's `Manager(...)` arguments have counterparts here, see the README's
 * mapping table), how defaults are filled in, and how options are checked.
 *
 * @module
 */

import type { Authenticate } from "./auth.ts";
import type { ClusterAdapter } from "./cluster.ts";
import type { DeviceStore } from "./store.ts";
import { checkPositive, shown } from "./option_checks.ts";

/** Largest `mode1ReadSize`, in bytes: a buffer this size is held per mode-1 device. */
const MAX_MODE1_READ_SIZE = 64 * 1024 * 1024;

/**
 * How to run a manager. Every option of the seed's `Manager(...)` has a
 * counterpart here; see the README's mapping table.
 */
export interface ManagerOptions {
  /** Device types a client may identify as (the seed's `valid_types`). */
  readonly validTypes: readonly string[];
  /** Interface to listen on (the seed's `host`). @default "127.0.0.1" */
  readonly hostname?: string;
  /** Port to listen on; 0 lets the OS pick, `manager.port` tells (the seed's `connection_port`). @default 8595 */
  readonly port?: number;
  /** PEM certificate chain and key: listen with TLS (the seed's `ssl_context`). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /**
   * Let other processes listen on the same port (`SO_REUSEPORT`; Linux
   * spreads new connections across them; elsewhere the platform's own
   * `SO_REUSEPORT` behaviour applies): several
   * managers on one machine, one JavaScript thread each, behind one port.
   * Join them with a `cluster` adapter (`RedisAdapter`) so each can reach the
   * whole fleet. Every manager on the port must set it. Plain TCP is then
   * served through `node:net` (Deno's own listener needs `--unstable-net` for
   * it), which costs more CPU and memory per device than `Deno.listen`.
   * @default false
   */
  readonly reusePort?: boolean;
  /** Seconds between heartbeat rounds; fractions allowed (the seed's `heartbeat_rate`). @default 60 */
  readonly heartbeatRate?: number;
  /** Seconds a device has to answer a heartbeat. @default 15 */
  readonly heartbeatTimeout?: number;
  /** Seconds a new connection has to complete its handshake. @default 15 */
  readonly handshakeTimeout?: number;
  /** Most handler calls in flight at once (the seed's `max_workers`). @default 16 */
  readonly maxConcurrentHandlers?: number;
  /** Seconds after which a still-running async handler is logged and stops holding one of those slots. @default 30 */
  readonly handlerTimeout?: number;
  /** Most connections still in handshake; more are refused at once (the seed's `backlogged_connections`). @default 1000 */
  readonly maxPendingHandshakes?: number;
  /** Most devices connected at once; more are refused. @default Infinity */
  readonly maxClients?: number;
  /** Largest handshake answer, in bytes. @default 65536 */
  readonly maxHandshakeSize?: number;
  /** Largest mode-2 frame payload a device may send, in bytes. @default 1048576 */
  readonly maxFrameSize?: number;
  /**
   * Bytes of a mode-1 device's read buffer. In mode 1 one read is one message
   * (the seed protocol has no boundaries), so this is the longest mode-1
   * message delivered whole; a longer one arrives as several messages. Every
   * connected mode-1 device holds a buffer this size while its read is
   * pending: with short messages, 1024 frees 15 KiB of it per idle device
   * (RSS 31.8 → 18.9 KB per device at 5,000, bench/README.md). A whole
   * number from 1 to 67108864 (64 MiB). @default 16384
   */
  readonly mode1ReadSize?: number;
  /** Bytes queued to one device before it counts as not reading and is disconnected. @default 1048576 */
  readonly maxBufferedBytes?: number;
  /** Seconds a write to a device may make no progress before it is disconnected. @default 30 */
  readonly writeTimeout?: number;
  /**
   * Accepts or refuses each handshake. With it set, mode-2 devices are sent a
   * `CHALLENGE` and must answer with a `PROOF` before the hook runs, and a
   * connection can only replace a live device with the same UUID by passing
   * it. See {@linkcode hmacAuthenticator}.
   */
  readonly authenticate?: Authenticate;
  /** LogTape category root for this manager's logs (the seed's `logging_id`). @default ["iot-manager"] */
  readonly logCategory?: string | readonly string[];
  /**
   * Joins several managers into one fleet: sends, client data and UUID
   * takeovers then span every manager (see `RedisAdapter` in
   * `@iot-manager/core/redis`). Without it the manager stands alone.
   */
  readonly cluster?: ClusterAdapter;
  /**
   * Closes the manager when aborted, as `Deno.serve`'s `signal` does (see `close()`).
   * `listen` throws the reason if it is already aborted.
   */
  readonly signal?: AbortSignal;
  /**
   * Where devices' desired and reported state and their kept messages live
   * (see `manager.state`). The manager closes it when it closes.
   * @default a new `MemoryStore` (forgotten when the process ends); `SqliteStore` survives restarts
   */
  readonly store?: DeviceStore;
  /**
   * Largest desired or reported state of one device, as JSON text, in bytes: a larger
   * `setDesired` is refused (`RangeError`), a device whose reports grow past it is disconnected
   * (`protocol`). @default 65536
   */
  readonly maxStateSize?: number;
  /** Messages kept per absent device (`send` with `ttl`); beyond it the oldest is dropped. @default 100 */
  readonly maxKeptPerDevice?: number;
  /** Messages kept for all absent devices together; beyond it the device's oldest is dropped. @default 10000 */
  readonly maxKept?: number;
}

/** Options with every default filled in (what the manager runs with). */
export type ResolvedOptions = Required<
  Omit<ManagerOptions, "tls" | "logCategory" | "authenticate" | "cluster" | "store" | "signal">
>;

/**
 * Fills in the defaults.
 *
 * @param options What the user gave.
 * @param validTypes The accepted types (copied once by the manager).
 * @param addr Where the listener ended up (port 0 becomes the OS's pick).
 * @returns Every option, defaults included.
 */
export function resolveOptions(
  options: ManagerOptions,
  validTypes: readonly string[],
  addr: Deno.NetAddr,
): ResolvedOptions {
  return {
    validTypes,
    hostname: addr.hostname,
    port: addr.port,
    heartbeatRate: options.heartbeatRate ?? 60,
    heartbeatTimeout: options.heartbeatTimeout ?? 15,
    handshakeTimeout: options.handshakeTimeout ?? 15,
    maxConcurrentHandlers: options.maxConcurrentHandlers ?? 16,
    handlerTimeout: options.handlerTimeout ?? 30,
    maxPendingHandshakes: options.maxPendingHandshakes ?? 1000,
    maxClients: options.maxClients ?? Infinity,
    maxHandshakeSize: options.maxHandshakeSize ?? 65536,
    maxFrameSize: options.maxFrameSize ?? 1048576,
    mode1ReadSize: options.mode1ReadSize ?? 16384,
    maxBufferedBytes: options.maxBufferedBytes ?? 1048576,
    writeTimeout: options.writeTimeout ?? 30,
    maxKeptPerDevice: options.maxKeptPerDevice ?? 100,
    maxStateSize: options.maxStateSize ?? 65536,
    maxKept: options.maxKept ?? 10_000,
    reusePort: options.reusePort ?? false,
  };
}

/**
 * Checks options before anything listens.
 *
 * @throws {TypeError} Naming the first invalid option.
 */
export function validateOptions(options: ManagerOptions): void {
  if (!Array.isArray(options.validTypes) || options.validTypes.length === 0) {
    throw new TypeError("validTypes must be a non-empty array of device type names");
  }
  for (const type of options.validTypes) {
    if (typeof type !== "string" || type === "" || type.includes("##")) {
      throw new TypeError(
        `invalid device type ${JSON.stringify(type)}: a non-empty string without "##"`,
      );
    }
  }
  for (
    const name of [
      "heartbeatRate",
      "heartbeatTimeout",
      "handshakeTimeout",
      "handlerTimeout",
      "writeTimeout",
    ] as const
  ) {
    checkPositive(name, options[name], true);
  }
  const positive = [
    "maxConcurrentHandlers",
    "maxPendingHandshakes",
    "maxClients",
    "maxHandshakeSize",
    "maxFrameSize",
    "maxBufferedBytes",
    "maxKeptPerDevice",
    "maxKept",
    "maxStateSize",
  ] as const;
  for (const name of positive) checkPositive(name, options[name]);
  const { mode1ReadSize } = options;
  if (
    mode1ReadSize !== undefined &&
    !(Number.isInteger(mode1ReadSize) && mode1ReadSize > 0 && mode1ReadSize <= MAX_MODE1_READ_SIZE)
  ) {
    throw new TypeError(
      `mode1ReadSize must be a whole number of bytes from 1 to ${MAX_MODE1_READ_SIZE} (64 MiB; ` +
        `every mode-1 device holds a buffer this size), got ${shown(mode1ReadSize)}`,
    );
  }
}
