/**
 * The main run's figures, scenario by scenario: the rows of the results table
 * (the manager against the bare Deno server and Mosquitto, each row with its
 * target, judged in `targets.ts`; acknowledged `sendAll` against the manager's
 * own fast path), and the failures and skips.
 *
 * @module
 */

import type { BareFigures } from "../systems/bare.ts";
import type { AckedFigures, ManagerFigures } from "../systems/manager.ts";
import type { MosquittoFigures } from "../systems/mosquitto.ts";
import { bytes, count, markdownTable, ms, percent, ratio, times } from "./format.ts";
import { type Failure, figures, ok, type ScenarioResult, why } from "./results.ts";
import {
  CONSUMER_P50_MS,
  FAN_OUT_VS_BARE,
  FAN_OUT_VS_MOSQUITTO,
  handshakeTarget,
  isHeadline,
  meets,
  MEMORY_TARGET_BYTES,
  verdict,
} from "./targets.ts";

/** One line of the results table. */
export interface Row {
  readonly scenario: string;
  readonly measure: string;
  readonly ours: string;
  readonly bare: string;
  readonly vsBare: string;
  readonly mosquitto: string;
  readonly vsMosquitto: string;
  readonly target: string;
  readonly result: string;
}

/** The rows of the results table, scenario by scenario. */
export function tableRows(results: readonly ScenarioResult[]): Row[] {
  const rows: Row[] = [];
  for (const { scenario, manager, bare, mosquitto } of results) {
    const m = ok<ManagerFigures>(manager) ? manager : null;
    const b = ok<BareFigures>(bare) ? bare : null;
    const q = ok<MosquittoFigures>(mosquitto) ? mosquitto : null;
    const noOurs = why(manager);
    const noBare = why(bare);
    const noMosquitto = why(mosquitto);
    const row = (
      measure: string,
      ours: string,
      cells: Partial<Omit<Row, "scenario" | "measure" | "ours">> = {},
    ): void => {
      rows.push({
        scenario: scenario.label,
        measure,
        ours: m ? ours : noOurs,
        bare: "",
        vsBare: "",
        mosquitto: "",
        vsMosquitto: "",
        target: "",
        result: "",
        ...cells,
      });
    };
    const headline = isHeadline(scenario);
    row("handshakes/s while connecting", count(m?.handshakesPerSecond ?? NaN), {
      bare: b ? `${count(b.acceptsPerSecond)} (TCP accepts)` : noBare,
      mosquitto: q ? `${count(q.handshakesPerSecond)} (CONNECT+SUBSCRIBE)` : noMosquitto,
      vsMosquitto: m && q ? ratio(m.handshakesPerSecond, q.handshakesPerSecond) : "",
      target: `≥ ${count(handshakeTarget(scenario.tls))}/s`,
      result: m ? verdict(meets.handshakes(m, scenario.tls)) : "NOT RUN",
    });
    row("memory per idle device (RSS)", bytes(m ? figures.memory(m) : NaN), {
      bare: b ? bytes(figures.memory(b)) : noBare,
      vsBare: m && b ? ratio(figures.memory(m), figures.memory(b)) : "",
      mosquitto: q ? bytes(figures.memory(q)) : noMosquitto,
      vsMosquitto: m && q ? ratio(figures.memory(m), figures.memory(q)) : "",
      target: `≤ ${bytes(MEMORY_TARGET_BYTES)}`,
      result: m ? verdict(meets.memory(m)) : "NOT RUN",
    });
    const fanOutTargets = headline
      ? `≥ ${times(FAN_OUT_VS_BARE)} bare; ≥ ${times(FAN_OUT_VS_MOSQUITTO)} Mosquitto`
      : "";
    row("fan-out: 200 × sendAll 64 B, deliveries/s", count(m ? figures.fanOut(m) : NaN), {
      bare: b ? count(figures.fanOut(b)) : noBare,
      vsBare: m && b ? ratio(figures.fanOut(m), figures.fanOut(b)) : "",
      mosquitto: q ? count(figures.fanOut(q)) : noMosquitto,
      vsMosquitto: m && q ? ratio(figures.fanOut(m), figures.fanOut(q)) : "",
      target: fanOutTargets,
      result: headline
        ? `${verdict(m && b ? meets.fanOutVsBare(m, b) : null)}; ${
          verdict(m && q ? meets.fanOutVsMosquitto(m, q) : null)
        }`
        : "",
    });
    for (const [label, get] of [["p50", figures.p50], ["p99", figures.p99]] as const) {
      const target = headline && label === "p99";
      row(`one sendAll to the last device, ${label}`, ms(m ? get(m) : NaN), {
        bare: b ? ms(get(b)) : noBare,
        vsBare: m && b ? ratio(get(m), get(b)) : "",
        mosquitto: q ? ms(get(q)) : noMosquitto,
        vsMosquitto: m && q ? ratio(get(m), get(q)) : "",
        target: target ? "≤ Mosquitto's" : "",
        result: target ? verdict(m && q ? meets.p99VsMosquitto(m, q) : null) : "",
      });
    }
    if (scenario.mode === 2) {
      const a = m && ok<AckedFigures>(m.acked) ? m.acked : null;
      const noAcked = m ? why(m.acked) : noOurs;
      // The manager's figures are an AckedFigures too: its fast path, measured alike.
      const vsFastPath = (get: (f: AckedFigures) => number, write: (value: number) => string) =>
        a && m ? `${write(get(a))} (${ratio(get(a), get(m))} fast path)` : noAcked;
      const calls = a ? `${count(a.fanOut.deliveries / scenario.devices)} × ` : "";
      row(
        `fan-out with ack: ${calls}sendAll 64 B at once, acknowledged deliveries/s`,
        vsFastPath(figures.fanOut, count),
      );
      for (const [label, get] of [["p50", figures.p50], ["p99", figures.p99]] as const) {
        row(`one sendAll with ack until its report (last ACK in), ${label}`, vsFastPath(get, ms));
      }
    }
    row("sendType to half the fleet, deliveries/s", count(m?.sendType.perSecond ?? NaN));
    row("send to one device at a time, messages/s", count(m?.sendEach.perSecond ?? NaN));
    row(
      scenario.mode === 1
        ? "device messages to a for-await consumer, 64 B units/s (mode 1 has no boundaries)"
        : "device messages to a for-await consumer, messages/s",
      count(m?.inboundPerSecond ?? NaN),
    );
    row("one device message to the consumer, p50", ms(m?.consumerLatency.p50 ?? NaN), {
      target: `< ${CONSUMER_P50_MS} ms`,
      result: m ? verdict(meets.consumerLatency(m)) : "NOT RUN",
    });
    row("one device message to the consumer, p99", ms(m?.consumerLatency.p99 ?? NaN));
    const soakSeconds = Math.round(m?.heartbeat.seconds ?? q?.keepAlive.seconds ?? NaN);
    row(
      `heartbeats at 1 s for ${soakSeconds} s: false disconnects`,
      count(m?.heartbeat.falseDisconnects ?? NaN),
      {
        mosquitto: q ? `${count(q.keepAlive.falseDisconnects)} (PINGREQ at 1 s)` : noMosquitto,
        target: "0",
        result: m ? verdict(meets.noFalseDisconnects(m)) : "NOT RUN",
      },
    );
    row(
      "heartbeats at 1 s: server CPU (share of one core)",
      percent(m?.heartbeat.cpuShare ?? NaN),
      {
        mosquitto: q ? percent(q.keepAlive.cpuShare) : noMosquitto,
        vsMosquitto: m && q ? ratio(m.heartbeat.cpuShare, q.keepAlive.cpuShare) : "",
      },
    );
  }
  return rows;
}

