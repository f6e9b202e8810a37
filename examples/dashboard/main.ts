/**
 * `deno task dashboard`: a manager, the dashboard web app next to it and, with
 * `--simulate N`, N simulated devices, so a newcomer sees a live fleet in one
 * command.
 *
 * @module
 */

import { Manager } from "@iot-manager/core";
import { configure, getConsoleSink } from "@logtape/logtape";
import { parseArgs } from "node:util";
import { Dashboard } from "./dashboard.ts";
import { startFleet } from "./fleet.ts";

const usage = `Usage: deno task dashboard [options]

  --port N          web port (default 8080; 0 lets the OS pick)
  --hostname H      web and manager interface (default 127.0.0.1)
  --manager-port N  port devices connect to (default 8595; 0 lets the OS pick)
  --simulate N      also start N simulated lights and locks (default 0)
  --log-level L     trace, debug, info, warning, error (default info)
  --help            this text`;

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8080" },
    hostname: { type: "string", default: "127.0.0.1" },
    "manager-port": { type: "string", default: "8595" },
    simulate: { type: "string", default: "0" },
    "log-level": { type: "string", default: "info" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(usage);
  Deno.exit(0);
}
const numbers = ["port", "manager-port", "simulate"] as const;
for (const name of numbers) {
  if (!/^\d+$/.test(values[name])) {
    console.error(
      `--${name} must be a whole number, got ${JSON.stringify(values[name])}\n\n${usage}`,
    );
    Deno.exit(2);
  }
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

const manager = await Manager.listen({
  validTypes: ["light", "lock"],
  hostname: values.hostname,
  port: Number(values["manager-port"]),
});
const dashboard = new Dashboard(manager);
const server = Deno.serve({
  hostname: values.hostname,
  port: Number(values.port),
  onListen: ({ hostname, port }) => {
    console.log(`Dashboard: http://${hostname}:${port}/`);
    console.log(`Devices connect to ${manager.hostname}:${manager.port}`);
  },
}, dashboard.handler);
const fleet = await startFleet({
  hostname: manager.hostname,
  port: manager.port,
  count: Number(values.simulate),
});
if (fleet.devices.length > 0) console.log(`Simulating ${fleet.devices.length} devices`);

const stop = async () => {
  console.log("Shutting down");
  await fleet.close();
  await dashboard.close();
  await server.shutdown();
  await manager.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
