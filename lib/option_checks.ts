/**
 * The checks options share, at both ends (`Manager.listen`, `Device.connect`):
 * a positive number, and for a duration one a timer can wait. A timer longer
 * than 2³¹ − 1 ms (about 24.8 days) fires at once instead (Deno, like Node and
 * browsers, stores the delay in 32 bits), so a "never" written as `Infinity`
 * or a huge number would silently mean "now", or spin.
 *
 * @module
 */

/** The longest delay a timer can wait, in seconds: 2³¹ − 1 ms, about 24.8 days. */
export const MAX_TIMER_SECONDS = 2_147_483.647;

/** An option's value as an error message shows it: strings quoted, so `"16"` is not read as 16. */
export function shown(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

/**
 * Checks a positive number option: absent, or a number above 0; for
 * `seconds`, also at most {@linkcode MAX_TIMER_SECONDS}.
 *
 * @throws {TypeError} Naming the option and the value given.
 */
export function checkPositive(name: string, value: unknown, seconds = false): void {
  if (value === undefined) return;
  if (!(typeof value === "number" && value > 0)) {
    throw new TypeError(`${name} must be a positive number, got ${shown(value)}`);
  }
  if (seconds && !(value <= MAX_TIMER_SECONDS)) {
    throw new TypeError(
      `${name} must be at most ${MAX_TIMER_SECONDS} seconds (about 24.8 days, the longest ` +
        `a timer waits), got ${shown(value)}`,
    );
  }
}
