/**
 * The simulator's report as one self-contained HTML page (`--html`): the
 * verdict, the figures and expectations of the table, and plots of the run
 * over time and of its latency distributions. The page, shared with the
 * bench's report, is `report_page/page.ts`: uPlot's script and stylesheet
 * inlined together with the report's JSON, so the file opens anywhere without
 * a network; the charts are drawn in the browser by `html_report_page.js`.
 * Pure: a report in, a string out; `main.ts` writes the file.
 *
 * @module
 */

import {
  bars,
  type Card,
  cards,
  chartBox,
  chartsSection,
  escape,
  figuresTable,
  renderPage,
  samples,
  section,
  verdictTable,
} from "../report_page/page.ts";
import { mib, msOf } from "./format.ts";
import pageScript from "./html_report_page.js" with { type: "text" };
import {
  desiredSection,
  memoryTitle,
  memoryVerdictLines,
  restartSection,
  type SimulationReport,
  summaryRows,
} from "./report.ts";
import { RETURN_BUSIEST_LIMIT, RETURN_WINDOW_MS } from "./restart.ts";
import type { LatencySummary, Tally } from "./stats.ts";

/** Options of {@linkcode renderHtmlReport}. */
export interface HtmlReportOptions {
  /** When the report was made, shown under the title; omitted when not given. */
  readonly generatedAt?: Date;
}

/**
 * Renders a report as one HTML page with everything inlined. The plots need
 * `report.plots` (a run with `plots: true`); without it the page has the
 * figures and expectations only.
 *
 * @example
 * ```ts
 * import { renderHtmlReport } from "./html_report.ts";
 * import { runSimulation } from "./scenario.ts";
 * const report = await runSimulation({ lights: 2, locks: 2, heartbeat: 0.1, plots: true });
 * const html = renderHtmlReport(report, { generatedAt: new Date() });
 * console.log(html.startsWith("<!doctype html>")); // true
 * ```
 */
export function renderHtmlReport(
  report: SimulationReport,
  options: HtmlReportOptions = {},
): string {
  const verdict = report.ok ? "PASS" : "FAIL";
  const where = `${report.target} manager at ${report.address}${report.tls ? " (TLS)" : ""}` +
    (report.aborted ? ", aborted" : "");
  return renderPage({
    title: `iot-manager simulator: ${verdict}, ${report.devices.expected} devices, ` +
      `${report.seconds.toFixed(1)} s`,
    heading: "iot-manager simulator",
    badge: { text: verdict, tone: report.ok ? "pass" : "fail" },
    subtitle: `${where}, ${report.devices.expected} devices, ${report.seconds.toFixed(1)} s`,
    generatedAt: options.generatedAt,
    body: [
      headlineCards(report),
      charts(report),
      disconnects(report),
      expectations(report),
      `<section>\n  <h2>Figures</h2>\n  ${figuresTable(summaryRows(report))}\n</section>`,
      sections(report),
    ].join("\n"),
    footer: "Written by <code>deno task simulate --html</code>; the run's report (what " +
      "<code>--json</code> prints, before its figures\nare renamed with units and rounded) is in " +
      "this file (<code>#report-data</code>).",
    data: report,
    script: pageScript,
  });
}

