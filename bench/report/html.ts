/**
 * `bench/results.html`: a run's figures as one self-contained HTML page with
 * plots, written on the page the simulator's report uses
 * (`report_page/page.ts`: uPlot and the run's JSON inlined, so the file opens
 * anywhere without a network). The targets as cards, plots against the number
 * of devices (fan-out and acknowledged fan-out, broadcast latency, memory per
 * idle device, heartbeat CPU, handshakes) drawn by `html_page.js` in the
 * browser, the three transports at 1,000 devices as bars, and every row of
 * the results table. Pure: the figures in, a string out.
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
  gridTable,
  renderPage,
  samples,
  type Tone,
  verdictTable,
} from "../../report_page/page.ts";
import type { BareFigures } from "../systems/bare.ts";
import type { AckedFigures, ManagerFigures } from "../systems/manager.ts";
import pageScript from "./html_page.js" with { type: "text" };
import { count } from "./format.ts";
import { type BenchResults, figures, ok, type ScenarioResult } from "./results.ts";
import { MEASURE_COLUMNS, measureCells, problems, tableRows } from "./scenarios.ts";
import { handshakeTarget, MEMORY_TARGET_BYTES } from "./targets.ts";

/** Options of {@linkcode renderBenchHtml}. */
export interface BenchHtmlOptions {
  /** When the page was made, shown under the title; omitted when not given. */
  readonly generatedAt?: Date;
}

/**
 * A run's figures as one HTML page with everything inlined: what `--json`
 * prints is all it needs, so saved figures render as well as a fresh run's.
 *
 * @example
 * ```ts ignore
 * import { renderBenchHtml } from "./html.ts";
 * import type { BenchResults } from "./results.ts";
 * const results = JSON.parse(await Deno.readTextFile("results.json")) as BenchResults;
 * await Deno.writeTextFile("results.html", renderBenchHtml(results));
 * ```
 */
export function renderBenchHtml(results: BenchResults, options: BenchHtmlOptions = {}): string {
  const judged = results.targets.filter((target) => target.verdict !== "NOT RUN");
  const met = judged.filter((target) => target.verdict === "PASS").length;
  const issues = problems(results.scenarios);
  const errors = issues.filter((line) => line.includes(": error: "));
  const tone: Tone = errors.length > 0 ? "fail" : met === judged.length ? "pass" : "mixed";
  const env = results.environment;
  const largest = Math.max(...results.scenarios.map((result) => result.scenario.devices));
  return renderPage({
    title: `iot-manager benchmark: ${met} of ${judged.length} targets met, up to ` +
      `${count(largest)} devices`,
    heading: "iot-manager benchmark",
    badge: {
      text: errors.length > 0
        ? `${errors.length} error${errors.length === 1 ? "" : "s"}`
        : `${met} / ${judged.length} targets`,
      tone,
    },
    subtitle: `${results.command} on ${env.date} in ${Math.round(results.seconds)} s; ` +
      `Deno ${env.deno}, ${env.cpu}, ${env.cores} cores`,
    generatedAt: options.generatedAt,
    body: [
      targetCards(results),
      plots(results),
      transports(results.scenarios),
      `<section>
  <h2>Targets</h2>
  ${
        verdictTable(
          results.targets.map((target) => ({
            verdict: target.verdict,
            ok: target.verdict === "NOT RUN" ? null : target.verdict === "PASS",
            cells: [target.target, target.where, target.measured],
          })),
          ["result", "target", "where", "measured"],
        )
      }
</section>`,
      allFigures(results.scenarios),
      issues.length > 0
        ? `<section>\n  <h2>Failures and skips</h2>\n  ${samples(issues)}\n</section>`
        : "",
      machine(results),
    ].join("\n"),
    footer: `Written by <code>deno task bench</code>; every figure of the run, as ` +
      `<code>--json</code> prints it, is in this file (<code>#report-data</code>, under ` +
      `<code>results</code>). How each ` +
      `was measured: <code>bench/RESULTS.md</code> and <code>bench/README.md</code>.`,
    data: {
      results,
      lines: {
        memoryPerDevice: MEMORY_TARGET_BYTES,
        handshakesPerSecond: handshakeTarget(false),
      },
    },
    script: pageScript,
    style: BENCH_STYLE,
  });
}

/** Each target of the run as a card: what was measured, where, met or not. */
function targetCards(results: BenchResults): string {
  return cards(results.targets.map((target): Card => ({
    label: target.target,
    value: target.measured,
    detail: target.where,
    ok: target.verdict === "NOT RUN" ? null : target.verdict === "PASS",
  })));
}

