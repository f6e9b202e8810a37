/**
 * How a figure is written, once for every table, document and terminal line
 * of the report: counts, milliseconds, bytes, shares, ratios, and the
 * Markdown table they go in. A figure that is not a finite number prints as
 * "—".
 *
 * @module
 */

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** A whole number with thousands separators: `12,345`. */
export function count(value: number): string {
  return Number.isFinite(value) ? integer.format(value) : "—";
}

/** Milliseconds to three significant digits or so: `0.235 ms`, `9.44 ms`, `12.6 ms`. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "—";
  return `${value < 1 ? value.toFixed(3) : value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}

/** Whole bytes: `4,096 B`. */
export function bytes(value: number): string {
  return Number.isFinite(value) ? `${integer.format(value)} B` : "—";
}

/** A share as a percentage: `0.041` is `4.1 %`. */
export function percent(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(1)} %` : "—";
}

/** `ours ÷ theirs`: `1.41×`; "—" unless both are finite and `theirs` is positive. */
export function ratio(ours: number, theirs: number): string {
  if (!(Number.isFinite(ours) && Number.isFinite(theirs) && theirs > 0)) return "—";
  const value = ours / theirs;
  // Two significant digits below 0.1, so a ratio of 0.005 does not print as 0.00.
  return `${value > 0 && value < 0.095 ? value.toPrecision(2) : value.toFixed(2)}×`;
}

/** A threshold as a factor, to one decimal: `0.9×`, `2.0×`. */
export function times(factor: number): string {
  return `${factor.toFixed(1)}×`;
}

/** A difference in ms with its sign. */
export function signedMs(value: number): string {
  return Number.isFinite(value) ? `${value < 0 ? "−" : "+"}${ms(Math.abs(value))}` : "—";
}

/** A ratio that may be negative (an excess below the floor's). */
export function signedRatio(ours: number, theirs: number): string {
  if (!(Number.isFinite(ours) && Number.isFinite(theirs) && theirs > 0)) return "—";
  return ours < 0 ? `${(ours / theirs).toFixed(2)}×` : ratio(ours, theirs);
}

/** A Markdown table, its cells' `|` escaped; `deno fmt` lines the columns up afterwards. */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const escape = (cell: string) => cell.replaceAll("|", "\\|");
  const lines = [
    `| ${header.map(escape).join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.map(escape).join(" | ")} |`),
  ];
  return lines.join("\n");
}

/** Lines as a Markdown list. */
export function bulletList(lines: readonly string[]): string {
  return lines.map((line) => `- ${line}`).join("\n");
}