/** The headline figures, one card each, the way load-test reports open. */
function headlineCards(report: SimulationReport): string {
  const { devices, handshake, broadcasts, requests, messages, heartbeats, disconnects } = report;
  const embedded = report.target === "embedded";
  const lines = embedded
    ? messages.toDevices.delivered + messages.toManager.received
    : messages.toDevices.delivered + messages.toManager.sent;
  const failures = report.errors.count + report.process.unhandledRejections +
    report.process.uncaughtErrors;
  const list: [label: string, value: string, detail: string, ok: boolean | null][] = [
    [
      "devices connected",
      `${devices.connected} / ${devices.expected}`,
      `peak ${devices.peak}; ${devices.lights} lights, ${devices.locks} locks; ` +
      `mode 1: ${devices.mode1}, mode 2: ${devices.mode2}`,
      devices.connected === devices.expected,
    ],
    [
      "handshake p99",
      msOf(handshake, "p99"),
      `p50 ${msOf(handshake, "p50")}, max ${msOf(handshake, "max")}; ${handshake.count} handshakes`,
      null,
    ],
  ];
  if (embedded) {
    list.push(
      [
        "broadcast p99",
        msOf(broadcasts.latency, "p99"),
        `p50 ${msOf(broadcasts.latency, "p50")}, max ${msOf(broadcasts.latency, "max")}; ` +
        `${broadcasts.delivered} / ${broadcasts.expected} deliveries`,
        broadcasts.delivered === broadcasts.expected,
      ],
      [
        "requests answered",
        `${requests.answered} / ${requests.sent}`,
        `p50 ${msOf(requests.latency, "p50")}, p99 ${msOf(requests.latency, "p99")}`,
        requests.answered === requests.sent,
      ],
    );
  }
  list.push(
    [
      "messages",
      lines.toLocaleString("en"),
      `${Math.round(lines / Math.max(report.seconds, 0.001)).toLocaleString("en")} / s on ` +
      `average; to devices ${messages.toDevices.delivered}, to the manager ` +
      `${embedded ? messages.toManager.received : messages.toManager.sent}`,
      null,
    ],
    [
      "heartbeat rounds",
      String(heartbeats.rounds),
      `${heartbeats.answered} beats answered, ${heartbeats.ignored} ignored on purpose, ` +
      `${heartbeats.missed} missed`,
      heartbeats.missed === 0,
    ],
    [
      "unexpected disconnects",
      String(disconnects.unexpected),
      `${sum(embedded ? disconnects.manager : disconnects.devices)} disconnects in all`,
      disconnects.unexpected === 0,
    ],
    ["peak memory (RSS)", `${mib(report.peakRss)} MiB`, "manager and devices together", null],
    [
      "errors",
      String(report.errors.count),
      `${report.process.unhandledRejections} unhandled rejections, ` +
      `${report.process.uncaughtErrors} uncaught errors`,
      failures === 0,
    ],
  );
  return cards(list.map(([label, value, detail, ok]): Card => ({ label, value, detail, ok })));
}

/** The plots' boxes, which the page script fills; only those the report has data for. */
function charts(report: SimulationReport): string {
  const plots = report.plots;
  if (!plots) {
    return `<section><h2>Plots</h2><p class="note">This report kept no time series: plots come ` +
      `with <code>--html</code> (option <code>plots</code>).</p></section>`;
  }
  const { latency, timeline } = plots;
  const embedded = report.target === "embedded";
  const figures: string[] = [];
  const figure = (name: string, heading: string, note: string) =>
    figures.push(chartBox(name, heading, note));
  if (timeline.samples.length > 1) {
    figure(
      "connected",
      "Devices connected",
      `${
        embedded ? "registered by the manager" : "connected, as the devices see it"
      }; disconnects per second on the right (${
        embedded ? "the manager's view" : "the devices' view"
      }); shaded bands are the run's phases`,
    );
    figure(
      "messages",
      "Messages per second",
      `command lines received by the devices, and ${
        embedded ? "received by the manager" : "sent by the devices"
      }`,
    );
    figure(
      "heartbeats",
      "Heartbeats",
      `beats the devices answered per second; the manager's rounds so far on the right`,
    );
    figure(
      "memory",
      "Memory over time",
      "the whole process, manager and devices: RSS, V8 heap in use (garbage included) and " +
        "external memory" + (report.memory?.forcedGc ? "; dots: heap after a forced GC" : ""),
    );
  }
  const percentiles = (summary: LatencySummary) =>
    `p50 ${msOf(summary, "p50")}, p99 ${msOf(summary, "p99")}, max ${msOf(summary, "max")}`;
  if (latency.handshake.upTo.length > 0) {
    figure(
      "handshake",
      "Handshake latency",
      `${
        embedded ? "socket opened to the manager's connect event" : "socket opened to connected"
      }; ${percentiles(report.handshake)}`,
    );
  }
  const steady = report.steady;
  if (latency.broadcasts.upTo.length > 0 || (latency.steadyBroadcasts?.upTo.length ?? 0) > 0) {
    figure(
      "broadcasts",
      "Broadcast latency",
      `from the send to each device having the message; ` +
        [
          latency.broadcasts.upTo.length > 0 &&
          `scripted ${percentiles(report.broadcasts.latency)}`,
          steady && steady.broadcasts.sent > 0 &&
          `steady ${percentiles(steady.broadcasts.latency)}`,
        ].filter(Boolean).join("; "),
    );
  }
  if (latency.requests.upTo.length > 0 || (latency.steadyRequests?.upTo.length ?? 0) > 0) {
    figure(
      "requests",
      "Request round trips",
      `client.request to its answer; ` +
        [
          latency.requests.upTo.length > 0 && `scripted ${percentiles(report.requests.latency)}`,
          steady && steady.requests.sent > 0 && `steady ${percentiles(steady.requests.latency)}`,
        ].filter(Boolean).join("; "),
    );
  }
  if (report.restart && report.restart.perWindow.length > 0) {
    figure(
      "restart",
      "The return after the restart",
      `handshakes per ${RETURN_WINDOW_MS} ms after the manager was lost; the dashed line is ` +
        `${RETURN_BUSIEST_LIMIT * 100} % of the fleet`,
    );
  }
  const every = timeline.every;
  return chartsSection(
    `A sample every ${every} s (${timeline.samples.length} samples); hover a plot for values, ` +
      `drag across a time plot to zoom, double-click to reset. Latencies are counted in ten ` +
      `buckets per decade.`,
    figures,
  );
}

