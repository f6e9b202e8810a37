/**
 * Where a device is admitted: the manager's whole side of the handshake, from
 * TCP accept to the `WELCOME` it returns for the manager to send first on the
 * new connection (the manager then registers the device, replacing an older
 * connection with its UUID). {@linkcode Admission} applies the manager's policy
 * (connection limits, the `authenticate` hook, a UUID another live connection
 * holds) and logs every refusal with its reason; {@linkcode admit} runs the
 * protocol steps under one deadline: send `getinfo`, read until the answer is
 * complete, invalid, too large or too late, send a `CHALLENGE` and read the
 * `PROOF`, and tell a refused device why (`END`). The device's side is
 * lib/device_handshake.ts; `Client.getData()` reads its answer with the same
 * parser (`HandshakeReader`).
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Transport } from "./transport.ts";
import type { Authenticate } from "./auth.ts";
import type { Connection } from "./connection.ts";
import type { ManagerMetrics } from "./metrics.ts";
import type { Registry } from "./registry.ts";
import { ConnectionEnd, InvalidInfo } from "./errors.ts";
import { CHALLENGE_SIZE } from "./auth.ts";
import { withGrace } from "./graceful.ts";
import { type Deadline, DeadlineQueue } from "./deadlines.ts";
import {
  type DeviceInfo,
  encodeEnd,
  encodeFrame,
  encodeWelcome,
  FRAME_HEADER_SIZE,
  FrameType,
  GETINFO_BYTE,
  HandshakeReader,
  isFrameType,
  type ManagerSettings,
  type ProtocolMode,
} from "./protocol/mod.ts";

/** A handshake that succeeded. */
export interface Handshake {
  /** The mode the device chose. */
  readonly mode: ProtocolMode;
  /** Who the device says it is. */
  readonly info: DeviceInfo;
  /** Bytes that arrived after the answer (mode-2 frames), for the read loop. */
  readonly leftover: Uint8Array;
  /** The nonce sent in `CHALLENGE` (mode 2 with `challenge` on). */
  readonly challenge?: Uint8Array;
  /** The device's `PROOF` payload. */
  readonly proof?: Uint8Array;
}

/** What one admission enforces and asks. */
export interface AdmissionOptions {
  readonly validTypes: readonly string[];
  /**
   * Seconds from TCP accept to admission: TLS handshake, the answer, the
   * `PROOF` and the `authenticate` hook together. At the deadline the socket is
   * closed and its descriptor freed, whatever it was waiting for.
   */
  readonly timeout: number;
  /** Where the deadline is kept: deadlines of `timeout` seconds, one timer for all. */
  readonly deadlines: DeadlineQueue;
  /** Largest answer, in bytes. */
  readonly maxSize: number;
  /**
   * Judges the device once it has answered (and, in mode 2, sent its `PROOF`,
   * for which a `CHALLENGE` is sent first): `true` admits, a string refuses
   * with that reason. Absent: every valid answer is admitted.
   */
  readonly authenticate?: (handshake: Handshake) => Promise<boolean | string>;
  /**
   * Last word, after authentication, within the same deadline: a refusal for
   * this device now, if any (e.g. a UUID conflict).
   */
  readonly admissible?: (
    handshake: Handshake,
  ) => Promise<InvalidInfo | undefined> | InvalidInfo | undefined;
}

const MAX_PROOF_SIZE = 1024;
const GETINFO = Uint8Array.of(GETINFO_BYTE);
/** First handshake read: a typical answer is 60-200 bytes; longer ones take more reads. */
const READ_SIZE = 512;
/** Longest wait to write the refusal before closing, in milliseconds. */
const REFUSAL_GRACE_MS = 1000;
/** The same at the deadline, which must free the socket promptly. */
const TIMEOUT_GRACE_MS = 200;

/** A window within which a UUID taken over twice may be two live devices (ms). */
const UUID_CONFLICT_WINDOW_MS = 60_000;
/** Longest wait for the current holder of a UUID to answer a heartbeat (s). */
const HOLDER_PROBE_SECONDS = 2;

/** The manager's admission policy. */
export interface AdmissionPolicy {
  readonly validTypes: readonly string[];
  /** Seconds from TCP accept to admission. */
  readonly handshakeTimeout: number;
  /** Largest answer, in bytes. */
  readonly maxHandshakeSize: number;
  /** Connections in handshake at once; more are closed at accept. */
  readonly maxPendingHandshakes: number;
  /** Connected devices plus those in handshake; more are closed at accept. */
  readonly maxClients: number;
  /** The longest the holder of a contested UUID gets to answer a heartbeat, in seconds. */
  readonly heartbeatTimeout: number;
  /** What `WELCOME` announces to mode-2 devices. */
  readonly welcome: ManagerSettings;
  readonly authenticate?: Authenticate;
}

