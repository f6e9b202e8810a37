/**
 * The simulator's report: a plain object a test can assert on, and its
 * rendering as a table (or JSON) for people. No I/O here.
 *
 * @module
 */

import type { DesiredReport } from "./desired.ts";
import { MIB, mib, msOf, percent, seconds, signed } from "./format.ts";
import { HEAP_GROWTH_LIMIT, type MemoryReport } from "./memory.ts";
import { type RestartReport, RETURN_WINDOW_MS } from "./restart.ts";
import type { LatencyDistribution, LatencySummary, Tally } from "./stats.ts";
import type { SteadyReport } from "./steady.ts";
import type { Timeline } from "./timeline.ts";

export type { DesiredReport, TtlReport } from "./desired.ts";
export type { MemoryReport, MemorySample, MemoryVerdict } from "./memory.ts";
export type { RestartReport } from "./restart.ts";
export type { SteadyReport } from "./steady.ts";
export type { LatencyDistribution } from "./stats.ts";
export type { Timeline, TimelinePhase, TimelineSample } from "./timeline.ts";

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
  /** Steady-phase broadcasts and requests (`--steady-broadcast`, `--steady-requests`); null when off. */
  readonly steady: SteadyReport | null;
  /** The memory timeline and its verdict (`--memory-every`); null when off. The whole process: manager and devices. */
  readonly memory: MemoryReport | null;
  /** How the fleet came back after the manager was closed and started again (`--restart`); null when off. */
  readonly restart: RestartReport | null;
  /** Desired state and ttl messages while devices come and go (`--desired`); null when off. */
  readonly desired: DesiredReport | null;
  /** Peak resident set size of the process (manager and devices together), in bytes. */
  readonly peakRss: number;
  /** Failures nothing handled, counted during the run instead of ending the process. */
  readonly process: {
    /** `unhandledrejection` events: promises rejected with nobody to catch it. */
    readonly unhandledRejections: number;
    /** `error` events: exceptions thrown where nothing caught them (timer callbacks, handlers). */
    readonly uncaughtErrors: number;
  };
  /** Unexpected errors (failed sends, failed connects, bad answers). */
  readonly errors: { readonly count: number; readonly samples: readonly string[] };
  /** The verdicts. */
  readonly expectations: readonly Expectation[];
  /** What plots need (`--html`, option `plots`); absent unless asked for. */
  readonly plots?: ReportPlots;
}

/** The run over time and its latency distributions, for plots. */
export interface ReportPlots {
  /** Devices, messages, heartbeats, disconnects, errors and memory over time, and the phases. */
  readonly timeline: Timeline;
  /** The distributions behind the report's latency summaries. */
  readonly latency: {
    /** As {@linkcode SimulationReport.handshake}. */
    readonly handshake: LatencyDistribution;
    /** As the broadcasts' latency: the scripted broadcasts to undisturbed devices. */
    readonly broadcasts: LatencyDistribution;
    /** As the requests' latency. */
    readonly requests: LatencyDistribution;
    /** As the steady broadcasts' latency; null without steady traffic. */
    readonly steadyBroadcasts: LatencyDistribution | null;
    /** As the steady requests' latency; null without steady traffic. */
    readonly steadyRequests: LatencyDistribution | null;
  };
}

/** One figure of the report: its name and its value, as the table prints them. */
export type ReportRow = readonly [name: string, value: string];

