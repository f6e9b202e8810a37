// The chart helpers every HTML report's page script uses, run by the browser: page.ts inlines
// this file after uPlot and before the report's own script, in the same script element. They
// are `ReportCharts`: the palette, number formats, a chart drawn into its `[data-chart]` box and
// resized with the window, a line series, log-scale ticks, and the mark that the page is drawn.
"use strict";

// deno-lint-ignore no-unused-vars
const ReportCharts = (() => {
  const colors = {
    blue: "#2563eb",
    green: "#16a34a",
    orange: "#ea580c",
    purple: "#7c3aed",
    red: "#dc2626",
    gray: "#64748b",
  };
  const alpha = (hex, a) =>
    `rgba(${parseInt(hex.slice(1, 3), 16)},${parseInt(hex.slice(3, 5), 16)},${
      parseInt(hex.slice(5, 7), 16)
    },${a})`;
  const round = (value, digits) =>
    value == null ? "–" : Number(value.toFixed(digits)).toLocaleString("en");
  const formatMs = (value) =>
    value >= 1000
      ? `${round(value / 1000, 2)} s`
      : `${value < 1 ? round(value, 3) : value < 10 ? round(value, 2) : round(value, 0)} ms`;

  const resizers = [];
  /** Draws a chart into `[data-chart=name]`, sized to its box, redrawn when the window resizes. */
  const chart = (name, options, data) => {
    const box = document.querySelector(`[data-chart="${name}"]`);
    if (!box) return;
    const size = () => ({ width: Math.max(280, box.clientWidth), height: 240 });
    const plot = new uPlot({ ...size(), ...options }, data, box);
    resizers.push(() => plot.setSize(size()));
  };
  let resizing;
  addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => resizers.forEach((resize) => resize()), 100);
  });

  /** A line series: 2 px, no points, values rounded to whole numbers unless `extra` says. */
  const line = (label, color, extra = {}) => ({
    label,
    stroke: color,
    width: 2,
    points: { show: false },
    value: (_u, v) => round(v, 0),
    ...extra,
  });

  /**
   * Log-scale ticks, as exponents: 1 to 9 of each decade, thinned so that no two are closer than
   * a twelfth of the axis (1, 2 and 5 of a decade survive where there is room for them).
   */
  const decadeSplits = (_u, _axis, min, max) => {
    const gap = (max - min) / 12;
    const splits = [];
    for (let exponent = Math.floor(min); exponent <= Math.ceil(max); exponent++) {
      for (const step of [1, 2, 5, 3, 4, 6, 7, 8, 9]) {
        const at = exponent + Math.log10(step);
        if (at < min || at > max) continue;
        if (splits.every((other) => Math.abs(other - at) >= gap)) splits.push(at);
      }
    }
    return splits.sort((a, b) => a - b);
  };

  /** Marks the page as drawn, with how many charts: what the browser tests wait for. */
  const done = () => {
    document.documentElement.dataset.charts = String(resizers.length);
  };

  return { colors, alpha, round, formatMs, chart, line, decadeSplits, done };
})();
