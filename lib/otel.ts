/**
 * The manager's figures as OpenTelemetry metrics, through
 * `npm:@opentelemetry/api` only: no SDK and no exporter in the library. Deno
 * implements the API itself, so with `OTEL_DENO=true` (and the usual
 * `OTEL_EXPORTER_OTLP_*` variables) its built-in exporter sends them over
 * OTLP; without it the API is a no-op and this costs nothing. Counters and
 * gauges are observed from one `manager.stats()` per collection (a batch
 * observable callback); only the heartbeat round trip is recorded as it
 * happens, into a histogram.
 *
 * @module
 */

import { type Attributes, metrics } from "@opentelemetry/api";
import {
  FAN_OUT_BUCKETS,
  type ManagerMetrics,
  type ManagerStats,
  RTT_BUCKETS_MS,
} from "./metrics.ts";

/** The instrumentation scope's name: the package. */
export const METER_NAME = "@iot-manager/core";

/**
 * Registers the manager's instruments with the global meter provider.
 *
 * @param source The manager (`stats()`).
 * @param counters Its counters, for the heartbeat round-trip histogram.
 * @param attributes Added to every data point (which manager: its port).
 * @returns A function that unregisters them (the manager calls it on close).
 */
export function publishMetrics(
  source: { stats(): ManagerStats },
  counters: ManagerMetrics,
  attributes: Attributes,
): () => void {
  const meter = metrics.getMeter(METER_NAME);
  const gauge = (name: string, description: string, unit?: string) =>
    meter.createObservableGauge(`iot_manager.${name}`, { description, unit });
  const counter = (name: string, description: string, unit?: string) =>
    meter.createObservableCounter(`iot_manager.${name}`, { description, unit });
  const instruments = {
    devices: gauge("devices.connected", "Devices connected now, by type.", "{device}"),
    byMode: gauge("devices.connected_by_mode", "Devices connected now, by mode.", "{device}"),
    handlerFailures: counter("handler.failures", "Handler calls that threw or ran late.", "{call}"),
    accepted: counter("handshakes.accepted", "Handshakes that admitted a device.", "{handshake}"),
    refused: counter("handshakes.refused", "Handshakes refused, by reason.", "{handshake}"),
    pending: gauge("handshakes.pending", "Connections still in their handshake.", "{connection}"),
    disconnects: counter("disconnects", "Connections ended, by reason.", "{connection}"),
    received: counter("messages.received", "Application messages from devices.", "{message}"),
    receivedBytes: counter("messages.received.bytes", "Their bytes.", "By"),
    sent: counter("messages.sent", "Application messages to devices.", "{message}"),
    sentBytes: counter("messages.sent.bytes", "Their bytes.", "By"),
    fanOuts: counter("fanout.sends", "sendAll and sendType calls.", "{call}"),
    rounds: counter("heartbeat.rounds", "Heartbeat rounds run.", "{round}"),
    buffered: gauge("send_buffer.bytes", "Bytes queued unsent: the fullest connection, all.", "By"),
    handlers: gauge("handler.calls", "Handler calls running and waiting.", "{call}"),
    kept: counter("kept.messages", "Messages kept for absent devices, by outcome.", "{message}"),
    remote: gauge("cluster.remote_devices", "Devices on the other managers.", "{device}"),
  };
  // Seconds, as OpenTelemetry's conventions and Prometheus have durations, on the library's own
  // buckets (the SDK default, 0-5-10-25 ms..., would put every loopback beat in one bucket).
  const rtt = meter.createHistogram("iot_manager.heartbeat.rtt", {
    description: "Round trip from heartbeat to beat.",
    unit: "s",
    advice: { explicitBucketBoundaries: RTT_BUCKETS_MS.map((ms) => ms / 1000) },
  });
  const fanOut = meter.createHistogram("iot_manager.fanout.deliveries", {
    description: "Devices reached per sendAll or sendType.",
    unit: "{device}",
    advice: { explicitBucketBoundaries: [...FAN_OUT_BUCKETS] },
  });
  const with_ = (extra: Attributes) => ({ ...attributes, ...extra });
  const observe: Parameters<typeof meter.addBatchObservableCallback>[0] = (result) => {
    const stats = source.stats();
    for (const [type, count] of Object.entries(stats.devices.byType)) {
      result.observe(instruments.devices, count, with_({ type }));
    }
    for (const mode of [1, 2] as const) {
      result.observe(instruments.byMode, stats.devices.byMode[mode], with_({ mode }));
    }
    result.observe(instruments.handlerFailures, stats.handlers.failed, with_({ kind: "threw" }));
    result.observe(instruments.handlerFailures, stats.handlers.slow, with_({ kind: "timeout" }));
    result.observe(instruments.accepted, stats.handshakes.accepted, attributes);
    for (const [reason, count] of Object.entries(stats.handshakes.refused)) {
      result.observe(instruments.refused, count, with_({ reason }));
    }
    result.observe(instruments.pending, stats.handshakes.pending, attributes);
    for (const [reason, count] of Object.entries(stats.disconnects)) {
      result.observe(instruments.disconnects, count, with_({ reason }));
    }
    result.observe(instruments.received, stats.messages.received, attributes);
    result.observe(instruments.receivedBytes, stats.messages.receivedBytes, attributes);
    result.observe(instruments.sent, stats.messages.sent, attributes);
    result.observe(instruments.sentBytes, stats.messages.sentBytes, attributes);
    result.observe(instruments.fanOuts, stats.fanOut.sends, attributes);
    result.observe(instruments.rounds, stats.heartbeat.rounds, attributes);
    result.observe(instruments.buffered, stats.sendBuffer.maxBytes, with_({ of: "max" }));
    result.observe(instruments.buffered, stats.sendBuffer.totalBytes, with_({ of: "total" }));
    result.observe(instruments.handlers, stats.handlers.running, with_({ state: "running" }));
    result.observe(instruments.handlers, stats.handlers.waiting, with_({ state: "waiting" }));
    for (const [outcome, count] of Object.entries(stats.kept)) {
      result.observe(instruments.kept, count, with_({ outcome }));
    }
    if (stats.cluster) result.observe(instruments.remote, stats.cluster.remoteDevices, attributes);
  };
  const observables = Object.values(instruments);
  meter.addBatchObservableCallback(observe, observables);
  counters.onRtt = (ms) => rtt.record(ms / 1000, attributes);
  counters.onFanOut = (count) => fanOut.record(count, attributes);
  return () => {
    meter.removeBatchObservableCallback(observe, observables);
    counters.onRtt = null;
    counters.onFanOut = null;
  };
}