/** The plots' boxes: figures against the number of devices, mode 2 over plain TCP. */
function plots(results: BenchResults): string {
  const plain = results.scenarios.filter(({ scenario }) => scenario.mode === 2 && !scenario.tls);
  const fleets = plain.map(({ scenario }) => count(scenario.devices)).join(", ");
  const s = results.settings;
  return chartsSection(
    `Mode 2 over plain TCP at ${fleets} devices, log scales where the systems lie orders of ` +
      `magnitude apart; hover a plot for values.`,
    [
      chartBox(
        "fan-out",
        "Fan-out",
        `deliveries per second: ${s.fanOutMessages} × sendAll of 64 B (Mosquitto: QoS 0 ` +
          `publishes), the median of up to ${s.burstRuns} bursts; with ack: ${s.ackedMessages} ` +
          `calls at once, every device answering each message with its ACK`,
      ),
      chartBox(
        "latency",
        "One sendAll to the last device",
        `p50 of ${s.latencyRounds} single calls (p99 dashed for the manager); with ack: until ` +
          `the report, the last ACK in`,
      ),
      chartBox(
        "memory",
        "Memory per idle device",
        "RSS with the fleet connected and idle, minus RSS before anyone connected, over N; " +
          "the dashed line is the target",
      ),
      chartBox(
        "heartbeats",
        "Heartbeats at 1 s",
        `server CPU as a share of one core over ${s.heartbeatSeconds} s (Mosquitto: PINGREQ ` +
          `each second, ${s.keepAliveSeconds} s)`,
      ),
      chartBox(
        "handshakes",
        "Handshakes per second while connecting",
        `${s.connectConcurrency} at a time; the bare server counts TCP accepts, Mosquitto ` +
          `CONNECT and SUBSCRIBE; the dashed line is the target`,
      ),
    ],
  );
}

/** Mode 2, mode 1 and TLS at 1,000 devices as bars: the manager's fan-out against bare Deno's. */
function transports(results: readonly ScenarioResult[]): string {
  const small = results.filter(({ scenario }) => scenario.devices === 1000);
  if (small.length === 0) return "";
  type Pick = (r: ScenarioResult) => number | null;
  const manager = (get: (m: ManagerFigures) => number): Pick => (r) =>
    ok<ManagerFigures>(r.manager) ? get(r.manager) : null;
  const bare = (get: (b: BareFigures) => number): Pick => (r) =>
    ok<BareFigures>(r.bare) ? get(r.bare) : null;
  const block = (heading: string, entries: [string, Pick][], write: (n: number) => string) => {
    const values = small.flatMap((r) =>
      entries.flatMap(([who, pick]): [string, number][] => {
        const value = pick(r);
        return value === null ? [] : [[`${r.scenario.label.split(",")[0]}: ${who}`, value]];
      })
    );
    return bars(
      heading,
      values.map(([label, value]) => [label, value, write(value)] as const),
      Math.max(...values.map(([, value]) => value)),
    );
  };
  const acked: Pick = (r) =>
    ok<ManagerFigures>(r.manager) && ok<AckedFigures>(r.manager.acked)
      ? figures.fanOut(r.manager.acked)
      : null;
  return `<section>
  <h2>At 1,000 devices, by transport</h2>
  <div class="bars-grid transports">
${
    block("fan-out, deliveries/s", [
      ["iot-manager", manager(figures.fanOut)],
      ["bare Deno", bare(figures.fanOut)],
      ["with ack", acked],
    ], count)
  }
${
    block("memory per idle device (RSS), bytes", [
      ["iot-manager", manager(figures.memory)],
      ["bare Deno", bare(figures.memory)],
    ], count)
  }
${
    block("handshakes/s (bare: accepts)", [
      ["iot-manager", manager((m) => m.handshakesPerSecond)],
      ["bare Deno", bare((b) => b.acceptsPerSecond)],
    ], count)
  }
  </div>
</section>`;
}

/** Every row of the results table, a table per scenario. */
function allFigures(results: readonly ScenarioResult[]): string {
  const rows = tableRows(results);
  const tables = results.map(({ scenario }) => {
    const own = rows.filter((row) => row.scenario === scenario.label);
    return `<h3>${escape(scenario.label)}</h3>\n${
      gridTable(MEASURE_COLUMNS, own.map(measureCells), [1, 2, 3, 4, 5])
    }`;
  });
  return `<section class="all-figures">\n  <h2>All figures</h2>\n${tables.join("\n")}\n</section>`;
}

/** The machine and tools the run used. */
function machine(results: BenchResults): string {
  const env = results.environment;
  return `<section>
  <h2>Machine</h2>
  ${
    figuresTable([
      ["Deno", `${env.deno} (V8 ${env.v8}, TypeScript ${env.typescript})`],
      ["OS", env.os],
      ["CPU", `${env.cpu}, ${env.cores} cores`],
      ["memory", `${env.memoryGiB.toFixed(1)} GiB`],
      ["open-file limit", String(env.openFiles ?? "unknown")],
      ["Mosquitto", env.mosquitto ?? "not installed (rows skipped)"],
    ])
  }
</section>`;
}

/** Styles of the bench's page only. */
const BENCH_STYLE = `
.all-figures h3 { margin: 18px 0 6px; }
.transports .bar { grid-template-columns: 190px 1fr 90px; }
.transports .bar .fill { background: #2563eb; }
`;