/** The results table's columns after the scenario's; {@linkcode measureCells} fills them. */
export const MEASURE_COLUMNS: readonly string[] = [
  "measure",
  "iot-manager",
  "bare Deno TCP",
  "vs bare",
  "Mosquitto",
  "vs Mosquitto",
  "target",
  "result",
];

/** A row's cells under {@linkcode MEASURE_COLUMNS}. */
export function measureCells(row: Row): string[] {
  return [
    row.measure,
    row.ours,
    row.bare,
    row.vsBare,
    row.mosquitto,
    row.vsMosquitto,
    row.target,
    row.result,
  ];
}

/** The results table in Markdown. */
export function resultsTable(results: readonly ScenarioResult[]): string {
  return markdownTable(
    ["scenario", ...MEASURE_COLUMNS],
    tableRows(results).map((row) => [row.scenario, ...measureCells(row)]),
  );
}

/** Failures and skips, one line each. */
export function problems(results: readonly ScenarioResult[]): string[] {
  const lines: string[] = [];
  for (const result of results) {
    for (const system of ["manager", "bare", "mosquitto"] as const) {
      const value = result[system] as Failure | undefined;
      if (value?.error) lines.push(`${result.scenario.label}, ${system}: error: ${value.error}`);
      if (value?.skipped) {
        lines.push(`${result.scenario.label}, ${system}: skipped: ${value.skipped}`);
      }
    }
    const acked = ok<ManagerFigures>(result.manager) ? result.manager.acked as Failure : undefined;
    if (acked?.error) {
      lines.push(`${result.scenario.label}, manager (acknowledged sendAll): error: ${acked.error}`);
    }
  }
  return lines;
}
