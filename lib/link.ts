/**
 * One connection of a {@linkcode Device} (lib/device.ts) to its manager. The
 * shared core (lib/connection_core.ts) reads, cuts frames and ends it; this
 * file holds the device's role: the handshake's steps as they arrive
 * (lib/device_handshake.ts), answering heartbeats and `getinfo`, the
 * keepalive watch (lib/keepalive.ts), and what the manager's `END` means.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { connectTransport, type Transport } from "./transport.ts";
import { ConnectionCore } from "./connection_core.ts";
import {
  answerGetinfo,
  encodeInfoAnswer,
  type HandshakeState,
  keepaliveSeconds,
  readHandshakeFrame,
} from "./device_handshake.ts";
import {
  ConnectionEnd,
  type EndReason,
  InvalidInfo,
  ProtocolError,
  TimeoutError,
} from "./errors.ts";
import { Keepalive } from "./keepalive.ts";
import {
  BEAT_TEXT,
  type DeviceInfo,
  encodeAck,
  encodeFeatures,
  encodeFrame,
  type Feature,
  FrameType,
  type FrameTypeValue,
  HEARTBEAT_BYTE,
  type JsonObject,
  type ManagerSettings,
  parseAckedMessage,
  parseDelta,
  parseWelcome,
  type ProtocolMode,
  splitManagerChunk,
} from "./protocol/mod.ts";

/** What a link needs from its device. */
export interface LinkHooks {
  info(): DeviceInfo;
  answerHeartbeats(): boolean;
  onHeartbeat(answered: boolean): void;
  onWelcome(settings: ManagerSettings): void;
  /** The answer to an authentication challenge. */
  proof(challenge: Uint8Array): Promise<Uint8Array>;
  /** A message for the application; a promise when reading should pause until it resolves. */
  onMessage(data: Uint8Array): Promise<void> | undefined;
  /** The manager's `DELTA`: desired minus reported state, at desired `version`. */
  onDelta(delta: JsonObject, version: number): void;
  readonly log: Logger;
  readonly uuid: string;
}

/** Limits of one link. */
export interface LinkLimits {
  /** Largest frame payload accepted from the manager, in bytes. */
  readonly maxFrameSize: number;
  /** Bytes queued unsent before the link ends (`buffer-full`). */
  readonly maxBufferedBytes: number;
  /** The `keepalive` option, in seconds, if given. */
  readonly keepalive?: number;
}

/** Where and how a device connects. */
export interface DialOptions {
  readonly hostname: string;
  readonly port: number;
  /** Connect with TLS, trusting `caCerts` (PEM) if given, else the default roots. */
  readonly tls?: { readonly caCerts?: readonly string[] };
  /** Seconds for the attempt, TLS and handshake included. */
  readonly connectTimeout: number;
  /** The application's signal: aborting it fails the attempt with its reason. */
  readonly signal?: AbortSignal;
}

/** The optional features of mode 2 a device uses when the manager offers them. */
const DEVICE_FEATURES: readonly Feature[] = ["ack", "state"];
const READ_SIZES = { smallest: 16 * 1024, largest: 16 * 1024 };
const MODE1_BEAT = new TextEncoder().encode(BEAT_TEXT);
const MODE2_BEAT = encodeFrame(FrameType.BEAT);
/** Manager-side end reasons a device keeps as its own (the rest show as `"ended"`). */
const KEPT_END_REASONS: ReadonlySet<string> = new Set(["heartbeat", "replaced", "manager-closed"]);

/** One connection of a device: the core plus the device's side of the protocol. */
export class Link extends ConnectionCore {
  protected readonly log: Logger;
  readonly #hooks: LinkHooks;
  readonly #ready = Promise.withResolvers<void>();
  readonly #keepaliveOption: number | undefined;
  readonly #keepalive: Keepalive;
  #state: HandshakeState = "getinfo";
  /** Mode 1: the read ended in `end\n`, the manager's goodbye if it now closes. */
  #heldEnd = false;
  /** The features the manager offered that this link uses. */
  #used: ReadonlySet<Feature> = new Set();

