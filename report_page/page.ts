/**
 * The page both tools' HTML reports are written on (`deno task simulate
 * --html`, `simulator/html_report.ts`; `deno task bench`, `bench/report/html.ts`):
 * one self-contained file with uPlot's script and stylesheet, the report's
 * JSON, the chart helpers every report's page script uses (`charts.js`) and
 * that script inlined, so it opens anywhere without a network; and the pieces
 * of HTML both draw their figures with (cards, tables, bars, chart boxes).
 * Pure: strings in, a string out.
 *
 * @module
 */

import uPlotScript from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uPlotStyle from "uplot/dist/uPlot.min.css" with { type: "text" };
import chartHelpers from "./charts.js" with { type: "text" };

/** The uPlot release inlined, from its banner (`/*! https://github.com/leeoniya/uPlot (v1.6.32) *\/`). */
export const UPLOT_VERSION: string = /\(v([\d.]+)\)/.exec(uPlotScript)?.[1] ?? "";

/** How a verdict looks: green, red, or amber for a mix. */
export type Tone = "pass" | "fail" | "mixed";

/** What {@linkcode renderPage} puts together. */
export interface Page {
  /** The document's title (the browser tab). */
  readonly title: string;
  /** The heading, before its badge. */
  readonly heading: string;
  /** The badge after the heading: its text and colour. */
  readonly badge: { readonly text: string; readonly tone: Tone };
  /** The line under the heading, as text. */
  readonly subtitle: string;
  /** When the report was made, appended to the subtitle; omitted when not given. */
  readonly generatedAt?: Date;
  /** The sections, as HTML. */
  readonly body: string;
  /** The footer, as HTML; the line naming uPlot follows it. */
  readonly footer: string;
  /** The report, embedded as JSON in `#report-data` for the page script. */
  readonly data: unknown;
  /** The report's own page script, run after uPlot and `charts.js`. */
  readonly script: string;
  /** CSS of the report's own, after the shared style. */
  readonly style?: string;
}

/**
 * The whole document: the shared style, the page, the report's JSON, uPlot,
 * and in one script the chart helpers followed by the report's page script.
 *
 * @example
 * ```ts
 * import { renderPage } from "./page.ts";
 * const html = renderPage({
 *   title: "a report",
 *   heading: "A report",
 *   badge: { text: "PASS", tone: "pass" },
 *   subtitle: "nothing measured",
 *   body: "<section></section>",
 *   footer: "Written by hand.",
 *   data: {},
 *   script: "ReportCharts.done();",
 * });
 * console.log(html.startsWith("<!doctype html>")); // true
 * ```
 */
export function renderPage(page: Page): string {
  const made = page.generatedAt
    ? `; made ${page.generatedAt.toISOString().replace("T", " ").slice(0, 19)} UTC`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(page.title)}</title>
<style>${inline(uPlotStyle, "style")}</style>
<style>${PAGE_STYLE}${page.style ?? ""}</style>
</head>
<body>
<header>
  <h1>${escape(page.heading)} <span class="badge ${page.badge.tone}">${
    escape(page.badge.text)
  }</span></h1>
  <p class="subtitle">${escape(page.subtitle + made)}</p>
</header>
<main>
${page.body}
</main>
<footer>${page.footer} Charts: uPlot ${escape(UPLOT_VERSION)} (MIT), inlined.</footer>
<script type="application/json" id="report-data">${json(page.data)}</script>
<script>${inline(uPlotScript, "script")}</script>
<script>${inline(`${chartHelpers}\n${page.script}`, "script")}</script>
</body>
</html>
`;
}

/** One headline figure: `ok` edges it green or red, `null` leaves it neutral. */
export interface Card {
  readonly label: string;
  readonly value: string;
  readonly detail: string;
  readonly ok: boolean | null;
}

/** The headline figures, one card each, the way load-test reports open. */
export function cards(list: readonly Card[]): string {
  const items = list.map(({ label, value, detail, ok }) =>
    `<div class="card${ok === null ? "" : ok ? " good" : " bad"}"><div class="label">${
      escape(label)
    }</div><div class="value">${escape(value)}</div><div class="detail">${
      escape(detail)
    }</div></div>`
  );
  return `<section class="cards">\n${items.join("\n")}\n</section>`;
}

/** A box the page script draws the chart `name` into, with its heading and a note under it. */
export function chartBox(name: string, heading: string, note: string): string {
  return `<figure class="chart"><figcaption><h3>${escape(heading)}</h3><p>${
    escape(note)
  }</p></figcaption><div class="plot" data-chart="${escape(name)}"></div></figure>`;
}

/** The plots' section: a note, the boxes, and what a reader without JavaScript is told. */
export function chartsSection(note: string, boxes: readonly string[]): string {
  return `<section>
  <h2>Plots</h2>
  <p class="note">${note}</p>
  <div class="charts">
