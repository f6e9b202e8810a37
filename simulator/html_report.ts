/**
 * The simulator's report as one self-contained HTML page (`--html`): the
 * verdict, the figures and expectations of the table, and plots of the run
 * over time and of its latency distributions. The charts are drawn in the
 * browser by uPlot, whose script and stylesheet are inlined into the page
 * together with the report's JSON, so the file opens anywhere without a
 * network. Pure: a report in, a string out; `main.ts` writes the file.
 *
 * @module
 */

import uPlotScript from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uPlotStyle from "uplot/dist/uPlot.min.css" with { type: "text" };
import { mib, ms } from "./format.ts";
import pageScript from "./html_report_page.js" with { type: "text" };
import {
  desiredSection,
  memoryTitle,
  memoryVerdictLines,
  type ReportRow,
  restartSection,
  type SimulationReport,
  summaryRows,
} from "./report.ts";
import { RETURN_BUSIEST_LIMIT, RETURN_WINDOW_MS } from "./restart.ts";
import type { Tally } from "./stats.ts";

/** The uPlot release inlined, from its banner (`/*! https://github.com/leeoniya/uPlot (v1.6.32) *\/`). */
const UPLOT_VERSION = /\(v([\d.]+)\)/.exec(uPlotScript)?.[1] ?? "";

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
  const title = `iot-manager simulator: ${verdict}, ${report.devices.expected} devices, ` +
    `${report.seconds.toFixed(1)} s`;
  const where = `${report.target} manager at ${report.address}${report.tls ? " (TLS)" : ""}` +
    (report.aborted ? ", aborted" : "");
  const made = options.generatedAt
    ? `; made ${options.generatedAt.toISOString().replace("T", " ").slice(0, 19)} UTC`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>${inline(uPlotStyle, "style")}</style>
<style>${PAGE_STYLE}</style>
</head>
<body>
<header>
  <h1>iot-manager simulator <span class="badge ${verdict.toLowerCase()}">${verdict}</span></h1>
  <p class="subtitle">${escape(where)}, ${report.devices.expected} devices, ${
    report.seconds.toFixed(1)
  } s${escape(made)}</p>
</header>
<main>
${cards(report)}
${charts(report)}
${disconnects(report)}
${expectations(report)}
<section>
  <h2>Figures</h2>
  ${table(summaryRows(report))}
</section>
${sections(report)}
</main>
<footer>Written by <code>deno task simulate --html</code>; the same report as <code>--json</code> is in
this file (<code>#report-data</code>). Charts: uPlot ${
    escape(UPLOT_VERSION)
  } (MIT), inlined.</footer>
<script type="application/json" id="report-data">${json(report)}</script>
<script>${inline(uPlotScript, "script")}</script>
<script>${inline(pageScript, "script")}</script>
</body>
</html>
`;
}

/** The headline figures, one card each, the way load-test reports open. */
function cards(report: SimulationReport): string {
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
      ms(handshake.p99),
      `p50 ${ms(handshake.p50)}, max ${ms(handshake.max)}; ${handshake.count} handshakes`,
      null,
    ],
  ];
  if (embedded) {
    list.push(
      [
        "broadcast p99",
        ms(broadcasts.latency.p99),
        `p50 ${ms(broadcasts.latency.p50)}, max ${ms(broadcasts.latency.max)}; ` +
        `${broadcasts.delivered} / ${broadcasts.expected} deliveries`,
        broadcasts.delivered === broadcasts.expected,
      ],
      [
        "requests answered",
        `${requests.answered} / ${requests.sent}`,
        `p50 ${ms(requests.latency.p50)}, p99 ${ms(requests.latency.p99)}`,
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
  const items = list.map(([label, value, detail, ok]) =>
    `<div class="card${ok === null ? "" : ok ? " good" : " bad"}"><div class="label">${
      escape(label)
    }</div><div class="value">${escape(value)}</div><div class="detail">${
      escape(detail)
    }</div></div>`
  );
  return `<section class="cards">\n${items.join("\n")}\n</section>`;
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
    figures.push(
      `<figure class="chart"><figcaption><h3>${escape(heading)}</h3><p>${
        escape(note)
      }</p></figcaption><div class="plot" data-chart="${name}"></div></figure>`,
    );
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
  const percentiles = (summary: { p50: number; p99: number; max: number }) =>
    `p50 ${ms(summary.p50)}, p99 ${ms(summary.p99)}, max ${ms(summary.max)}`;
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
  return `<section>
  <h2>Plots</h2>
  <p class="note">A sample every ${every} s (${timeline.samples.length} samples); hover a plot ` +
    `for values, drag across a time plot to zoom, double-click to reset. Latencies are counted ` +
    `in ten buckets per decade.</p>
  <div class="charts">
${figures.join("\n")}
  </div>
  <noscript><p class="note">The plots need JavaScript; the figures below do not.</p></noscript>
</section>`;
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
    const bars = entries.length === 0
      ? `<p class="note">none</p>`
      : entries.map(([reason, n]) =>
        `<div class="bar"><span class="reason">${escape(reason)}</span><span class="track">` +
        `<span class="fill" style="width:${((n / most) * 100).toFixed(1)}%"></span></span>` +
        `<span class="count">${n}</span></div>`
      ).join("\n");
    return `<div class="bars"><h3>${escape(heading)}</h3>\n${bars}</div>`;
  });
  const samples = report.disconnects.unexpectedSamples.map((sample) =>
    `<li>${escape(sample)}</li>`
  );
  return `<section>
  <h2>Disconnects by reason</h2>
  <div class="bars-grid">${blocks.join("\n")}</div>
  <p class="note">${report.disconnects.unexpected} unexpected</p>${
    samples.length > 0 ? `\n  <ul class="samples">${samples.join("")}</ul>` : ""
  }
