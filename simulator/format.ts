/**
 * How the simulator writes figures for people: sizes in MiB, shares as
 * percentages, times in seconds and milliseconds. The report's table, the
 * verdicts' details and the status line share these, so a figure reads the
 * same everywhere.
 *
 * @module
 */

/** Bytes in a mebibyte. */
export const MIB = 1048576;

/**
 * A size in MiB with one decimal, without the unit.
 *
 * @example
 * ```ts
 * import { mib } from "./format.ts";
 * console.log(mib(1572864)); // "1.5"
 * ```
 */
export function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

/**
 * A share (0 to 1) as a percentage with one decimal.
 *
 * @example
 * ```ts
 * import { percent } from "./format.ts";
 * console.log(percent(0.0471)); // "4.7 %"
 * ```
 */
export function percent(share: number): string {
  return `${(share * 100).toFixed(1)} %`;
}

/**
 * Seconds with two decimals and the unit.
 *
 * @example
 * ```ts
 * import { seconds } from "./format.ts";
 * console.log(seconds(2.019)); // "2.02 s"
 * ```
 */
export function seconds(value: number): string {
  return `${value.toFixed(2)} s`;
}

/**
 * Milliseconds with the unit: two decimals below 10 ms, one from there on.
 *
 * @example
 * ```ts
 * import { ms } from "./format.ts";
 * console.log(ms(3.141), ms(12.04)); // "3.14 ms" "12.0 ms"
 * ```
 */
export function ms(value: number): string {
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}

/**
 * A number with one decimal and a `+` when it is not negative.
 *
 * @example
 * ```ts
 * import { signed } from "./format.ts";
 * console.log(signed(0.24), signed(-1)); // "+0.2" "-1.0"
 * ```
 */
export function signed(value: number): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(1)}`;
}

/**
 * One figure of a latency summary with its unit, or `n/a` when nothing was
 * measured (no samples: a 0 would read as instant).
 *
 * @example
 * ```ts
 * import { msOf } from "./format.ts";
 * console.log(msOf({ count: 3, p50: 1.5, p99: 4, max: 4 }, "p99")); // "4.00 ms"
 * console.log(msOf({ count: 0, p50: 0, p99: 0, max: 0 }, "p99")); // "n/a"
 * ```
 */
export function msOf(
  summary: { readonly count: number } & Readonly<Record<"p50" | "p99" | "max", number>>,
  key: "p50" | "p99" | "max",
): string {
  return summary.count === 0 ? "n/a" : ms(summary[key]);
}