  constructor(conn: Transport, mode: ProtocolMode, hooks: LinkHooks, limits: LinkLimits) {
    super(conn, mode, limits);
    this.#hooks = hooks;
    this.log = hooks.log;
    this.#keepaliveOption = limits.keepalive;
    this.#keepalive = new Keepalive((silentMs, limitMs) => {
      const seconds = (silentMs / 1000).toFixed(1);
      this.log.warn("Manager silent for {seconds} s; device {uuid} counts it as gone", {
        uuid: this.uuid,
        seconds,
        reason: "keepalive",
      });
      this.terminate(
        "keepalive",
        `the manager sent nothing for ${seconds} s (its promise: ${limitMs / 1000} s)`,
        { farewell: false },
      );
    });
    this.#ready.promise.catch(() => {});
  }

  get uuid(): string {
    return this.#hooks.uuid;
  }

  /** Resolves once the handshake is done; rejects with the end if the connection ends first. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** True after the handshake and until the connection ends. */
  get open(): boolean {
    return this.#state === "open" && this.endedWith === null;
  }

  /** Starts reading: the manager speaks first (`getinfo`). */
  start(): void {
    this.startReading(READ_SIZES);
  }

  /** @internal Bytes from the manager: also proof that it is alive. */
  override received(bytes: Uint8Array, length: number): void {
    let chunk = bytes.subarray(0, length);
    this.#keepalive.heard();
    if (this.#state === "getinfo") {
      let step;
      try {
        step = answerGetinfo(chunk, this.#hooks.info(), this.mode);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        return this.protocolError(error.message, error.reason);
      }
      this.outbox.enqueue(step.answer);
      chunk = step.rest;
      if (this.mode === 1) {
        // Mode 1 has no acknowledgement: the answer written is the handshake done.
        this.#state = "open";
        this.outbox.flushed().then(() => this.#ready.resolve(), () => {});
        this.#startKeepalive(null);
      } else {
        this.#state = "welcome";
      }
    }
    this.decode(chunk);
  }

  /** @internal Reading paused for the application (the keepalive does not judge meanwhile). */
  override paused(paused: boolean): void {
    super.paused(paused);
    this.#keepalive.pause(paused);
  }

  // The role's side of the shared core.

  protected get peerName(): string {
    return "The manager";
  }

  protected onEnded(end: ConnectionEnd): void {
    this.#keepalive.stop();
    this.#ready.reject(end);
  }

  /** A goodbye only once the handshake is done; mode 1 has no words for it, only the close. */
  protected override mayCloseGracefully(): boolean {
    return this.#state === "open";
  }

  protected goodbye(end: ConnectionEnd): Uint8Array | null {
    return this.mode === 2 ? encodeFrame(FrameType.END, end.message) : null;
  }

  protected onPeerLeft(): void {
    if (this.#state !== "open") {
      this.terminate(
        "closed",
        "the manager closed the connection during the handshake (answer rejected?)",
        { farewell: false },
      );
    } else if (this.#heldEnd) {
      this.terminate("ended", "the manager ended the connection", { farewell: false });
    } else {
      this.terminate("closed", "the manager closed the connection", { farewell: false });
    }
  }

  protected onMode1(chunk: Uint8Array): void {
    const split = splitManagerChunk(chunk, this.#heldEnd);
    this.#heldEnd = split.heldEnd;
    for (const control of split.controls) {
      if (control === HEARTBEAT_BYTE) this.#onHeartbeat();
      else this.outbox.enqueue(encodeInfoAnswer(this.#hooks.info(), 1));
    }
    if (split.message.length > 0) this.#deliver(split.message);
  }

  protected onFrame(type: FrameTypeValue, payload: Uint8Array): void {
    if (this.#state === "welcome") {
      const step = readHandshakeFrame(type, payload);
      switch (step.kind) {
        case "welcome": {
          this.#state = "open";
          // Features first, before any other frame: the manager settles on our first frame.
          const used = DEVICE_FEATURES.filter((feature) =>
            step.settings.features?.includes(feature)
          );
          if (used.length > 0) this.outbox.enqueue(encodeFeatures(used));
          this.#used = new Set(used);
          this.#hooks.onWelcome(step.settings);
          this.#startKeepalive(step.settings);
          this.#ready.resolve();
          return;
        }
        case "challenge":
          this.#hooks.proof(step.challenge).then(
            (proof) => this.enqueue(encodeFrame(FrameType.PROOF, proof)),
            (error) => this.protocolError(`cannot compute the proof: ${String(error)}`),
          );
          return;
        case "refused":
          this.terminate("refused", step.refusal.message, {
            farewell: false,
            cause: step.refusal,
          });
          return;
        case "end":
          break; // a goodbye without a refusal code: read below, as after the handshake
      }
    }
    switch (type) {
      case FrameType.DATA:
        return this.#deliver(payload);
      case FrameType.MESSAGE:
        return this.#onAckedMessage(payload);
      case FrameType.DELTA:
        return this.#onDelta(payload);
      case FrameType.HEARTBEAT:
        return this.#onHeartbeat();
      case FrameType.GETINFO:
        this.outbox.enqueue(encodeInfoAnswer(this.#hooks.info(), 2));
        return;
      case FrameType.END:
        return this.#onEnd(payload);
      case FrameType.WELCOME:
        this.#hooks.onWelcome(parseWelcome(payload));
        return;
      default:
        this.rejectFrame(type, "from the manager (it is device-to-manager only)");
    }
  }

  /** Watches the manager's silence: the option, else what its `WELCOME` promised. */
  #startKeepalive(settings: ManagerSettings | null): void {
    const seconds = keepaliveSeconds(this.#keepaliveOption, settings);
    if (seconds !== undefined && this.endedWith === null) this.#keepalive.start(seconds * 1000);
  }

  /** The manager's goodbye after the handshake: the reasons a device can act on are kept. */
  #onEnd(payload: Uint8Array): void {
    const { reason, said } = this.readGoodbye(payload);
    this.terminate(
      reason && KEPT_END_REASONS.has(reason) ? reason as EndReason : "ended",
      said ? `the manager ended: ${said}` : "the manager ended",
      { farewell: false },
    );
  }

  /** Acknowledged on receipt, once the message is the application's (MQTT's QoS 1 PUBACK). */
  #onAckedMessage(payload: Uint8Array): void {
    const message = parseAckedMessage(payload);
    this.#deliver(message.data);
    this.outbox.enqueue(encodeAck(message.id));
  }

  #onDelta(payload: Uint8Array): void {
    const delta = parseDelta(payload);
    this.#hooks.onDelta(delta.state, delta.version);
  }

  /** Whether the manager reads `REPORT` frames (it offered `state` and we said we use it). */
  get reportsState(): boolean {
    return this.#used.has("state");
  }

  #onHeartbeat(): void {
    const answer = this.#hooks.answerHeartbeats();
    this.#hooks.onHeartbeat(answer);
    if (answer) this.outbox.enqueue(this.mode === 1 ? MODE1_BEAT : MODE2_BEAT);
  }

  #deliver(data: Uint8Array): void {
    const stall = this.#hooks.onMessage(data);
    if (stall) this.stallOn(stall);
  }
}

