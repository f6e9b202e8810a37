/**
 * The simulator's report: a plain object a test can assert on, and its
 * rendering as a table (or JSON) for people. No I/O here.
 *
 * @module
 */

import type { LatencySummary, Tally } from "./stats.ts";

/** One thing the run expected, and whether it held. */
export interface Expectation {
  /** What was expected, e.g. `"every broadcast reached every device"`. */
  readonly name: string;
  /** Whether it held. */
  readonly ok: boolean;
  /** The figures behind the verdict, e.g. `"1000 / 1000"`. */
  readonly detail: string;
}

/** Everything a run measured. Latencies are in milliseconds. */
export interface SimulationReport {
  /** True when every expectation held (the CLI then exits with 0). */
  readonly ok: boolean;
  /** `"embedded"` or `"external"`. */
  readonly target: "embedded" | "external";
  /** The manager's address. */
  readonly address: string;
  /** True when the devices used TLS. */
  readonly tls: boolean;
  /** Wall time of the whole run, in seconds. */
  readonly seconds: number;
  /** True when the run was cut short by its signal. */
  readonly aborted: boolean;
  /** The fleet. */
  readonly devices: {
    /** Devices that should connect (malformed handshakes excluded). */
    readonly expected: number;
    /** Devices that connected (embedded: registered by the manager). */
    readonly connected: number;
    /** Most devices registered at once (embedded) or connected at once (external). */
    readonly peak: number;
    readonly lights: number;
    readonly locks: number;
    /** Devices speaking protocol mode 1. */
    readonly mode1: number;
    /** Devices speaking protocol mode 2. */
    readonly mode2: number;
  };
  /** From opening the socket to being registered by the manager (external: to `Device.connect` resolving). */
  readonly handshake: LatencySummary;
  /** Broadcasts (`sendAll`, `sendType`): manager send to device receipt, undisturbed devices only. */
  readonly broadcasts: {
    readonly sent: number;
    /** Deliveries to undisturbed devices. */
    readonly delivered: number;
    /** Deliveries to undisturbed devices that should have happened. */
    readonly expected: number;
    readonly latency: LatencySummary;
  };
  /** `manager.send(uuid, ...)` to single devices. */
  readonly unicasts: { readonly sent: number; readonly delivered: number };
  /** `client.request("status ...")` round trips, including unknown commands answered with an error. */
  readonly requests: {
    readonly sent: number;
    readonly answered: number;
    readonly latency: LatencySummary;
  };
  /**
   * Message counts, in command lines. To devices: queued by the manager (embedded) / received by
   * the devices. To the manager: sent by the devices / received by the manager (embedded).
   */
  readonly messages: {
    readonly toDevices: { readonly sent: number; readonly delivered: number };
    readonly toManager: { readonly sent: number; readonly received: number };
  };
  /** Heartbeats. */
  readonly heartbeats: {
    /** Rounds the embedded manager ran (0 external). */
    readonly rounds: number;
    /** Heartbeats the devices answered. */
    readonly answered: number;
    /** Heartbeats silent devices deliberately ignored. */
    readonly ignored: number;
    /** Devices that answer heartbeats but were dropped for a missed one. */
    readonly missed: number;
  };
  /** Disconnects by reason, as the manager saw them (embedded) and as the devices saw them. */
  readonly disconnects: {
    readonly manager: Tally;
    readonly devices: Tally;
    /** Disconnects nobody asked for (a device that behaved was dropped). */
    readonly unexpected: number;
    /** Up to ten of them, described. */
    readonly unexpectedSamples: readonly string[];
  };
  /** What the chaos knobs did. */
  readonly chaos: {
    readonly silent: number;
    readonly silentDropped: number;
    readonly slow: number;
    readonly slowDropped: number;
    readonly churnCycles: number;
    readonly churnReconnected: number;
    readonly malformed: number;
    readonly malformedRejected: number;
  };
  /** Peak resident set size of the process (manager and devices together), in bytes. */
  readonly peakRss: number;
  /** Unexpected errors (failed sends, failed connects, bad answers). */
  readonly errors: { readonly count: number; readonly samples: readonly string[] };
  /** The verdicts. */
  readonly expectations: readonly Expectation[];
}

/**
 * Renders a report as a table for a terminal.
 *
 * @example
 * ```ts
 * import { renderReport } from "./report.ts";
 * import { runSimulation } from "./scenario.ts";
 * console.log(renderReport(await runSimulation({ lights: 2, locks: 2, heartbeat: 0.1 })));
 * ```
 */
