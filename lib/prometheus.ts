/**
 * The manager's figures in Prometheus' text exposition format (version
 * 0.0.4), for a `/metrics` endpoint that any Prometheus (or compatible
 * scraper: VictoriaMetrics, Grafana Agent, the OpenTelemetry collector) can
 * scrape. Names follow Prometheus' conventions: an `iot_manager_` prefix,
 * base units (`_seconds`, `_bytes`), `_total` on counters.
 *
 * @module
 */

import type { HistogramSnapshot } from "./histogram.ts";
import type { ManagerStats } from "./metrics.ts";

/** The content type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Readonly<Record<string, string | number>>;

/**
 * Renders a snapshot (`manager.stats()`) as Prometheus text.
 *
 * @example
 * ```ts
 * import { Manager, prometheusText } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * console.log(prometheusText(manager.stats()).includes("iot_manager_devices_connected")); // true
 * ```
 */
export function prometheusText(stats: ManagerStats): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string) =>
    out.push(`# HELP iot_manager_${name} ${help}`, `# TYPE iot_manager_${name} ${type}`);
  const sample = (name: string, value: number, labels: Labels = {}) =>
    out.push(`iot_manager_${name}${renderLabels(labels)} ${renderNumber(value)}`);

  family("devices_connected", "gauge", "Devices connected now, by type (every valid type).");
  for (const [type, count] of Object.entries(stats.devices.byType)) {
    sample("devices_connected", count, { type });
  }
  family("devices_connected_by_mode", "gauge", "Devices connected now, by protocol mode.");
  for (const mode of [1, 2] as const) {
    sample("devices_connected_by_mode", stats.devices.byMode[mode], { mode });
  }
  family("handshakes_accepted_total", "counter", "Handshakes that admitted a device.");
  sample("handshakes_accepted_total", stats.handshakes.accepted);
  family("handshakes_refused_total", "counter", "Handshakes refused, by reason.");
  for (const [reason, count] of Object.entries(stats.handshakes.refused)) {
    sample("handshakes_refused_total", count, { reason });
  }
  family("handshakes_pending", "gauge", "Connections accepted and still in their handshake.");
  sample("handshakes_pending", stats.handshakes.pending);
  family("disconnects_total", "counter", "Connections ended, by reason.");
  for (const [reason, count] of Object.entries(stats.disconnects)) {
    sample("disconnects_total", count, { reason });
  }
  family("messages_received_total", "counter", "Application messages received from devices.");
  sample("messages_received_total", stats.messages.received);
  family("received_bytes_total", "counter", "Bytes of application messages received.");
  sample("received_bytes_total", stats.messages.receivedBytes);
  family("messages_sent_total", "counter", "Application messages sent to devices.");
  sample("messages_sent_total", stats.messages.sent);
  family("sent_bytes_total", "counter", "Bytes of application messages sent.");
  sample("sent_bytes_total", stats.messages.sentBytes);
  family("fanout_deliveries", "histogram", "Devices reached per sendAll or sendType.");
  histogram(out, "fanout_deliveries", stats.fanOut.deliveries, 1);
  family("heartbeat_rounds_total", "counter", "Heartbeat rounds run.");
  sample("heartbeat_rounds_total", stats.heartbeat.rounds);
  family("heartbeat_rtt_seconds", "histogram", "Round trip from heartbeat to beat.");
  histogram(out, "heartbeat_rtt_seconds", stats.heartbeat.rttMs, 1 / 1000);
  family("send_buffer_bytes", "gauge", "Bytes queued unsent: the fullest connection, and all.");
  sample("send_buffer_bytes", stats.sendBuffer.maxBytes, { of: "max" });
  sample("send_buffer_bytes", stats.sendBuffer.totalBytes, { of: "total" });
  family("handler_calls", "gauge", "Event handler calls running, and waiting for a slot.");
  sample("handler_calls", stats.handlers.running, { state: "running" });
  sample("handler_calls", stats.handlers.waiting, { state: "waiting" });
  family(
    "handler_failures_total",
    "counter",
    "Handler calls that threw, or ran past handlerTimeout.",
  );
  sample("handler_failures_total", stats.handlers.failed, { kind: "threw" });
  sample("handler_failures_total", stats.handlers.slow, { kind: "timeout" });
  family("kept_messages_total", "counter", "Messages kept for absent devices, by outcome.");
  for (const [outcome, count] of Object.entries(stats.kept)) {
    sample("kept_messages_total", count, { outcome });
  }
  if (stats.cluster) {
    family("remote_devices", "gauge", "Devices connected to the other managers of the cluster.");
    sample("remote_devices", stats.cluster.remoteDevices);
  }
  return out.join("\n") + "\n";
}

/**
 * A request handler serving `source.stats()` as Prometheus text, for
 * `Deno.serve` (mount it at `/metrics`).
 *
 * @example
 * ```ts
 * import { Manager, metricsHandler } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
 * const metrics = metricsHandler(manager);
 * await using server = Deno.serve({ port: 0, onListen() {} }, (request) =>
 *   new URL(request.url).pathname === "/metrics" ? metrics(request) : new Response("", { status: 404 }));
 * ```
 */
export function metricsHandler(source: { stats(): ManagerStats }): (request: Request) => Response {
  return () =>
    new Response(prometheusText(source.stats()), {
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
    });
}

function histogram(out: string[], name: string, snapshot: HistogramSnapshot, scale: number): void {
  let cumulative = 0;
  snapshot.bounds.forEach((bound, i) => {
    cumulative += snapshot.counts[i];
    out.push(`iot_manager_${name}_bucket{le="${renderNumber(bound * scale)}"} ${cumulative}`);
  });
  out.push(`iot_manager_${name}_bucket{le="+Inf"} ${snapshot.count}`);
  out.push(`iot_manager_${name}_sum ${renderNumber(snapshot.sum * scale)}`);
  out.push(`iot_manager_${name}_count ${snapshot.count}`);
}

function renderLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  const escape = (value: string) =>
    value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
  return `{${entries.map(([key, value]) => `${key}="${escape(String(value))}"`).join(",")}}`;
}

function renderNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