/**
 * Opens one connection and completes the handshake within `connectTimeout`:
 * in mode 2 once `WELCOME` arrives, in mode 1 once the answer is written.
 * Aborting `attempt` (or the dial's `signal`) fails it at any point, during a
 * TLS handshake too; a failed attempt leaves nothing open.
 *
 * @throws {InvalidInfo} When the manager refuses the handshake (mode 2's `END`).
 * @throws {TimeoutError} When the attempt runs past `connectTimeout`.
 * @throws {ConnectionEnd} When the connection fails or closes first (`io`, `closed`, ...).
 */
export async function openLink(
  dial: DialOptions,
  mode: ProtocolMode,
  hooks: LinkHooks,
  limits: LinkLimits,
  attempt: AbortController,
): Promise<Link> {
  const seconds = dial.connectTimeout;
  const timer = setTimeout(
    () =>
      attempt.abort(
        new TimeoutError(`no complete handshake with the manager within ${seconds} s`),
      ),
    seconds * 1000,
  );
  const aborted = new Promise<never>((_, reject) => {
    attempt.signal.addEventListener("abort", () => reject(attempt.signal.reason), { once: true });
  });
  aborted.catch(() => {});
  const userSignal = dial.signal;
  const onUserAbort = () => attempt.abort(userSignal!.reason);
  if (userSignal?.aborted) onUserAbort();
  else userSignal?.addEventListener("abort", onUserAbort, { once: true });
  let link: Link | null = null;
  try {
    const { hostname, port, tls } = dial;
    const conn = await Promise.race([
      connectTransport({ hostname, port, tls, signal: attempt.signal }),
      aborted,
    ]);
    link = new Link(conn, mode, hooks, limits);
    link.start();
    await Promise.race([link.ready, aborted]);
    return link;
  } catch (error) {
    if (link) {
      const end = error instanceof ConnectionEnd ? error : null;
      link.terminate(end?.reason ?? "io", (error as Error).message, { farewell: false });
      await link.finished;
    }
    if (error instanceof ConnectionEnd && error.cause instanceof InvalidInfo) throw error.cause;
    if (error instanceof ConnectionEnd || error instanceof TimeoutError) throw error;
    if (userSignal?.aborted && error === userSignal.reason) throw error;
    throw new ConnectionEnd("io", `cannot connect: ${(error as Error).message}`, { cause: error });
  } finally {
    clearTimeout(timer);
    userSignal?.removeEventListener("abort", onUserAbort);
  }
}
