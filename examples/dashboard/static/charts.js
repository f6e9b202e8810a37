// The dashboard's charts, drawn with uPlot: devices connected, messages per second each way,
// heartbeat round-trip percentiles, and disconnects and refused handshakes by reason. Fed the
// server's samples; redrawn at most once per animation frame. uPlot is the npm package's browser
// build, served by the app at /static/uplot.js and loaded by the page before this module.
const uPlot = globalThis.uPlot;

const PALETTE = ["#2a7", "#37c", "#d72", "#a3c", "#c33", "#888", "#0aa", "#b90", "#669"];
const HEIGHT = 170;

/** Each chart: the figure it draws in, and its series as [label, value of a sample]. */
function definitions(types, samples) {
  const reasons = (key) =>
    [...new Set(samples.flatMap((sample) => Object.keys(sample[key])))].sort();
  const problems = [
    ...reasons("disconnects").map((reason) => [
      `disconnect: ${reason}`,
      (sample) => sample.disconnects[reason] ?? 0,
    ]),
    ...reasons("refused").map((reason) => [
      `refused: ${reason}`,
      (sample) => sample.refused[reason] ?? 0,
    ]),
  ];
  return {
    devices: [
      ["connected", (sample) => sample.connected],
      ...types.map((type) => [`${type}s`, (sample) => sample.byType[type] ?? 0]),
    ],
    messages: [
      ["from devices /s", (sample) => sample.receivedPerSecond],
      ["to devices /s", (sample) => sample.sentPerSecond],
    ],
    rtt: [
      ["p50 ms", (sample) => sample.rttMs.p50],
      ["p90 ms", (sample) => sample.rttMs.p90],
      ["p99 ms", (sample) => sample.rttMs.p99],
    ],
    problems: problems.length > 0 ? problems : [["none yet", () => 0]],
  };
}

function options(id, series, width) {
  const stepped = id === "problems" ? uPlot.paths.stepped({ align: 1 }) : undefined;
  return {
    width,
    height: HEIGHT,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true },
      y: { range: (_, min, max) => [Math.min(0, min), Math.max(1, max)] },
    },
    axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 48 }],
    series: [
      { label: "time" },
      ...series.map(([label], i) => ({
        label,
        stroke: PALETTE[i % PALETTE.length],
        width: 2,
        paths: stepped,
        points: { show: false },
      })),
    ],
  };
}

/** The four charts, kept in step with the samples the server sends. */
export class Charts {
  #samples;
  #capacity;
  #types;
  #charts = new Map();
  #frame = 0;

  /**
   * @param {HTMLElement} root the element holding the `figure.chart`s
   * @param {string[]} types the device types, in the page's order
   */
  constructor(root, types, samples, capacity) {
    this.root = root;
    this.#capacity = capacity;
    this.#types = types;
    this.#samples = samples.slice(-capacity);
    new ResizeObserver(() => this.#resize()).observe(root);
    this.#draw();
  }

  /** Starts again from a full history (the event stream reconnected). */
  replace(samples) {
    this.#samples = samples.slice(-this.#capacity);
    this.#frame ||= requestAnimationFrame(() => this.#draw());
  }

  /** Adds the sample of one batch; the charts follow on the next frame. */
  push(sample) {
    this.#samples.push(sample);
    if (this.#samples.length > this.#capacity) this.#samples.shift();
    this.#frame ||= requestAnimationFrame(() => this.#draw());
  }

  #draw() {
    this.#frame = 0;
    const time = this.#samples.map((sample) => sample.time);
    for (const [id, series] of Object.entries(definitions(this.#types, this.#samples))) {
      const figure = this.root.querySelector(`#chart-${id}`);
      const plot = figure?.querySelector(".plot");
      if (!plot) continue;
      const data = [time, ...series.map(([, value]) => this.#samples.map(value))];
      const labels = series.map(([label]) => label).join("\n");
      let chart = this.#charts.get(id);
      if (chart?.labels !== labels) {
        // A new reason appeared (or the first draw): uPlot's series are fixed, so start again.
        chart?.plot.destroy();
        plot.replaceChildren();
        chart = { labels, plot: new uPlot(options(id, series, plot.clientWidth), data, plot) };
        this.#charts.set(id, chart);
      } else {
        chart.plot.setData(data);
      }
      figure.dataset.points = String(time.length);
    }
  }

  #resize() {
    for (const [id, chart] of this.#charts) {
      const width = this.root.querySelector(`#chart-${id} .plot`)?.clientWidth ?? 0;
      if (width > 0 && width !== chart.plot.width) chart.plot.setSize({ width, height: HEIGHT });
    }
  }
}