/** Disconnects by reason, as bars, from the manager's side and the devices'. */
function disconnects(report: SimulationReport): string {
  const views: [string, Tally][] = [["as the devices saw them", report.disconnects.devices]];
  if (report.target === "embedded") {
    views.unshift(["as the manager saw them", report.disconnects.manager]);
  }
  const most = Math.max(1, ...views.flatMap(([, tally]) => Object.values(tally)));
  const blocks = views.map(([heading, tally]) => {
    const entries = Object.entries(tally).sort((a, b) => b[1] - a[1]);
    return bars(heading, entries.map(([reason, n]) => [reason, n, String(n)] as const), most);
  });
  const unexpected = samples(report.disconnects.unexpectedSamples);
  return `<section>
  <h2>Disconnects by reason</h2>
  <div class="bars-grid">${blocks.join("\n")}</div>
  <p class="note">${report.disconnects.unexpected} unexpected</p>${
    unexpected ? `\n  ${unexpected}` : ""
  }
</section>`;
}

/** Every expectation with PASS or FAIL, then the result and any error samples. */
function expectations(report: SimulationReport): string {
  const rows = verdictTable(report.expectations.map((expectation) => ({
    verdict: expectation.ok ? "PASS" : "FAIL",
    ok: expectation.ok,
    cells: [expectation.name, expectation.detail],
  })));
  const errors = samples(report.errors.samples);
  const verdict = report.ok ? "PASS" : "FAIL";
  return `<section>
  <h2>Expectations</h2>
  ${rows}${errors ? `\n  ${errors}` : ""}
  <p class="result ${verdict.toLowerCase()}">result: ${verdict}</p>
</section>`;
}

/** The restart, desired-state and memory sections, each when the run had one. */
function sections(report: SimulationReport): string {
  const parts: string[] = [];
  if (report.restart) {
    const { title, rows } = restartSection(report.restart);
    parts.push(section("Restart", title, figuresTable(rows)));
  }
  if (report.desired) {
    const { title, rows } = desiredSection(report.desired);
    parts.push(section("Desired state and ttl messages", title, figuresTable(rows)));
  }
  if (report.memory) {
    const memory = report.memory;
    const lines = memoryVerdictLines(memory).map((line) => `<li>${escape(line)}</li>`);
    parts.push(
      section(
        "Memory verdict",
        memoryTitle(memory, report.devices.expected),
        `<ul class="plain">${lines.join("")}</ul>`,
      ),
    );
  }
  return parts.join("\n");
}

function sum(tally: Tally): number {
  return Object.values(tally).reduce((total, n) => total + n, 0);
}