/** A device let in: its handshake, where it came from and what to send it first. */
export interface Admitted extends Handshake {
  /** `host:port`, for the log. */
  readonly address: string;
  /** The `WELCOME` frame for a mode-2 device (`null` in mode 1, which has none). */
  readonly welcome: Uint8Array | null;
}

/**
 * The manager's gate: counts connections from TCP accept, runs
 * {@linkcode admit} with the manager's policy, and logs each refusal once with
 * its reason (`limit`, `timeout`, `auth`, `conflict`, `type`, ...).
 */
export class Admission {
  readonly #policy: AdmissionPolicy;
  readonly #registry: Registry<Connection>;
  readonly #log: Logger;
  readonly #metrics: ManagerMetrics;
  readonly #handshaking = new Set<Transport>();
  /** Every handshake's deadline, under one timer. */
  readonly #deadlines: DeadlineQueue;
  /** The `WELCOME` frame, encoded once: every mode-2 device is sent the same bytes (never written to). */
  readonly #welcome: Uint8Array;
  #closed = false;

  constructor(
    policy: AdmissionPolicy,
    registry: Registry<Connection>,
    log: Logger,
    metrics: ManagerMetrics,
  ) {
    this.#metrics = metrics;
    this.#policy = policy;
    this.#welcome = encodeWelcome(policy.welcome);
    this.#deadlines = new DeadlineQueue(policy.handshakeTimeout * 1000);
    this.#registry = registry;
    this.#log = log;
  }

  /** Connections accepted and still in their handshake. */
  get pending(): number {
    return this.#handshaking.size;
  }

  /**
   * Lets a freshly accepted connection in, or refuses it (logged, closed).
   *
   * @returns The admitted device, or `null` when refused or closed meanwhile.
   */
  async admit(conn: Transport): Promise<Admitted | null> {
    const addr = conn.remoteAddr as Deno.NetAddr;
    const address = `${addr.hostname}:${addr.port}`;
    const policy = this.#policy;
    const pending = this.#handshaking.size;
    const refuse = pending >= policy.maxPendingHandshakes
      ? `${pending} connections are already in handshake (maxPendingHandshakes)`
      : this.#registry.size + pending >= policy.maxClients
      ? `${this.#registry.size} devices are connected (maxClients)`
      : null;
    if (refuse) {
      this.#metrics.refused("limit");
      this.#log.warn("Refused connection from {address}: {message}", {
        address,
        reason: "limit",
        message: refuse,
      });
      conn.close();
      return null;
    }
    this.#handshaking.add(conn);
    let handshake: Handshake;
    try {
      handshake = await admit(conn, {
        validTypes: policy.validTypes,
        timeout: policy.handshakeTimeout,
        deadlines: this.#deadlines,
        maxSize: policy.maxHandshakeSize,
        authenticate: policy.authenticate && this.#ask.bind(this, policy.authenticate, addr),
        admissible: (handshake) => this.#checkHolder(handshake.info.uuid, address),
      });
    } catch (error) {
      if (!this.#closed) this.#logRefusal(address, error);
      return null;
    } finally {
      this.#handshaking.delete(conn);
    }
    if (this.#closed) {
      conn.close();
      return null;
    }
    const welcome = handshake.mode === 2 ? this.#welcome : null;
    return { ...handshake, address, welcome };
  }

  /** Closes every connection still in its handshake; later ones are refused silently. */
  close(): void {
    this.#closed = true;
    this.#deadlines.close();
    for (const conn of this.#handshaking) closeQuietly(conn);
  }

  /**
   * A newcomer claims a UUID whose holder itself took it over within the last
   * minute: two live devices fighting over one UUID, or one device back again
   * after its last connection went stale? Evidence decides: the holder is sent
   * a heartbeat now. A holder that answers is alive, and the newcomer is
   * refused (reason `conflict`, logged once with both addresses); a holder that
   * does not is dropped for it (reason `heartbeat`) and the newcomer admitted.
   */
  async #checkHolder(uuid: string, address: string): Promise<InvalidInfo | undefined> {
    const holder = this.#registry.get(uuid);
    if (!holder || holder.tookOverFrom === undefined) return undefined;
    if (performance.now() - holder.admittedAt >= UUID_CONFLICT_WINDOW_MS) return undefined;
    const timeout = Math.min(this.#policy.heartbeatTimeout, HOLDER_PROBE_SECONDS);
    const alive = await holder.heartbeat({ timeout }).then(() => true, () => false);
    if (!alive || !holder.connected) return undefined;
    const holderAddress = `${holder.address.hostname}:${holder.address.port}`;
    if (!holder.conflictLogged) {
      holder.conflictLogged = true;
      this.#log.warn(
        "UUID {uuid} is claimed by two live connections, {address} and {other}: the one connected keeps it",
        { uuid, address, other: holderAddress, reason: "uuid-conflict" },
      );
    }
    return new InvalidInfo(
      "conflict",
      `UUID ${uuid} is held by another live connection (${holderAddress}), which answered a heartbeat ` +
        "just now; two devices use this UUID: fix the duplicate",
    );
  }

  /** Asks the `authenticate` hook about a handshake; a hook that throws refuses (and is logged). */
  async #ask(
    authenticate: Authenticate,
    address: Deno.NetAddr,
    handshake: Handshake,
  ): Promise<boolean | string> {
    try {
      return await authenticate({
        info: handshake.info,
        address,
        mode: handshake.mode,
        replacing: this.#registry.get(handshake.info.uuid) !== undefined,
        challenge: handshake.challenge,
        proof: handshake.proof,
      });
    } catch (error) {
      // The detail stays in the log: the device is not authenticated and hears only this.
      this.#log.error("The authenticate hook failed: {error}", { error });
      return "the authenticate hook failed";
    }
  }

  #logRefusal(address: string, error: unknown): void {
    this.#metrics.refused(
      error instanceof InvalidInfo || error instanceof ConnectionEnd ? error.reason : "error",
    );
    if (error instanceof InvalidInfo) {
      // A conflict was logged once at warning level; each refused retry is only debug.
      this.#log[error.reason === "conflict" ? "debug" : "warn"](
        "Rejected handshake from {address}: {message}",
        { address, reason: error.reason, message: error.message },
      );
    } else if (error instanceof ConnectionEnd) {
      this.#log.warn("Connection from {address} ended before its handshake: {message}", {
        address,
        reason: error.reason,
        message: error.message,
      });
    } else {
      this.#log.error("Handshake with {address} failed: {message}", {
        address,
        message: String(error),
      });
    }
  }
}