${boxes.join("\n")}
  </div>
  <noscript><p class="note">The plots need JavaScript; the figures below do not.</p></noscript>
</section>`;
}

/** Horizontal bars under a heading, each as long as its count against `most`. */
export function bars(
  heading: string,
  entries: readonly (readonly [label: string, value: number, shown: string])[],
  most: number,
): string {
  const rows = entries.length === 0
    ? `<p class="note">none</p>`
    : entries.map(([label, value, shown]) =>
      `<div class="bar"><span class="reason">${escape(label)}</span><span class="track">` +
      `<span class="fill" style="width:${
        ((value / Math.max(most, Number.MIN_VALUE)) * 100).toFixed(1)
      }%"></span></span><span class="count">${escape(shown)}</span></div>`
    ).join("\n");
  return `<div class="bars"><h3>${escape(heading)}</h3>\n${rows}</div>`;
}

/** Rows of a name and its value, the name as the row's header. */
export function figuresTable(rows: readonly (readonly [name: string, value: string])[]): string {
  const body = rows.map(([name, value]) =>
    `<tr><th scope="row">${escape(name)}</th><td>${escape(value)}</td></tr>`
  );
  return `<table class="figures">\n${body.join("\n")}\n</table>`;
}

/** One line of a {@linkcode verdictTable}: PASS, FAIL, MISS... first, then its cells. */
export interface VerdictRow {
  readonly verdict: string;
  /** Green, red, or neither (a target not run). */
  readonly ok: boolean | null;
  readonly cells: readonly string[];
}

/** Rows that each pass or not, the verdict in the first column; a header when given. */
export function verdictTable(rows: readonly VerdictRow[], header?: readonly string[]): string {
  const head = header
    ? `<tr>${header.map((cell) => `<th scope="col">${escape(cell)}</th>`).join("")}</tr>\n`
    : "";
  const body = rows.map(({ verdict, ok, cells }) =>
    `<tr class="${ok === null ? "none" : ok ? "pass" : "fail"}"><td class="verdict">${
      escape(verdict)
    }</td>${cells.map((cell) => `<td>${escape(cell)}</td>`).join("")}</tr>`
  );
  return `<table class="expectations">\n${head}${body.join("\n")}\n</table>`;
}

/** A table with a header row; `numeric` columns are right-aligned. */
export function gridTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  numeric: readonly number[] = [],
): string {
  const cell = (tag: "th" | "td", text: string, column: number) =>
    `<${tag}${numeric.includes(column) ? ' class="num"' : ""}>${escape(text)}</${tag}>`;
  const head = `<tr>${header.map((text, i) => cell("th", text, i)).join("")}</tr>`;
  const body = rows.map((row) => `<tr>${row.map((text, i) => cell("td", text, i)).join("")}</tr>`);
  return `<table class="grid">\n${head}\n${body.join("\n")}\n</table>`;
}

/** A section with a heading, a line of text under it and its body. */
export function section(heading: string, title: string, body: string): string {
  return `<section>
  <h2>${escape(heading)}</h2>
  <p>${escape(title)}</p>
  ${body}
</section>`;
}

/** Lines shown as samples of what went wrong (monospace, red). */
export function samples(lines: readonly string[]): string {
  return lines.length === 0
    ? ""
    : `<ul class="samples">${lines.map((line) => `<li>${escape(line)}</li>`).join("")}</ul>`;
}

/** Text for HTML, in an element or in a quoted attribute. */
export function escape(text: string): string {
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
  --fail: #b91c1c; --mixed: #b45309; --card: #f8fafc; }
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
.badge.mixed { background: var(--mixed); }
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
table.grid th { font-weight: 500; color: var(--muted); }
table.grid .num { text-align: right; font-variant-numeric: tabular-nums; }
tr.pass td.verdict { color: var(--pass); }
tr.fail td.verdict { color: var(--fail); }
tr.none td.verdict { color: var(--muted); }
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
