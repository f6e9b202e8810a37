/**
 * The `--segmentation` figures read for the report: the server CPU per
 * handshake in each case, the bare reader's cost at the manager's reads, the
 * manager's excess over it (its parser's own share), the two tables of
 * figures and ratios, and the run's errors. The ≤ 2× target is judged in
 * `targets.ts`.
 *
 * @module
 */

import type {
  CaseFigures,
  SegmentationFigures,
  SegmentationSettings,
  ServerFigures,
} from "../segmentation.ts";
import { count, markdownTable, ms, ratio, signedMs, signedRatio } from "./format.ts";
import { type Failure, ok } from "./results.ts";

/** Server CPU per handshake in one case, in ms: the median where there is one, else the mean. */
export function perHandshake(figures: CaseFigures): number {
  return figures.spread?.medianMs ?? figures.cpuMs / figures.devices;
}

/** The servers of a segmentation run in column order: bare reader, manager now, manager before. */
function segmentationServers(f: SegmentationFigures): ServerFigures[] {
  return [f.bare, f.manager, ...(f.baseline ? [f.baseline] : [])];
}

/** A server's column heading: the bare reader, or the manager and its commit. */
function serverTitle(f: SegmentationFigures, server: ServerFigures): string {
  if (server === f.bare) return "bare Deno reader";
  if (server === f.manager) {
    return `manager, ${f.tree.commit.slice(0, 7)}${f.tree.uncommitted ? " + uncommitted" : ""}`;
  }
  return `manager, ${f.baseline?.commit.slice(0, 7)} (before)`;
}

/** The three cases: one write, segments as fast as they go, paced segments. */
export type CaseKey = "oneWrite" | "segmented" | "paced";

/**
 * What the bare reader would spend on a handshake of `key`'s cut in `reads`
 * reads: its CPU for one write and for that cut, joined by a straight line in
 * the number of reads (the kernel cuts the same segments into fewer, larger
 * reads for a slower reader, and the runtime's cost is per read).
 */
function bareAt(bare: ServerFigures, key: CaseKey, reads: number): number {
  const one = bare.oneWrite;
  const cut = bare[key];
  const span = cut.readsPerHandshake - one.readsPerHandshake;
  if (key === "oneWrite" || span <= 0) return perHandshake(cut);
  const perRead = (perHandshake(cut) - perHandshake(one)) / span;
  return perHandshake(one) + perRead * (reads - one.readsPerHandshake);
}

/** The manager's CPU per handshake above the bare reader's at the manager's reads, for one case. */
export function excess(manager: ServerFigures, bare: ServerFigures, key: CaseKey): number {
  return perHandshake(manager[key]) - bareAt(bare, key, manager[key].readsPerHandshake);
}

/** The two tables of `--segmentation`: CPU per handshake, then ratios and the manager's excess. */
export function segmentationTables(f: SegmentationFigures, s: SegmentationSettings): string {
  const servers = segmentationServers(f);
  const managers = servers.filter((server) => server !== f.bare);
  const cases: readonly [CaseKey, string][] = [
    ["oneWrite", "one write"],
    ["segmented", `${s.segmentSize}-byte segments, each write awaited`],
    ["paced", `${s.segmentSize}-byte segments, ${s.pacedGapMicroseconds} µs apart`],
  ];
  const figures = markdownTable(
    [
      `server CPU per handshake (reads per handshake)`,
      ...servers.map((server) => serverTitle(f, server)),
    ],
    cases.map(([key, label]) => [
      `${label} (${count(f.bare[key].devices)} devices${f.bare[key].spread ? ", median" : ""})`,
      ...servers.map((server) =>
        `${ms(perHandshake(server[key]))} (${count(server[key].readsPerHandshake)})`
      ),
    ]),
  );
  const segmented = cases.slice(1);
  const ratios = markdownTable(
    ["", ...servers.map((server) => serverTitle(f, server))],
    [
      ...segmented.map(([key, label]) => [
        `${label} ÷ one write`,
        ...servers.map((server) => ratio(perHandshake(server[key]), perHandshake(server.oneWrite))),
      ]),
      ...cases.map(([key, label]) => [
        `manager ÷ bare reader, ${label}`,
        "",
        ...managers.map((manager) => ratio(perHandshake(manager[key]), perHandshake(f.bare[key]))),
      ]),
      ...cases.map(([key, label]) => [
        `manager − bare reader at the manager's reads, ${label}`,
        "",
        ...managers.map((manager) => signedMs(excess(manager, f.bare, key))),
      ]),
      ...segmented.map(([key, label]) => [
        `parser's own share: (manager − bare), ${label} ÷ one write`,
        "",
        ...managers.map((manager) =>
          signedRatio(excess(manager, f.bare, key), excess(manager, f.bare, "oneWrite"))
        ),
      ]),
      [
        `manager − bare reader per read, ${segmented[1][1]}`,
        "",
        ...managers.map((manager) => `${pacedExcessPerRead(manager, f.bare).toFixed(2)} µs`),
      ],
    ],
  );
  return `${figures}\n\n${ratios}`;
}

/** What a cut costs `server` against one write (CPU per handshake, as a factor). */
export function cutCost(server: ServerFigures, key: CaseKey): number {
  return perHandshake(server[key]) / perHandshake(server.oneWrite);
}

/** The parser's own share: the manager's excess over the bare reader, `key` over one write. */
export function parserShare(f: SegmentationFigures, key: CaseKey): number {
  return excess(f.manager, f.bare, key) / excess(f.manager, f.bare, "oneWrite");
}

/** The manager's excess over the bare reader per read with paced segments, in µs. */
export function pacedExcessPerRead(manager: ServerFigures, bare: ServerFigures): number {
  return excess(manager, bare, "paced") / manager.paced.readsPerHandshake * 1000;
}

/** Errors of a `--segmentation` run. */
export function segmentationProblems(segmentation: SegmentationFigures | Failure): string[] {
  if (!ok<SegmentationFigures>(segmentation)) {
    const failure = segmentation as Failure;
    return [`segmentation: error: ${failure.error ?? failure.skipped}`];
  }
  const lines = segmentation.errors.map((line) => `segmentation: error: ${line}`);
  const tick = 1000 / segmentation.clockTicksPerSecond;
  for (const server of segmentationServers(segmentation)) {
    for (const key of ["oneWrite", "segmented", "paced"] as const) {
      const { cpuMs, tickCpuMs } = server[key];
      // Each tick reading is truncated, so the two may differ by up to two ticks, plus rounding.
      if (Math.abs(cpuMs - tickCpuMs) > 2 * tick + 0.05 * tickCpuMs) {
        lines.push(
          `segmentation: error: ${server.label}, ${key}: the threads' CPU (${ms(cpuMs)}) and ` +
            `the process's clock ticks (${ms(tickCpuMs)}) disagree`,
        );
      }
    }
  }
  return lines;
}