</section>`;
}

/** Every expectation with PASS or FAIL, then the result and any error samples. */
function expectations(report: SimulationReport): string {
  const rows = report.expectations.map((expectation) => {
    const verdict = expectation.ok ? "PASS" : "FAIL";
    return `<tr class="${verdict.toLowerCase()}"><td class="verdict">${verdict}</td><td>${
      escape(expectation.name)
    }</td><td>${escape(expectation.detail)}</td></tr>`;
  });
  const errors = report.errors.samples.map((sample) => `<li>${escape(sample)}</li>`);
  const verdict = report.ok ? "PASS" : "FAIL";
  return `<section>
  <h2>Expectations</h2>
  <table class="expectations">
${rows.join("\n")}
  </table>${errors.length > 0 ? `\n  <ul class="samples">${errors.join("")}</ul>` : ""}
  <p class="result ${verdict.toLowerCase()}">result: ${verdict}</p>
</section>`;
}

/** The restart, desired-state and memory sections, each when the run had one. */
function sections(report: SimulationReport): string {
  const parts: string[] = [];
  if (report.restart) {
    const { title, rows } = restartSection(report.restart);
    parts.push(section("Restart", title, table(rows)));
  }
  if (report.desired) {
    const { title, rows } = desiredSection(report.desired);
    parts.push(section("Desired state and ttl messages", title, table(rows)));
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

function section(heading: string, title: string, body: string): string {
  return `<section>
  <h2>${escape(heading)}</h2>
  <p>${escape(title)}</p>
  ${body}
</section>`;
}

function table(rows: readonly ReportRow[]): string {
  const body = rows.map(([name, value]) =>
    `<tr><th scope="row">${escape(name)}</th><td>${escape(value)}</td></tr>`
  );
  return `<table class="figures">\n${body.join("\n")}\n</table>`;
}

function sum(tally: Tally): number {
  return Object.values(tally).reduce((total, n) => total + n, 0);
}

/** Text for HTML, in an element or in a quoted attribute. */
function escape(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** JSON inside `<script type="application/json">`: no `<` can end the element early. */
function json(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

/** Inlined code or CSS: nothing in it may close its own element early. */
function inline(text: string, element: "script" | "style"): string {
  return text.replace(new RegExp(`</(${element})`, "gi"), "<\\/$1");
}

const PAGE_STYLE = `
:root { color-scheme: light; --ink: #0f172a; --muted: #475569; --line: #e2e8f0; --pass: #15803d;
  --fail: #b91c1c; --card: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #fff; }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--line); }
h1 { margin: 0; font-size: 24px; display: flex; align-items: center; gap: 12px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
h3 { font-size: 15px; margin: 0; }
main { padding: 8px 32px 24px; max-width: 1400px; }
footer { padding: 16px 32px 32px; color: var(--muted); font-size: 13px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.92em; }
.subtitle, .note { color: var(--muted); margin: 4px 0; }
.badge { font-size: 14px; padding: 2px 10px; border-radius: 999px; color: #fff; }
.badge.pass { background: var(--pass); }
.badge.fail { background: var(--fail); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px;
  margin-top: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-left: 4px solid #94a3b8;
  border-radius: 6px; padding: 10px 12px; }
.card.good { border-left-color: var(--pass); }
.card.bad { border-left-color: var(--fail); }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .detail { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 12px; min-width: 0; }
.chart figcaption p { margin: 2px 0 8px; color: var(--muted); font-size: 13px; }
.plot { width: 100%; min-height: 240px; }
.uplot { font-family: inherit; }
.u-legend { font-size: 12px; }
.bars-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.bars h3 { margin-bottom: 6px; font-weight: 500; color: var(--muted); }
.bar { display: grid; grid-template-columns: 140px 1fr 70px; align-items: center; gap: 8px;
  margin: 3px 0; font-size: 13px; }
.bar .track { background: #f1f5f9; border-radius: 3px; height: 14px; }
.bar .fill { display: block; height: 100%; background: #dc2626; opacity: 0.75; border-radius: 3px; }
.bar .count { text-align: right; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
td, th { text-align: left; vertical-align: top; padding: 5px 10px; border-bottom: 1px solid var(--line); }
table.figures th { width: 320px; font-weight: 500; color: var(--muted); }
table.expectations td.verdict { width: 60px; font-weight: 700; }
tr.pass td.verdict { color: var(--pass); }
tr.fail td.verdict { color: var(--fail); }
tr.fail { background: #fef2f2; }
.result { font-weight: 700; font-size: 16px; }
.result.pass { color: var(--pass); }
.result.fail { color: var(--fail); }
ul.samples { font-family: ui-monospace, monospace; font-size: 12px; color: var(--fail); }
ul.plain { padding-left: 18px; }
@media (max-width: 600px) {
  header, main, footer { padding-left: 14px; padding-right: 14px; }
  .charts { grid-template-columns: 1fr; }
  .bar { grid-template-columns: 100px 1fr 50px; }
}
`;
