/**
 * What heartbeats cost the manager as the fleet grows: `deno run -A
 * bench/heartbeat_profile.ts [--devices 1000,5000,10000] [--seconds 15]`.
 *
 * For each fleet size, the bench's manager process (heartbeats every 1 s,
 * 15 s to answer) holds that many idle mode-2 devices from `bench/load.ts`
 * for `--seconds`; prints the server's CPU (share of one core, from
 * `/proc/PID/stat`), the round trips answered and the CPU per round trip in
 * microseconds, which should not grow with the fleet. Not part of `deno task
 * bench` (whose heartbeat phase is 30 s per size): a quicker loop for issue 15.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DeviceFleet } from "./load.ts";
import { soak, startServer, untilSize } from "./phases.ts";
import type { ServerInfo } from "./server.ts";

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "1000,5000,10000" },
    seconds: { type: "string", default: "15" },
  },
});

for (const devices of values.devices.split(",").map(Number)) {
  await using server = startServer("manager", {
    target: "manager",
    heartbeatRate: 1,
    heartbeatTimeout: 15,
  });
  const { pid, port } = await server.call<ServerInfo>("info");
  await using fleet = new DeviceFleet({ port }, { mode: 2, handshake: true });
  await fleet.connect(devices, { concurrency: 200, timeoutMs: 60_000 });
  await untilSize(server, devices, 60_000);
  await new Promise((resolve) => setTimeout(resolve, 2000)); // past the connect burst
  const result = await soak(pid, Number(values.seconds), () => fleet.beats);
  const perTrip = (result.cpuShare * result.seconds * 1e6) / result.roundTrips;
  console.log(
    `${String(devices).padStart(6)} devices: CPU ${
      (result.cpuShare * 100).toFixed(1)
    } % of a core, ` +
      `${result.roundTrips} round trips in ${result.seconds.toFixed(1)} s, ` +
      `${perTrip.toFixed(1)} µs per round trip`,
  );
}
