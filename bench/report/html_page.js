// The bench report's charts, run by the browser: html.ts inlines this file after uPlot, the run's
// JSON (`#report-data`: `results` as `--json` prints them, `lines` the targets drawn as dashed
// lines) and the shared helpers (`ReportCharts`, from report_page/charts.js). It draws one uPlot
// chart into each `[data-chart]` box: figures against the number of devices, mode 2 over plain
// TCP; the tables and bars are in the HTML already.
"use strict";

(function drawBench() {
  const { results, lines } = JSON.parse(document.getElementById("report-data").textContent);
  const { colors, alpha, round, formatMs, chart, line } = ReportCharts;
  const has = (figures) => figures != null && !("error" in figures) && !("skipped" in figures);
  const plain = results.scenarios
    .filter(({ scenario }) => scenario.mode === 2 && !scenario.tls)
    .sort((a, b) => a.scenario.devices - b.scenario.devices);
  if (plain.length === 0) return ReportCharts.done();
  const fleets = plain.map(({ scenario }) => scenario.devices);
  /** One value per fleet from `system`'s figures, null where it has none. */
  const of = (system, get) =>
    plain.map((result) => has(result[system]) ? get(result[system]) : null);
  const acked = (get) =>
    plain.map(({ manager }) => has(manager) && has(manager.acked) ? get(manager.acked) : null);

  /** Big numbers short, for log axes: 20k, 5M. */
  const short = (value) =>
    value >= 1e6
      ? `${round(value / 1e6, value >= 1e7 ? 0 : 1)}M`
      : value >= 1e3
      ? `${round(value / 1e3, value >= 1e4 ? 0 : 1)}k`
      : round(value, value < 10 ? 1 : 0);
  const marked = (label, color, extra = {}) =>
    line(label, color, { points: { show: true, size: 7, fill: color }, spanGaps: true, ...extra });
  const dashed = { dash: [6, 4] };
  const targetLine = (label) => line(label, colors.gray, { width: 1, dash: [3, 3] });

  /**
   * A chart of figures against the fleet size: `format` writes the axis's ticks, `exact` the
   * legend's values (the same unless given); `log` for a log-scale y axis.
   */
  const byFleet = (name, series, columns, { unit, format, exact = format, log = false, incrs }) => {
    const last = fleets.at(-1);
    chart(name, {
      scales: {
        x: { time: false, range: () => [0, last * 1.06] },
        y: log ? { distr: 3, log: 10 } : { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.1] },
      },
      series: [
        { label: "devices", value: (_u, v) => v == null ? "–" : round(v, 0) },
        ...series.map((s) => ({ ...s, value: (_u, v) => v == null ? "–" : exact(v) })),
      ],
      axes: [
        { label: "devices", splits: () => fleets, values: (_u, ticks) => ticks.map(short) },
        {
          label: unit,
          size: 64,
          // On a log axis uPlot leaves the ticks it has no room to label as null.
          values: (_u, ticks) => ticks.map((v) => v == null ? "" : format(v)),
          ...(incrs ? { incrs } : {}),
        },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, [fleets, ...columns]);
  };

  const perSecond = (v) => `${short(v)}/s`;
  const exactPerSecond = (v) => `${round(v, 0)}/s`;
  byFleet("fan-out", [
    marked("iot-manager", colors.blue),
    marked("bare Deno TCP", colors.gray),
    marked("Mosquitto", colors.red),
    marked("iot-manager with ack", colors.purple, dashed),
  ], [
    of("manager", (f) => f.fanOut.perSecond),
    of("bare", (f) => f.fanOut.perSecond),
    of("mosquitto", (f) => f.fanOut.perSecond),
    acked((f) => f.fanOut.perSecond),
  ], { unit: "deliveries / s", format: perSecond, exact: exactPerSecond, log: true });

  byFleet("latency", [
    marked("iot-manager p50", colors.blue),
    marked("iot-manager p99", colors.blue, { ...dashed, width: 1 }),
    marked("bare Deno TCP p50", colors.gray),
    marked("Mosquitto p50", colors.red),
    marked("with ack p50 (report)", colors.purple, dashed),
  ], [
    of("manager", (f) => f.latency.p50),
    of("manager", (f) => f.latency.p99),
    of("bare", (f) => f.latency.p50),
    of("mosquitto", (f) => f.latency.p50),
    acked((f) => f.latency.p50),
  ], { unit: "milliseconds", format: formatMs, log: true });

  const kilobytes = (v) => `${round(v / 1024, v < 10240 ? 1 : 0)} KB`;
  byFleet("memory", [
    marked("iot-manager", colors.blue),
    marked("bare Deno TCP", colors.gray),
    marked("Mosquitto", colors.red),
    targetLine("target"),
  ], [
    of("manager", (f) => f.memory.rssPerDevice),
    of("bare", (f) => f.memory.rssPerDevice),
    of("mosquitto", (f) => f.memory.rssPerDevice),
    fleets.map(() => lines.memoryPerDevice),
  ], {
    unit: "RSS per device",
    format: kilobytes,
    exact: (v) => `${round(v, 0)} B`,
    incrs: [256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536],
  });

  const share = (v) => `${round(v, 1)} %`;
  byFleet("heartbeats", [
    marked("iot-manager", colors.blue, { fill: alpha(colors.blue, 0.08) }),
    marked("Mosquitto", colors.red),
  ], [
    of("manager", (f) => f.heartbeat.cpuShare * 100),
    of("mosquitto", (f) => f.keepAlive.cpuShare * 100),
  ], { unit: "CPU, % of one core", format: share });

  byFleet("handshakes", [
    marked("iot-manager", colors.blue),
    marked("bare Deno TCP (accepts)", colors.gray),
    marked("Mosquitto", colors.red),
    targetLine("target"),
  ], [
    of("manager", (f) => f.handshakesPerSecond),
    of("bare", (f) => f.acceptsPerSecond),
    of("mosquitto", (f) => f.handshakesPerSecond),
    fleets.map(() => lines.handshakesPerSecond),
  ], { unit: "handshakes / s", format: perSecond, exact: exactPerSecond });

  ReportCharts.done();
})();
