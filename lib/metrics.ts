/**
 * What the manager counts, for `manager.stats()`, Prometheus
 * (lib/prometheus.ts) and OpenTelemetry (lib/otel.ts). The hot paths only add
 * to plain numbers and fixed-bucket histograms (no allocation per message);
 * everything that can be read off the live state (devices by type, buffered
 * bytes, handler backlog) is read when a snapshot is taken instead.
 *
 * @module
 */

import { Histogram, type HistogramSnapshot } from "./histogram.ts";
import type { KeptStats } from "./kept.ts";
import { END_REASONS, invalidInfoReasons } from "./errors.ts";

/** Heartbeat round-trip buckets, in milliseconds. */
export const RTT_BUCKETS_MS: readonly number[] = [
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
];
/** Devices reached per `sendAll`/`sendType`. */
export const FAN_OUT_BUCKETS: readonly number[] = [0, 1, 10, 100, 1000, 10000, 100000];

/**
 * A snapshot of a manager's figures: `manager.stats()`.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * const stats = manager.stats();
 * console.log(stats.devices.connected, stats.messages.received); // 0 0
 * ```
 */
export interface ManagerStats {
  /** Devices connected now. */
  readonly devices: {
    readonly connected: number;
    readonly byType: Readonly<Record<string, number>>;
    readonly byMode: { readonly 1: number; readonly 2: number };
  };
  /** Handshakes: accepted, refused by reason (`limit`, `timeout`, `auth`, `type`, ...), in progress. */
  readonly handshakes: {
    readonly accepted: number;
    readonly refused: Readonly<Record<string, number>>;
    readonly pending: number;
  };
  /** Connections ended, by `ConnectionEnd` reason. */
  readonly disconnects: Readonly<Record<string, number>>;
  /** Application messages and their bytes (payloads), each way. */
  readonly messages: {
    readonly received: number;
    readonly receivedBytes: number;
    readonly sent: number;
    readonly sentBytes: number;
  };
  /** `sendAll`/`sendType` calls and the devices each reached (this manager's). */
  readonly fanOut: { readonly sends: number; readonly deliveries: HistogramSnapshot };
  /** Heartbeat rounds run, and round trips of the beats, in milliseconds. */
  readonly heartbeat: { readonly rounds: number; readonly rttMs: HistogramSnapshot };
  /** Bytes queued unsent: the fullest connection's buffer, and all of them together. */
  readonly sendBuffer: { readonly maxBytes: number; readonly totalBytes: number };
  /** Event handler calls running and waiting for a slot; those that threw or ran past `handlerTimeout`. */
  readonly handlers: {
    readonly running: number;
    readonly waiting: number;
    readonly failed: number;
    readonly slow: number;
  };
  /** Messages kept for absent devices. */
  readonly kept: KeptStats;
  /** With a cluster adapter: devices connected to the other managers, as last known. */
  readonly cluster?: { readonly remoteDevices: number };
}

/** The counters the manager's hot paths add to. */
export class ManagerMetrics {
  handshakesAccepted = 0;
  // Every known reason starts at 0, so a rate over the first event of a reason is not lost.
  readonly handshakesRefused: Map<string, number> = new Map(
    [...invalidInfoReasons(), "limit", "closed", "io"].map((reason) => [reason, 0]),
  );
  readonly disconnects: Map<string, number> = new Map(END_REASONS.map((reason) => [reason, 0]));
  /** Handler calls that threw, and that ran past `handlerTimeout`. */
  handlersFailed = 0;
  handlersSlow = 0;
  messagesReceived = 0;
  receivedBytes = 0;
  messagesSent = 0;
  sentBytes = 0;
  fanOuts = 0;
  readonly fanOutDeliveries: Histogram = new Histogram(FAN_OUT_BUCKETS);
  readonly heartbeatRtt: Histogram = new Histogram(RTT_BUCKETS_MS);
  /** Called with each heartbeat round trip (ms), after it is counted (OpenTelemetry records it). */
  onRtt: ((ms: number) => void) | null = null;
  /** Called with the devices each fan-out reached (OpenTelemetry records it). */
  onFanOut: ((count: number) => void) | null = null;

  /** A handshake was refused for `reason`. */
  refused(reason: string): void {
    this.handshakesRefused.set(reason, (this.handshakesRefused.get(reason) ?? 0) + 1);
  }

  /** A connection ended for `reason`. */
  disconnected(reason: string): void {
    this.disconnects.set(reason, (this.disconnects.get(reason) ?? 0) + 1);
  }

  /** A message of `bytes` bytes arrived from a device. */
  received(bytes: number): void {
    this.messagesReceived++;
    this.receivedBytes += bytes;
  }

  /** `count` devices were sent a message of `bytes` bytes. */
  sent(count: number, bytes: number): void {
    this.messagesSent += count;
    this.sentBytes += count * bytes;
  }

  /** A `sendAll`/`sendType` reached `count` devices of this manager. */
  fannedOut(count: number): void {
    this.fanOuts++;
    this.fanOutDeliveries.record(count);
    this.onFanOut?.(count);
  }

  /** A beat answered a heartbeat after `ms` milliseconds. */
  beat(ms: number): void {
    this.heartbeatRtt.record(ms);
    this.onRtt?.(ms);
  }
}

/** What a snapshot reads off the manager's live state. */
export interface LiveState {
  /** The manager's device types: each is counted, at 0 when none is connected. */
  readonly types: readonly string[];
  readonly connections: Iterable<{
    readonly type: string;
    readonly mode: 1 | 2;
    readonly bufferedBytes: number;
  }>;
  readonly pending: number;
  readonly rounds: number;
  readonly handlers: { readonly running: number; readonly waiting: number };
  readonly kept: KeptStats;
  readonly remoteDevices: number | undefined;
}

/** Builds the snapshot from the counters and the live state (one pass over the connections). */
export function managerStats(metrics: ManagerMetrics, live: LiveState): ManagerStats {
  const byType: Record<string, number> = Object.fromEntries(live.types.map((type) => [type, 0]));
  const byMode = { 1: 0, 2: 0 };
  let connected = 0;
  let maxBytes = 0;
  let totalBytes = 0;
  for (const connection of live.connections) {
    connected++;
    byType[connection.type] = (byType[connection.type] ?? 0) + 1;
    byMode[connection.mode]++;
    const buffered = connection.bufferedBytes;
    totalBytes += buffered;
    if (buffered > maxBytes) maxBytes = buffered;
  }
  return {
    devices: { connected, byType, byMode },
    handshakes: {
      accepted: metrics.handshakesAccepted,
      refused: Object.fromEntries(metrics.handshakesRefused),
      pending: live.pending,
    },
    disconnects: Object.fromEntries(metrics.disconnects),
    messages: {
      received: metrics.messagesReceived,
      receivedBytes: metrics.receivedBytes,
      sent: metrics.messagesSent,
      sentBytes: metrics.sentBytes,
    },
    fanOut: { sends: metrics.fanOuts, deliveries: metrics.fanOutDeliveries.snapshot() },
    heartbeat: { rounds: live.rounds, rttMs: metrics.heartbeatRtt.snapshot() },
    sendBuffer: { maxBytes, totalBytes },
    handlers: { ...live.handlers, failed: metrics.handlersFailed, slow: metrics.handlersSlow },
    kept: live.kept,
    ...(live.remoteDevices === undefined ? {} : { cluster: { remoteDevices: live.remoteDevices } }),
  };
}
