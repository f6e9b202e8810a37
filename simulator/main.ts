/**
 * `deno task simulate`: the simulator's command line. See `--help` and
 * docs/SIMULATOR.md.
 *
 * @module
 */

import { configure, getConsoleSink } from "@logtape/logtape";
import { parseCli, usage, UsageError } from "./options.ts";
import { renderReport } from "./report.ts";
import { runSimulation } from "./scenario.ts";
import { createStatusPrinter } from "./status.ts";

const encoder = new TextEncoder();
const writeErr = (text: string) => Deno.stderr.writeSync(encoder.encode(text));

async function main(args: readonly string[]): Promise<number> {
  let request;
  try {
    request = parseCli(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    writeErr(`${error.message}\n\n${usage}`);
    return 2;
  }
  if (request.help) {
    console.log(usage);
    return 0;
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
    const report = await runSimulation({
      ...request.options,
      onStatus: printer?.update,
      signal: controller.signal,
    });
    printer?.finish();
    console.log(request.json ? JSON.stringify(report, null, 2) : renderReport(report));
    return report.ok ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