/** A section of the report: a line that says what it is, and its figures. */
export interface ReportSection {
  readonly title: string;
  readonly rows: readonly ReportRow[];
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
  const { devices } = report;
  const title = `iot-manager simulator: ${report.target} manager at ${report.address}` +
    `${report.tls ? " (TLS)" : ""}, ${devices.expected} devices, ${report.seconds.toFixed(1)} s` +
    (report.aborted ? " (aborted)" : "");
  const lines = [title, "", ...indentRows(summaryRows(report))];
  if (report.restart) lines.push("", ...renderRestart(report.restart));
  if (report.desired) {
    const section = desiredSection(report.desired);
    lines.push("", section.title, ...indentRows(section.rows));
  }
  if (report.memory) lines.push("", ...renderMemory(report.memory, devices.expected));
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

/**
 * The report's main figures, one row each, in the table's order.
 *
 * @example
 * ```ts
 * import { summaryRows } from "./report.ts";
 * import { runSimulation } from "./scenario.ts";
 * const rows = summaryRows(await runSimulation({ lights: 2, locks: 2, heartbeat: 0.1 }));
 * console.log(rows[0][0]); // "devices connected / expected"
 * ```
 */
export function summaryRows(report: SimulationReport): ReportRow[] {
  const { devices, handshake, broadcasts, requests, messages, heartbeats, chaos } = report;
  const embedded = report.target === "embedded";
  const rows: ReportRow[] = [
    [
      "devices connected / expected",
      `${devices.connected} / ${devices.expected}  (${devices.lights} lights, ${devices.locks} locks; ` +
      `mode 1: ${devices.mode1}, mode 2: ${devices.mode2}; peak ${devices.peak})`,
    ],
    [
      "handshake latency p50 / p99",
      `${msOf(handshake, "p50")} / ${msOf(handshake, "p99")}  (max ${msOf(handshake, "max")})`,
    ],
  ];
  if (embedded) {
    rows.push(
      [
        "broadcast latency p50 / p99 / max",
        `${msOf(broadcasts.latency, "p50")} / ${msOf(broadcasts.latency, "p99")} / ${
          msOf(broadcasts.latency, "max")
        }  ` +
        `(${broadcasts.sent} broadcasts, ${broadcasts.delivered} / ${broadcasts.expected} deliveries)`,
      ],
      ["unicasts delivered / sent", `${report.unicasts.delivered} / ${report.unicasts.sent}`],
      [
        "requests answered / sent",
        `${requests.answered} / ${requests.sent}  (p50 ${msOf(requests.latency, "p50")}, p99 ${
          msOf(requests.latency, "p99")
        })`,
      ],
    );
  }
  const steady = report.steady;
  if (steady && steady.broadcasts.sent > 0) {
    const { sent, due, delivered, excused, missed, latency } = steady.broadcasts;
    rows.push([
      "steady broadcasts",
      `${sent} sent, ${delivered} / ${due - excused} deliveries to live devices ` +
      `(${excused} excused, ${missed} missed); p50 / p99 / max ${msOf(latency, "p50")} / ` +
      `${msOf(latency, "p99")} / ${msOf(latency, "max")}`,
    ]);
  }
  if (steady && steady.requests.sent > 0) {
    const { sent, answered, excused, failed, latency } = steady.requests;
    rows.push([
      "steady requests",
      `${answered} / ${sent - excused} answered (${excused} excused, ${failed} failed); ` +
      `p50 / p99 / max ${msOf(latency, "p50")} / ${msOf(latency, "p99")} / ${msOf(latency, "max")}`,
    ]);
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
    ["peak memory (RSS)", `${mib(report.peakRss)} MiB`],
    [
      "unhandled rejections / uncaught",
      `${report.process.unhandledRejections} / ${report.process.uncaughtErrors}`,
    ],
    ["errors", String(report.errors.count)],
  );
  return rows;
}

/** Rows as the table prints them: indented, names padded to the longest. */
function indentRows(rows: readonly ReportRow[]): string[] {
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`);
}

/**
 * The restart: how many came back and when. The handshakes per window are
 * `restart.perWindow`, which the table prints a row per second.
 *
 * @example
 * ```ts
 * import { restartSection } from "./report.ts";
 * const section = restartSection({
 *   closedAt: 2, closeSeconds: 0.01, upAfter: 1, linesLost: 0,
 *   reconnect: { initialDelay: 1, maxDelay: 10, jitter: 1 },
 *   expected: 2, back: 2, backAfter: { p50: 1.2, p90: 1.5, last: 1.5 },
 *   busiest: { count: 1, share: 0.5, from: 1.2 }, perWindow: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1],
 * });
 * console.log(section.rows[1]); // ["devices back / expected", "2 / 2"]
 * ```
 */
export function restartSection(restart: RestartReport): ReportSection {
  const { reconnect, backAfter, busiest } = restart;
  const rows: ReportRow[] = [
    [
      "device backoff",
      `${reconnect.initialDelay} s to ${reconnect.maxDelay} s, decorrelated jitter ${reconnect.jitter}`,
    ],
    ["devices back / expected", `${restart.back} / ${restart.expected}`],
    [
      "back after the loss p50 / p90 / all",
      `${seconds(backAfter.p50)} / ${seconds(backAfter.p90)} / ` +
      (restart.back === restart.expected
        ? seconds(backAfter.last)
        : `never (last so far ${seconds(backAfter.last)})`),
    ],
    [
      `busiest ${RETURN_WINDOW_MS} ms`,
      `${busiest.count} handshakes (${percent(busiest.share)} of ${restart.expected}), ` +
      `from ${seconds(busiest.from)}`,
    ],
  ];
  if (restart.linesLost > 0) {
    rows.push(["lines lost with the old manager", String(restart.linesLost)]);
  }
  return {
    title:
      `restart: manager closed at ${
        restart.closedAt.toFixed(1)
      } s with ${restart.expected} devices ` +
      `(its close took ${seconds(restart.closeSeconds)}), a new one on the same port at ` +
      `+${seconds(restart.upAfter)}`,
    rows,
  };
}

/** The restart: its section, then handshakes per window, a row per second. */
function renderRestart(restart: RestartReport): string[] {
  const section = restartSection(restart);
  const lines = [
    section.title,
    ...indentRows(section.rows),
    `  handshakes per ${RETURN_WINDOW_MS} ms by seconds after the loss, then the second's total`,
  ];
  const perRow = 1000 / RETURN_WINDOW_MS;
  const perWindow = restart.perWindow;
  const cell = Math.max(3, ...perWindow.map((n) => String(n).length)) + 1;
  const firstRow = Math.floor(restart.upAfter) * perRow;
  for (let first = firstRow; first < perWindow.length; first += perRow) {
    const counts = Array.from({ length: perRow }, (_, i) => perWindow[first + i] ?? 0);
    const total = counts.reduce((sum, n) => sum + n, 0);
    lines.push(
      `  ${`${first / perRow} s`.padStart(6)}` +
        counts.map((n) => String(n).padStart(cell)).join("") +
        `  ${String(total).padStart(cell)}`,
    );
  }
  return lines;
}

