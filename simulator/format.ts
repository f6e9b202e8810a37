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
