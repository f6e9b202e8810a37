/**
 * Command-line options of the bench's standalone tools (`memory_profile.ts`,
 * `heartbeat_profile.ts`): `node:util`'s `parseArgs`, plus `--help`, and a
 * usage error as one line and exit status 2 rather than a stack trace.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** Parses `Deno.args` with `options`; prints `usage` and exits on `--help` or a bad option. */
export function toolArgs<const T extends NonNullable<ParseArgsConfig["options"]>>(
  options: T,
  usage: string,
): ReturnType<typeof parseArgs<{ options: T }>>["values"] {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(usage);
    Deno.exit(0);
  }
  try {
    return parseArgs({ args: Deno.args, options }).values;
  } catch (error) {
    return usageError((error as Error).message, usage);
  }
}

/** Prints a usage error (one line, then the usage) and exits with status 2. */
export function usageError(message: string, usage: string): never {
  console.error(`${message}\n${usage}`);
  Deno.exit(2);
}
