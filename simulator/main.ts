/**
 * `deno task simulate`: the simulator's command line. See `--help` and
 * docs/SIMULATOR.md.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { configure, getConsoleSink } from "@logtape/logtape";
import { renderHtmlReport } from "./html_report.ts";
import { jsonReport } from "./json_report.ts";
import { parseCli, UsageError, usageFor } from "./options.ts";
import { renderReport } from "./report.ts";
import { FirstConnectFailed } from "./dialer.ts";
import { runSimulation } from "./scenario.ts";
import { createStatusPrinter } from "./status.ts";

/** How the user started the simulator, for `--help`: from the repository or from JSR. */
const COMMAND = import.meta.url.startsWith("file:")
  ? "deno task simulate"
  : "deno run -A jsr:@iot-manager/core/simulate";

const encoder = new TextEncoder();
const writeErr = (text: string) => Deno.stderr.writeSync(encoder.encode(text));

async function main(args: readonly string[]): Promise<number> {
  let request;
  try {
    request = parseCli(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    writeErr(`simulate: ${error.message} (see --help)\n`);
    return 2;
  }
  if (request.help) {
    console.log(usageFor(COMMAND));
    return 0;
  }
  // Asked now, not after a long run: a terminal gets its prompt before the run, a script fails fast.
  if (
    request.html !== undefined &&
    Deno.permissions.requestSync({ name: "write", path: request.html }).state !== "granted"
  ) {
    writeErr(`--html ${request.html}: no permission to write it (run with --allow-write)\n`);
    return 2;
  }
  if (request.html !== undefined) {
    const problem = unwritable(request.html);
    if (problem) {
      writeErr(`simulate: --html ${request.html}: ${problem} (see --help)\n`);
      return 2;
    }
  }
  // Every level goes to stderr: stdout holds only the report.
  await configure({
    sinks: {
      console: getConsoleSink({
        levelMap: {
          trace: "error",
          debug: "error",
          info: "error",
          warning: "error",
          error: "error",
          fatal: "error",
        },
      }),
    },
    loggers: [
      { category: ["iot-manager"], lowestLevel: request.logLevel, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });

  const controller = new AbortController();
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const printer = request.statusLine
    ? createStatusPrinter(Deno.stderr.isTerminal(), writeErr)
    : undefined;
  try {
    let report;
    try {
      report = await runSimulation({
        ...request.options,
        onStatus: printer?.update,
        signal: controller.signal,
      });
    } catch (error) {
      printer?.finish();
      if (!(error instanceof FirstConnectFailed)) throw error;
      writeErr(`simulate: ${error.message}\n`);
      return 2;
    }
    printer?.finish();
    if (request.json) {
      // As `deno task bench --json`: the figures on stdout, the table for people on stderr.
      console.log(JSON.stringify(jsonReport(report), null, 2));
      writeErr(`${renderReport(report)}\n`);
    } else {
      console.log(renderReport(report));
    }
    if (request.html !== undefined) {
      try {
        Deno.writeTextFileSync(request.html, renderHtmlReport(report, { generatedAt: new Date() }));
      } catch (error) {
        writeErr(`--html ${request.html}: ${(error as Error).message}\n`);
        return 2;
      }
      writeErr(`HTML report written to ${resolve(request.html)}\n`);
    }
    return report.ok ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

/** Why a page could not be written at `path` after the run, or undefined when it can be. */
function unwritable(path: string): string | undefined {
  try {
    if (Deno.statSync(path).isDirectory) return "is a directory";
    return undefined; // an existing file: replaced after the run
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return (error as Error).message;
  }
  try {
    if (!Deno.statSync(dirname(resolve(path))).isDirectory) return "its directory is a file";
  } catch {
    return `no directory ${dirname(resolve(path))}`;
  }
  return undefined;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