/**
 * The desired-state scenario: the fleet in step, how fast, and the ttl messages' books.
 *
 * @example
 * ```ts ignore
 * import { desiredSection } from "./report.ts";
 * const { title, rows } = desiredSection(report.desired!);
 * ```
 */
export function desiredSection(desired: DesiredReport): ReportSection {
  const { devices, afterChange, afterReconnect, reconnects, ttl, restart } = desired;
  const books = ttl.manager;
  const failed = Object.entries(ttl.failed).map(([reason, n]) => `${n} ${reason}`);
  const latency = (summary: DesiredReport["afterChange"]) =>
    `${msOf(summary, "p50")} / ${msOf(summary, "p99")} / ${msOf(summary, "max")}`;
  const rows: ReportRow[] = [
    [
      "devices in step / connected",
      `${devices.inStep} / ${devices.connected}` +
      (devices.mode1 > 0 ? `  (${devices.mode1} mode-1 devices left out)` : "") +
      (desired.settled ? "" : "  (stopped waiting)"),
    ],
    [
      "in step after a change p50 / p99 / max",
      `${latency(afterChange)}  (${afterChange.count} times a connected device had to move)`,
    ],
    [
      "in step after reconnecting p50 / p99 / max",
      `${latency(afterReconnect)}  (${reconnects.outOfStep} of ${reconnects.total} came back ` +
      `out of step)`,
    ],
    ...(restart
      ? [
        [
          "across the restart",
          `${restart.away} devices away at the change just before it, ` +
          `${restart.awayBackOutOfStep} of them back out of step; ` +
          `the new manager read ${restart.known} / ${restart.devices} desired states from the store`,
        ] satisfies ReportRow,
      ]
      : []),
    [
      "ttl messages to devices away",
      `${ttl.sent} sent: ${ttl.kept} kept, ${ttl.direct} delivered at once (already back)` +
      (failed.length > 0 ? `, failed: ${failed.join(", ")}` : ""),
    ],
    [
      "kept messages (manager)",
      `${books.kept} kept: ${books.delivered} delivered, ${books.expired} expired, ` +
      `${books.dropped} dropped, ${books.stillKept} still kept; ` +
      `the devices received ${ttl.received.kept} of them`,
    ],
  ];
  return {
    title: `desired state: ${desired.changes} changes to every lock and light, one every ` +
      `${desired.every} s, ` +
      (restart ? "one just before the restart, " : "") +
      `the last once churn and steady traffic had stopped; ` +
      `${desired.awayChanges} to single devices while they were away`,
    rows,
  };
}

