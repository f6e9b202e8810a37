// The HTML report's charts, run by the browser: html_report.ts inlines this file after uPlot,
// the report's JSON (`#report-data`) and the shared helpers (`ReportCharts`, from
// report_page/charts.js). It reads the report and draws one uPlot chart into each `[data-chart]`
// element the page has; the figures and tables are in the HTML already.
"use strict";

(function drawReport() {
  const report = JSON.parse(document.getElementById("report-data").textContent);
  const plots = report.plots;
  if (!plots) return;
  const { samples, phases } = plots.timeline;
  const MIB = 1048576;
  const { colors, alpha, round, formatMs, chart, line, decadeSplits } = ReportCharts;

  const elapsed = samples.map((sample) => sample.elapsed);
  const column = (key) => samples.map((sample) => sample[key]);
  /**
   * A running total as a rate per second over the second before each sample (over the time
   * between two samples once they are further apart), so that a burst within one tick reads as
   * what it was in that second.
   */
  const perSecond = (key) => {
    const window = Math.max(1, plots.timeline.every);
    let from = 0;
    return samples.map((sample, i) => {
      if (i === 0) return null;
      while (from < i - 1 && sample.elapsed - samples[from + 1].elapsed >= window) from++;
      const seconds = sample.elapsed - samples[from].elapsed;
      return seconds > 0 ? (sample[key] - samples[from][key]) / seconds : null;
    });
  };
  const phaseAt = (seconds) => {
    let name = "";
    for (const phase of phases) if (phase.at <= seconds) name = phase.name;
    return name;
  };
  /** Shades every other phase of the run and names each one where it fits. */
  const phasesPlugin = {
    hooks: {
      drawClear: [(u) => {
        const { ctx } = u;
        const { left, top, width, height } = u.bbox;
        const end = u.scales.x.max;
        ctx.save();
        ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
        ctx.textBaseline = "top";
        phases.forEach((phase, i) => {
          const from = Math.max(left, u.valToPos(phase.at, "x", true));
          const to = Math.min(left + width, u.valToPos(phases[i + 1]?.at ?? end, "x", true));
          if (to <= from) return;
          if (i % 2 === 1) {
            ctx.fillStyle = "rgba(100,116,139,0.07)";
            ctx.fillRect(from, top, to - from, height);
          }
          const label = phase.name;
          if (ctx.measureText(label).width + 6 * devicePixelRatio < to - from) {
            ctx.fillStyle = "rgba(71,85,105,0.85)";
            ctx.fillText(label, from + 3 * devicePixelRatio, top + 3 * devicePixelRatio);
          }
        });
        ctx.restore();
      }],
    },
  };

  /** Options shared by the charts over time. */
  const overTime = (series, axes, extra = {}) => ({
    plugins: [phasesPlugin],
    scales: { x: { time: false }, ...extra.scales },
    series: [
      { label: "time", value: (_u, v) => v == null ? "–" : `${round(v, 2)} s (${phaseAt(v)})` },
      ...series,
    ],
    axes: [{ label: "seconds since the start" }, ...axes],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  });
  if (samples.length > 1) {
    const disconnects = perSecond("disconnects");
    const anyDisconnect = samples.at(-1).disconnects > 0;
    chart(
      "connected",
      overTime(
        [
          line("connected", colors.blue, { fill: alpha(colors.blue, 0.1) }),
          line("expected", colors.gray, { dash: [6, 4], width: 1 }),
          ...(anyDisconnect
            ? [line("disconnects / s", colors.red, {
              scale: "rate",
              width: 1,
              fill: alpha(colors.red, 0.2),
              value: (_u, v) => round(v, 1),
            })]
            : []),
        ],
        [
          { label: "devices" },
          ...(anyDisconnect
            ? [{ scale: "rate", side: 1, label: "disconnects / s", grid: { show: false } }]
            : []),
        ],
        {
          scales: {
            y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.05] },
            rate: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.1] },
          },
        },
      ),
      [
        elapsed,
        column("connected"),
        samples.map(() => report.devices.expected),
        ...(anyDisconnect ? [disconnects] : []),
      ],
    );

    chart(
      "messages",
      overTime(
        [
          line("to devices / s", colors.blue),
          line("to the manager / s", colors.orange, { dash: [8, 4] }),
        ],
        [{ label: "command lines / s" }],
      ),
      [elapsed, perSecond("toDevices"), perSecond("toManager")],
    );

    chart(
      "heartbeats",
      overTime(
        [
          line("beats answered / s", colors.green, { fill: alpha(colors.green, 0.1) }),
          line("rounds (total)", colors.purple, {
            scale: "rounds",
            paths: uPlot.paths.stepped({ align: 1 }),
          }),
        ],
        [
          { label: "beats / s" },
          { scale: "rounds", side: 1, label: "rounds", grid: { show: false } },
        ],
      ),
      [elapsed, perSecond("heartbeatsAnswered"), column("heartbeatRounds")],
    );

    // With --memory-every, the heap after each forced GC, on the same time axis.
    const gcSamples = report.memory?.forcedGc ? report.memory.samples : [];
    const memoryTable = [
      elapsed,
      ...["rss", "heapUsed", "external"].map((key) => samples.map((s) => s[key] / MIB)),
    ];
    const memoryData = gcSamples.length > 0
      ? uPlot.join([
        memoryTable,
        [gcSamples.map((s) => s.elapsed), gcSamples.map((s) => s.heapUsed / MIB)],
      ])
      : memoryTable;
    const mibValue = (_u, v) => v == null ? "–" : `${round(v, 1)} MiB`;
    chart(
      "memory",
      overTime(
        [
          line("rss", colors.blue, { value: mibValue }),
          line("heapUsed", colors.orange, { value: mibValue }),
          line("external", colors.gray, { value: mibValue }),
          ...(gcSamples.length > 0
            ? [line("heapUsed after GC", colors.red, {
              value: mibValue,
              spanGaps: true,
              points: { show: true, size: 6 },
            })]
            : []),
        ],
        [{ label: "MiB" }],
        { scales: { y: { range: (_u, _min, max) => [0, max * 1.05] } } },
      ),
      memoryData,
    );
  }

  const BUCKET_WIDTH = 0.1; // ten buckets per decade, as stats.ts counts them

  /**
   * A latency histogram: each distribution's share of its samples per bucket, on a log axis.
   * The x values are log10 of the bucket's middle, so the bars are evenly spaced.
   */
  const histogram = (name, entries) => {
    const present = entries.filter(([, distribution]) =>
      distribution && distribution.upTo.length > 0
    );
    if (present.length === 0) return;
    const exponents = new Set();
    for (const [, distribution] of present) {
      for (const edge of distribution.upTo) exponents.add(Math.round(Math.log10(edge) * 10) / 10);
    }
    const xs = [...exponents].sort((a, b) => a - b);
    const first = xs[0];
    const last = xs.at(-1);
    const axis = [];
    for (let x = first; x <= last + 1e-9; x = Math.round((x + BUCKET_WIDTH) * 10) / 10) {
      axis.push(x - BUCKET_WIDTH / 2);
    }
    const data = [axis];
    const series = [{
      label: "latency",
      value: (_u, v) =>
        v == null
          ? "–"
          : `${formatMs(10 ** (v - BUCKET_WIDTH / 2))} – ${formatMs(10 ** (v + BUCKET_WIDTH / 2))}`,
    }];
    const palette = [colors.blue, colors.orange, colors.green, colors.purple];
    present.forEach(([label, distribution], i) => {
      const total = distribution.counts.reduce((sum, n) => sum + n, 0);
      const shares = axis.map(() => 0);
      distribution.upTo.forEach((edge, j) => {
        const index = Math.round((Math.round(Math.log10(edge) * 10) / 10 - first) * 10);
        shares[index] += (distribution.counts[j] / total) * 100;
      });
      data.push(shares.map((share) => share > 0 ? share : null)); // no bar for an empty bucket
      series.push({
        label: `${label} (${total.toLocaleString("en")})`,
        stroke: palette[i % palette.length],
        fill: alpha(palette[i % palette.length], present.length > 1 ? 0.45 : 0.6),
        paths: uPlot.paths.bars({ size: [present.length > 1 ? 0.95 : 0.85, 40], align: 0 }),
        points: { show: false },
        value: (_u, v) => v == null ? "–" : `${round(v, 1)} %`,
      });
    });
    chart(name, {
      scales: {
        x: {
          time: false,
          range: () => [axis[0] - BUCKET_WIDTH, axis.at(-1) + BUCKET_WIDTH],
        },
        y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.1] },
      },
      series,
      axes: [
        {
          label: "latency (log scale)",
          splits: decadeSplits,
          values: (_u, splits) => splits.map((v) => formatMs(10 ** v)),
        },
        { label: "% of samples", values: (_u, splits) => splits.map((v) => `${v} %`) },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, data);
  };
  const { latency } = plots;
  histogram("handshake", [["handshakes", latency.handshake]]);
  histogram("broadcasts", [
    ["scripted broadcasts", latency.broadcasts],
    ["steady broadcasts", latency.steadyBroadcasts],
  ]);
  histogram("requests", [
    ["scripted requests", latency.requests],
    ["steady requests", latency.steadyRequests],
  ]);

  // With --restart: handshakes per 100 ms window after the manager was lost.
  const restart = report.restart;
  if (restart && restart.perWindow.length > 0) {
    const windows = restart.perWindow.map((_, i) => i / 10 + 0.05);
    chart("restart", {
      scales: {
        x: { time: false, range: () => [0, windows.length / 10] },
        y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.1] },
      },
      series: [
        { label: "after the loss", value: (_u, v) => v == null ? "–" : `${round(v - 0.05, 1)} s` },
        {
          label: "handshakes / 100 ms",
          stroke: colors.blue,
          fill: alpha(colors.blue, 0.6),
          paths: uPlot.paths.bars({ size: [0.9, 20] }),
          points: { show: false },
        },
        line("5 % of the fleet", colors.red, { dash: [6, 4], width: 1 }),
      ],
      axes: [{ label: "seconds after the manager was lost" }, { label: "handshakes" }],
      legend: { live: true },
    }, [
      windows,
      restart.perWindow.map((n) => n > 0 ? n : null),
      windows.map(() => restart.expected * 0.05),
    ]);
  }

  ReportCharts.done();
})();