/**
 * Admits or refuses a freshly accepted connection: the manager's whole side of
 * the handshake, in one place. Sends `getinfo`, reads the answer, runs the
 * challenge and the `authenticate` hook, all under one deadline. On success
 * the connection is the caller's; on any failure it is closed here, after a
 * device that speaks frames has been sent `END` with the reason
 * (`reason: message`, see {@linkcode encodeEnd}).
 *
 * @param conn A freshly accepted connection.
 * @param options What the answer must respect, and who judges it.
 * @throws {InvalidInfo} When the answer is malformed, too large, too late or refused.
 * @throws {ConnectionEnd} When the device leaves first or the socket fails.
 */
export async function admit(conn: Transport, options: AdmissionOptions): Promise<Handshake> {
  const reader = new HandshakeReader({ validTypes: options.validTypes, maxSize: options.maxSize });
  let waitingFor = "nothing received yet";
  let firstByte = -1;
  let expired = false;
  // Only the authenticate hook is told of the deadline through a signal.
  const hookDeadline = options.authenticate ? new AbortController() : null;
  const timedOut = () => {
    const got = reader.received > 0 ? `${reader.received} bytes received, ` : "";
    return new InvalidInfo(
      "timeout",
      `no complete handshake within ${options.timeout} s (${got}waiting for ${waitingFor})`,
    );
  };
  // A device whose answer starts with NUL (the preamble) or a frame type speaks frames: it is told why.
  const speaksFrames = () => firstByte === 0 || (firstByte > 0 && isFrameType(firstByte));
  const expiry: Deadline = options.deadlines.add(() => {
    expired = true;
    hookDeadline?.abort();
    // The socket closes whatever the device is doing, within a short grace for the END.
    const farewell = speaksFrames() ? tell(conn, timedOut(), TIMEOUT_GRACE_MS) : Promise.resolve();
    farewell.then(() => closeQuietly(conn));
  });
  try {
    await writeAll(conn, GETINFO);
    const buffer = new Uint8Array(READ_SIZE);
    let handshake: Handshake | null = null;
    while (handshake === null) {
      const count = await conn.read(buffer);
      if (count === null) {
        throw new ConnectionEnd(
          "closed",
          `the device closed the connection (waiting for ${waitingFor})`,
        );
      }
      if (firstByte < 0) firstByte = buffer[0];
      const scan = reader.push(buffer.subarray(0, count));
      if (scan.status === "incomplete") {
        waitingFor = scan.missing;
        continue;
      }
      handshake = { mode: scan.mode, info: scan.info, leftover: scan.leftover };
      if (scan.mode === 2 && options.authenticate) {
        waitingFor = "the PROOF frame";
        handshake = { ...handshake, ...await readProof(conn, scan.leftover) };
      }
    }
    if (options.authenticate) {
      waitingFor = "the authenticate hook";
      await judge(options.authenticate, handshake, hookDeadline!.signal);
    }
    waitingFor = "the check of the UUID's current holder";
    const refusal = await options.admissible?.(handshake);
    if (refusal) throw refusal;
    return handshake;
  } catch (caught) {
    let error = caught;
    if (expired) error = timedOut();
    else if (!(error instanceof InvalidInfo || error instanceof ConnectionEnd)) {
      error = new ConnectionEnd("io", `handshake failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (error instanceof InvalidInfo && speaksFrames() && !expired) {
      await tell(conn, error, REFUSAL_GRACE_MS);
    }
    closeQuietly(conn);
    throw error;
  } finally {
    options.deadlines.cancel(expiry);
  }
}

/** Sends `END` with the refusal's reason; best effort, bounded by `graceMs`. */
function tell(conn: Transport, refusal: InvalidInfo, graceMs: number): Promise<void> {
  return withGrace(writeAll(conn, encodeEnd(refusal.reason, refusal.message)), graceMs);
}

/** Runs the hook until it answers or the deadline passes; throws the refusal. */
async function judge(
  authenticate: (handshake: Handshake) => Promise<boolean | string>,
  handshake: Handshake,
  deadline: AbortSignal,
): Promise<void> {
  let verdict: boolean | string;
  const expired = Promise.withResolvers<never>();
  const onExpire = () => expired.reject(deadline.reason);
  deadline.addEventListener("abort", onExpire, { once: true });
  try {
    verdict = await Promise.race([authenticate(handshake), expired.promise]);
  } finally {
    deadline.removeEventListener("abort", onExpire);
  }
  if (verdict === true) return;
  const reason = typeof verdict === "string" ? verdict : "refused by the authenticate hook";
  throw new InvalidInfo("auth", `device ${handshake.info.uuid} not authenticated: ${reason}`);
}

function closeQuietly(conn: Transport): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** Sends a fresh nonce and reads the device's `PROOF` frame (at most {@linkcode MAX_PROOF_SIZE} bytes). */
async function readProof(
  conn: Transport,
  leftover: Uint8Array,
): Promise<{ leftover: Uint8Array; challenge: Uint8Array; proof: Uint8Array }> {
  const challenge = crypto.getRandomValues(new Uint8Array(CHALLENGE_SIZE));
  await writeAll(conn, encodeFrame(FrameType.CHALLENGE, challenge));
  // One fixed buffer for the frame: the work is linear in the bytes, whatever their split.
  const frame = new Uint8Array(FRAME_HEADER_SIZE + MAX_PROOF_SIZE);
  let filled = 0;
  let total = FRAME_HEADER_SIZE;
  let headerRead = false;
  let chunk = leftover;
  const buffer = new Uint8Array(READ_SIZE);
  while (true) {
    const take = Math.min(chunk.length, total - filled);
    frame.set(chunk.subarray(0, take), filled);
    filled += take;
    if (filled > 0 && frame[0] !== FrameType.PROOF) {
      throw new InvalidInfo(
        "auth",
        `expected a PROOF frame (0x08) after the CHALLENGE, got 0x${frame[0].toString(16)}`,
      );
    }
    if (!headerRead && filled === FRAME_HEADER_SIZE) {
      headerRead = true;
      const length = new DataView(frame.buffer).getUint32(1);
      if (length > MAX_PROOF_SIZE) {
        throw new InvalidInfo("auth", `PROOF frame of ${length} bytes is over ${MAX_PROOF_SIZE}`);
      }
      total += length;
      chunk = chunk.subarray(take);
      continue;
    }
    if (filled === total) {
      return {
        leftover: chunk.slice(take),
        challenge,
        proof: frame.slice(FRAME_HEADER_SIZE, total),
      };
    }
    const count = await conn.read(buffer);
    if (count === null) {
      throw new ConnectionEnd("closed", "the device closed the connection before its PROOF");
    }
    chunk = buffer.subarray(0, count);
  }
}

/** Writes every byte (a `Transport` write may be partial). */
export async function writeAll(conn: Transport, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