/** The memory timeline as a table, then the verdict. */
function renderMemory(memory: MemoryReport, devices: number): string[] {
  const lines = [
    memoryTitle(memory, devices),
    `  ${"elapsed".padStart(9)}  ${"phase".padEnd(10)}  ${"connected".padStart(9)}  ` +
    `${"rss".padStart(9)}  ${"heapUsed".padStart(9)}  ${"external".padStart(9)}`,
  ];
  for (const sample of memory.samples) {
    lines.push(
      `  ${`${sample.elapsed.toFixed(1)} s`.padStart(9)}  ${sample.phase.padEnd(10)}  ` +
        `${String(sample.connected).padStart(9)}  ${`${mib(sample.rss)} MiB`.padStart(9)}  ` +
        `${`${mib(sample.heapUsed)} MiB`.padStart(9)}  ${
          `${mib(sample.external)} MiB`.padStart(9)
        }`,
    );
  }
  lines.push(...memoryVerdictLines(memory).map((line) => `  ${line}`));
  return lines;
}

/**
 * What the memory timeline is: how often, and whether each sample followed a forced GC.
 *
 * @example
 * ```ts ignore
 * import { memoryTitle } from "./report.ts";
 * console.log(memoryTitle(report.memory!, report.devices.expected));
 * ```
 */
export function memoryTitle(memory: MemoryReport, devices: number): string {
  return `memory: the whole process (manager and ${devices} devices), a sample every ${memory.every} s` +
    (memory.forcedGc ? ", each after a forced GC" : ", no forced GC (heapUsed includes garbage)");
}

/**
 * The memory verdict in words: the warm-up, the heap's growth against its limit, the RSS, the verdict.
 *
 * @example
 * ```ts ignore
 * import { memoryVerdictLines } from "./report.ts";
 * console.log(memoryVerdictLines(report.memory!).at(-1)); // "verdict: flat"
 * ```
 */
export function memoryVerdictLines(memory: MemoryReport): string[] {
  const verdict = memory.verdict;
  const growth = (bytes: number, of: number) =>
    `${signed(bytes / MIB)} MiB (${bytes >= 0 ? "+" : ""}${
      of > 0 ? ((bytes / of) * 100).toFixed(1) : "0.0"
    } %)`;
  const warmUp = `warm-up: the first ${memory.warmUp} s of the steady phase, which ran ` +
    `from ${memory.steadyStart.toFixed(1)} s to ${memory.steadyEnd.toFixed(1)} s`;
  // No samples after the warm-up: figures would read as a measurement of nothing.
  if (verdict.samplesAfterWarmUp < 2) return [warmUp, `memory not judged: ${verdict.reason}`];
  return [
    warmUp,
    `heapUsed ${mib(verdict.baseline)} MiB after warm-up (at ${
      verdict.baselineAt.toFixed(0)
    } s), ` +
    `${mib(verdict.end)} MiB at the end (at ${verdict.endAt.toFixed(0)} s): ` +
    `${growth(verdict.growth, verdict.baseline)}, limit +${HEAP_GROWTH_LIMIT * 100} %; ` +
    `trend ${signed(verdict.trendPerMinute / MIB)} MiB/min`,
    `rss ${mib(verdict.rssBaseline)} MiB -> ${mib(verdict.rssEnd)} MiB: ` +
    `${growth(verdict.rssEnd - verdict.rssBaseline, verdict.rssBaseline)} (not judged)`,
    `verdict: ${
      verdict.judged ? (verdict.ok ? "flat" : "GROWING") : `not judged: ${verdict.reason}`
    }`,
  ];
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
