/**
 * What every HTML report (`report_page/page.ts`: the simulator's `--html`,
 * the bench's `results.html`) must be, checked alike: one file with nothing
 * to fetch, uPlot inlined whole, the report's figures as JSON inside.
 */

import assert from "node:assert/strict";
import uPlotStyle from "uplot/dist/uPlot.min.css" with { type: "text" };
import uPlotScript from "uplot/dist/uPlot.iife.min.js" with { type: "text" };

/** Nothing to fetch: no script, stylesheet or image comes from elsewhere, uPlot is inlined whole. */
export function assertSelfContained(html: string): void {
  assert.ok(html.startsWith("<!doctype html>"));
  assert.doesNotMatch(html, /<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=/i);
  assert.doesNotMatch(html, /\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
  assert.doesNotMatch(html, /@import|url\(\s*["']?https?:/i);
  assert.ok(html.includes(`<script>${uPlotScript}</script>`), "uPlot's script is inlined");
  assert.ok(html.includes(`<style>${uPlotStyle}</style>`), "uPlot's stylesheet is inlined");
  assert.equal(html.split("<script>").length, 3, "only uPlot's and the page's own scripts");
}

/** The JSON the page carries in `#report-data`. */
export function embeddedData<T>(html: string): T {
  const match = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html);
  assert.ok(match, "the page carries the report's JSON");
  return JSON.parse(match[1]);
}

/** The names of the chart boxes the page script draws into, in order. */
export function chartBoxes(html: string): string[] {
  return [...html.matchAll(/class="plot" data-chart="([\w-]+)"/g)].map((match) => match[1]);
}