export function renderReport(report: SimulationReport): string {
  const { devices, handshake, broadcasts, requests, messages, heartbeats, chaos } = report;
  const embedded = report.target === "embedded";
  const rows: [string, string][] = [
    [
      "devices connected / expected",
      `${devices.connected} / ${devices.expected}  (${devices.lights} lights, ${devices.locks} locks; ` +
      `mode 1: ${devices.mode1}, mode 2: ${devices.mode2}; peak ${devices.peak})`,
    ],
    [
      "handshake latency p50 / p99",
      `${ms(handshake.p50)} / ${ms(handshake.p99)}  (max ${ms(handshake.max)})`,
    ],
  ];
  if (embedded) {
    rows.push(
      [
        "broadcast latency p50 / p99 / max",
        `${ms(broadcasts.latency.p50)} / ${ms(broadcasts.latency.p99)} / ${
          ms(broadcasts.latency.max)
        }  ` +
        `(${broadcasts.sent} broadcasts, ${broadcasts.delivered} / ${broadcasts.expected} deliveries)`,
      ],
      ["unicasts delivered / sent", `${report.unicasts.delivered} / ${report.unicasts.sent}`],
      [
        "requests answered / sent",
        `${requests.answered} / ${requests.sent}  (p50 ${ms(requests.latency.p50)}, p99 ${
          ms(requests.latency.p99)
        })`,
      ],
    );
  }
  rows.push(
    embedded
      ? [
        "messages delivered / sent",
        `to devices ${messages.toDevices.delivered} / ${messages.toDevices.sent}, ` +
        `to the manager ${messages.toManager.received} / ${messages.toManager.sent}`,
      ]
      : [
        "messages",
        `${messages.toDevices.delivered} received by the devices, ` +
        `${messages.toManager.sent} sent by them`,
      ],
    [
      "heartbeats",
      `${embedded ? `${heartbeats.rounds} rounds, ` : ""}${heartbeats.answered} answered, ` +
      `${heartbeats.ignored} ignored on purpose, ${heartbeats.missed} missed`,
    ],
    ["disconnects (manager view)", embedded ? tally(report.disconnects.manager) : "n/a"],
    ["disconnects (device view)", tally(report.disconnects.devices)],
    ["unexpected disconnects", String(report.disconnects.unexpected)],
    ["chaos", chaosLine(chaos)],
    ["peak memory (RSS)", `${(report.peakRss / 1048576).toFixed(1)} MiB`],
    ["errors", String(report.errors.count)],
  );
  const width = Math.max(...rows.map(([name]) => name.length));
  const title = `iot-manager simulator: ${report.target} manager at ${report.address}` +
    `${report.tls ? " (TLS)" : ""}, ${devices.expected} devices, ${report.seconds.toFixed(1)} s` +
    (report.aborted ? " (aborted)" : "");
  const lines = [title, "", ...rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`)];
  lines.push("", "expectations");
  const nameWidth = Math.max(0, ...report.expectations.map((e) => e.name.length));
  for (const expectation of report.expectations) {
    lines.push(
      `  ${expectation.ok ? "ok  " : "FAIL"} ${
        expectation.name.padEnd(nameWidth)
      }  ${expectation.detail}`,
    );
  }
  for (const sample of report.disconnects.unexpectedSamples) lines.push(`  unexpected: ${sample}`);
  for (const sample of report.errors.samples) lines.push(`  error: ${sample}`);
  lines.push("", `result: ${report.ok ? "PASS" : "FAIL"}`);
  return lines.join("\n");
}

function ms(value: number): string {
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}

function tally(counts: Tally): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? "none" : entries.map(([key, n]) => `${key} ${n}`).join(", ");
}

function chaosLine(chaos: SimulationReport["chaos"]): string {
  const parts: string[] = [];
  if (chaos.silent) parts.push(`silent ${chaos.silentDropped}/${chaos.silent} dropped`);
  if (chaos.slow) parts.push(`slow readers ${chaos.slow} (${chaos.slowDropped} dropped)`);
  if (chaos.churnCycles) {
    parts.push(`churn ${chaos.churnReconnected}/${chaos.churnCycles} reconnected`);
  }
  if (chaos.malformed) {
    parts.push(`malformed ${chaos.malformedRejected}/${chaos.malformed} rejected`);
  }
  return parts.length === 0 ? "off" : parts.join("; ");
}
