/**
 * `deno task dashboard`: a manager, the dashboard web app next to it and, with
 * `--simulate N`, N simulated devices, so a newcomer sees a live fleet in one
 * command.
 *
 * @module
 */

import { configure, getConsoleSink } from "@logtape/logtape";
import { parseArgs } from "node:util";
import { ListenError } from "@iot-manager/core";
import { startDashboard } from "./stack.ts";

const usage = `Usage: deno task dashboard [options]

  --port N          web port (default 8080; 0 lets the OS pick)
  --hostname H      web and manager interface (default 127.0.0.1)
  --manager-port N  port devices connect to (default 8595; 0 lets the OS pick)
  --simulate N      also start N simulated lights and locks (default 0)
  --log-level L     trace, debug, info, warning, error, fatal (default info)
  --help            this text`;

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        port: { type: "string", default: "8080" },
        hostname: { type: "string", default: "127.0.0.1" },
        "manager-port": { type: "string", default: "8595" },
        simulate: { type: "string", default: "0" },
        "log-level": { type: "string", default: "info" },
        help: { type: "boolean", default: false },
      },
    });
  } catch (error) {
    // `--port -1`: parseArgs takes the value for a flag and calls it ambiguous; say what is wrong.
    const dashLed = /^Option '(--[\w-]+)' argument is ambiguous/.exec((error as Error).message);
    const message = dashLed
      ? `${dashLed[1]} must be a whole number, not a negative one`
      : (error as Error).message.split("\n")[0];
    console.error(`dashboard: ${message} (see --help)`);
    Deno.exit(2);
  }
})();
if (values.help) {
  console.log(usage);
  Deno.exit(0);
}
const levels = ["trace", "debug", "info", "warning", "error", "fatal"];
if (!levels.includes(values["log-level"])) {
  console.error(
    `dashboard: --log-level must be one of ${levels.join(", ")}, got ${
      JSON.stringify(values["log-level"])
    } (see --help)`,
  );
  Deno.exit(2);
}
const numbers = ["port", "manager-port", "simulate"] as const;
for (const name of numbers) {
  if (!/^\d+$/.test(values[name])) {
    console.error(
      `dashboard: --${name} must be a whole number, got ${
        JSON.stringify(values[name])
      } (see --help)`,
    );
    Deno.exit(2);
  }
}

if (values.port === values["manager-port"] && values.port !== "0") {
  console.error(`dashboard: --port and --manager-port are both ${values.port} (see --help)`);
  Deno.exit(2);
}

await configure({
  sinks: { console: getConsoleSink() },
  loggers: [
    {
      category: ["iot-manager"],
      lowestLevel: values["log-level"] as "info",
      sinks: ["console"],
    },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const stack = await startDashboard({
  hostname: values.hostname,
  port: Number(values.port),
  manager: { port: Number(values["manager-port"]) },
  simulate: Number(values.simulate),
  onListen: (url) => console.log(`Dashboard: ${url} (Prometheus: ${url}metrics)`),
}).catch((error) => {
  if (!(error instanceof ListenError)) throw error;
  // One line that says which port and, when it is taken, which flag moves it.
  const flag = error.port === Number(values["manager-port"]) ? "--manager-port" : "--port";
  const hint = error.reason === "address-in-use" ? `; ${flag} N picks another` : "";
  console.error(`dashboard: ${error.message}${hint}`);
  Deno.exit(2);
});
console.log(`Devices connect to ${stack.manager.hostname}:${stack.manager.port}`);
if (stack.fleet.devices.length > 0) console.log(`Simulating ${stack.fleet.devices.length} devices`);

const stop = async () => {
  console.log("Shutting down");
  await stack.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
