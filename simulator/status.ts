/**
 * The live status line: rewritten in place on a terminal, printed as plain
 * periodic lines otherwise (a log file or CI gets a line every few seconds,
 * not a stream of carriage returns). It goes to stderr, so stdout carries only
 * the report (and stays valid JSON with `--json`).
 *
 * @module
 */

import { MIB } from "./format.ts";
import type { LiveStatus } from "./options.ts";

/** Plain (non-terminal) status lines are printed this often, in seconds. */
const PLAIN_EVERY_SECONDS = 2;

/**
 * Renders one status as a single line.
 *
 * @param status The figures.
 * @param messagesPerSecond The message rate since the previous line.
 *
 * @example
 * ```ts
 * import { formatStatus } from "./status.ts";
 * const status = {
 *   elapsed: 1.5, phase: "steady", connected: 300, expected: 300, messages: 900,
 *   heartbeatsAnswered: 300, errors: 0, rss: 80 * 1048576,
 * };
 * console.log(formatStatus(status, 600));
 * // "  1.5 s  steady     connected 300/300  600 msg/s  beats 300  errors 0  rss 80 MiB"
 * ```
 */
export function formatStatus(status: LiveStatus, messagesPerSecond: number): string {
  return `${status.elapsed.toFixed(1).padStart(5)} s  ${status.phase.padEnd(10)} ` +
    `connected ${status.connected}/${status.expected}  ` +
    `${Math.round(messagesPerSecond)} msg/s  ` +
    `beats ${status.heartbeatsAnswered}  errors ${status.errors}  ` +
    `rss ${(status.rss / MIB).toFixed(0)} MiB`;
}

/** Prints status lines; `finish()` ends the live line. */
export interface StatusPrinter {
  /** Takes one status (pass as `onStatus`). */
  readonly update: (status: LiveStatus) => void;
  /** Clears the live line (terminal) so the report starts on a clean line. */
  finish(): void;
}

/**
 * Creates a status printer writing to `out`.
 *
 * @param terminal True to rewrite one line in place (`\r`), false for periodic plain lines.
 *
 * @example
 * ```ts
 * import { createStatusPrinter } from "./status.ts";
 * const printer = createStatusPrinter(Deno.stderr.isTerminal(), (text) => console.error(text));
 * printer.finish();
 * ```
 */
export function createStatusPrinter(
  terminal: boolean,
  out: (text: string) => void,
): StatusPrinter {
  let last = { elapsed: 0, messages: 0 };
  let printed = false;
  let live = false;
  const rate = (status: LiveStatus) => {
    const seconds = status.elapsed - last.elapsed;
    const perSecond = seconds > 0 ? (status.messages - last.messages) / seconds : 0;
    last = { elapsed: status.elapsed, messages: status.messages };
    return perSecond;
  };
  return {
    update(status) {
      if (terminal) {
        out(`\r\x1b[2K${formatStatus(status, rate(status))}`);
        live = true;
      } else if (!printed || status.elapsed - last.elapsed >= PLAIN_EVERY_SECONDS) {
        printed = true;
        out(formatStatus(status, rate(status)) + "\n");
      }
    },
    finish() {
      if (live) out("\r\x1b[2K");
      live = false;
    },
  };
}
