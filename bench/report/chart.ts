/**
 * `bench/results.svg`, drawn by hand: two panels against the number of
 * devices (plain mode 2), the fan-out in deliveries per second and the
 * latency of one `sendAll` to the last device, for the manager, the bare Deno
 * server and Mosquitto.
 *
 * @module
 */

import { type Failure, figures, ok, type ScenarioResult } from "./results.ts";

/** One line of the chart. */
interface Series {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  readonly points: readonly (readonly [number, number])[];
}

/** The top of an axis: the least of 1, 2, 2.5, 5 or 10 times a power of ten at or above `value`. */
function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** Text made safe inside an SVG element. */
function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** One panel: axes with six ticks, a line per series, its legend; `x0` is its left edge. */
function panel(
  x0: number,
  title: string,
  unit: string,
  series: readonly Series[],
  ns: readonly number[],
): string {
  const width = 420;
  const height = 260;
  const left = x0 + 70;
  const right = x0 + width - 15;
  const top = 50;
  const bottom = top + height - 70;
  const maxN = Math.max(...ns);
  const maxY = niceMax(Math.max(...series.flatMap((s) => s.points.map(([, y]) => y))));
  const px = (n: number) => left + (n / maxN) * (right - left);
  const py = (y: number) => bottom - (y / maxY) * (bottom - top);
  const parts: string[] = [
    `<text x="${x0 + width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${
      escapeXml(title)
    }</text>`,
    `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#333"/>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const value = (maxY / 5) * i;
    const y = py(value);
    const label = value >= 1e6
      ? `${(value / 1e6).toFixed(value % 1e6 === 0 ? 0 : 1)}M`
      : value >= 1e3
      ? `${(value / 1e3).toFixed(0)}k`
      : `${Number(value.toFixed(1))}`;
    parts.push(
      `<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${label}</text>`,
    );
  }
  for (const n of ns) {
    parts.push(
      `<text x="${px(n)}" y="${bottom + 16}" text-anchor="middle" font-size="11">${
        n.toLocaleString("en-US")
      }</text>`,
    );
  }
  parts.push(
    `<text x="${(left + right) / 2}" y="${
      bottom + 34
    }" text-anchor="middle" font-size="12">devices</text>`,
    `<text x="${x0 + 16}" y="${
      (top + bottom) / 2
    }" text-anchor="middle" font-size="12" transform="rotate(-90 ${x0 + 16} ${
      (top + bottom) / 2
    })">${escapeXml(unit)}</text>`,
  );
  series.forEach((s, index) => {
    if (s.points.length === 0) return;
    const path = s.points.map(([n, y], i) => `${i === 0 ? "M" : "L"}${px(n)},${py(y)}`).join(" ");
    parts.push(
      `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${
        s.dashed ? ' stroke-dasharray="5 4"' : ""
      }/>`,
      ...s.points.map(([n, y]) => `<circle cx="${px(n)}" cy="${py(y)}" r="3" fill="${s.color}"/>`),
    );
    const ly = bottom + 52 + Math.floor(index / 2) * 16;
    const lx = left + (index % 2) * 170;
    parts.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 22}" y2="${
        ly - 4
      }" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ""}/>`,
      `<text x="${lx + 28}" y="${ly}" font-size="11">${escapeXml(s.name)}</text>`,
    );
  });
  return parts.join("\n  ");
}

/** One color per system, the same in both panels. */
const COLORS = { manager: "#1565c0", bare: "#757575", mosquitto: "#c62828" };

/** `bench/results.svg`: deliveries/s and broadcast latency against N (plain mode 2). */
export function resultsChart(results: readonly ScenarioResult[]): string {
  const plain = results
    .filter((r) => r.scenario.mode === 2 && !r.scenario.tls)
    .sort((a, b) => a.scenario.devices - b.scenario.devices);
  const ns = plain.map((r) => r.scenario.devices);
  const collect = <T extends object>(
    pick: (r: ScenarioResult) => T | Failure | undefined,
    value: (f: T) => number,
  ): [number, number][] =>
    plain.flatMap((r) => {
      const f = pick(r);
      return ok<T>(f) ? [[r.scenario.devices, value(f)] as [number, number]] : [];
    });
  const throughput: Series[] = [
    {
      name: "iot-manager",
      color: COLORS.manager,
      points: collect((r) => r.manager, figures.fanOut),
    },
    { name: "bare Deno TCP", color: COLORS.bare, points: collect((r) => r.bare, figures.fanOut) },
    {
      name: "Mosquitto",
      color: COLORS.mosquitto,
      points: collect((r) => r.mosquitto, figures.fanOut),
    },
  ];
  const latency: Series[] = [
    {
      name: "iot-manager p99",
      color: COLORS.manager,
      points: collect((r) => r.manager, figures.p99),
    },
    {
      name: "iot-manager p50",
      color: COLORS.manager,
      dashed: true,
      points: collect((r) => r.manager, figures.p50),
    },
    { name: "bare Deno TCP p99", color: COLORS.bare, points: collect((r) => r.bare, figures.p99) },
    {
      name: "Mosquitto p99",
      color: COLORS.mosquitto,
      points: collect((r) => r.mosquitto, figures.p99),
    },
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="860" height="330" viewBox="0 0 860 330" font-family="sans-serif">
  <rect width="860" height="330" fill="#fff"/>
  ${panel(0, "Fan-out: 200 × sendAll of 64 B", "deliveries per second", throughput, ns)}
  ${panel(430, "One sendAll to the last device", "milliseconds", latency, ns)}
</svg>
`;
}
