/**
 * What heartbeats cost the manager as the fleet grows: `deno run -A
 * bench/heartbeat_profile.ts [--devices 1000,5000,10000] [--seconds 15]`.
 *
 * For each fleet size, the bench's manager process (heartbeats every 1 s,
 * 15 s to answer) holds that many idle mode-2 devices from `bench/load.ts`
 * for `--seconds`; prints the server's CPU (share of one core, from
 * `/proc/PID/stat`), the round trips answered and the CPU per round trip in
 * microseconds, which should not grow with the fleet. With `--cpu-prof DIR`
 * the server writes V8's CPU profile there and the functions with the most
 * self time are listed. Not part of `deno task
 * bench` (whose heartbeat phase is 30 s per size): a quicker loop for issue 15.
 *
 * @module
 */

import { toolArgs } from "./cli.ts";
import { DeviceFleet } from "./load.ts";
import { soak, startServer, untilSize } from "./phases.ts";
import type { ServerInfo } from "./server.ts";

const values = toolArgs(
  {
    devices: { type: "string", default: "1000,5000,10000" },
    seconds: { type: "string", default: "15" },
    "cpu-prof": { type: "string" },
  },
  "Usage: deno run -A bench/heartbeat_profile.ts [--devices 1000,5000,10000] [--seconds 15] [--cpu-prof DIR]",
);

/** Self time by function (name, file:line) in a `.cpuprofile`, largest first, in ms. */
function selfTimes(path: string): [string, number][] {
  const profile = JSON.parse(Deno.readTextFileSync(path));
  const byId = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = String(url).split("/").slice(-2).join("/");
    byId.set(node.id, `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`);
  }
  const totals = new Map<string, number>();
  profile.samples.forEach((id: number, i: number) => {
    const key = byId.get(id)!;
    totals.set(key, (totals.get(key) ?? 0) + profile.timeDeltas[i] / 1000);
  });
  return [...totals].sort((a, b) => b[1] - a[1]);
}

for (const devices of values.devices.split(",").map(Number)) {
  const profileDir = values["cpu-prof"] && `${values["cpu-prof"]}/${devices}`;
  if (profileDir) Deno.mkdirSync(profileDir, { recursive: true });
  const server = startServer("manager", {
    target: "manager",
    heartbeatRate: 1,
    heartbeatTimeout: 15,
    cpuProfileDir: profileDir,
  });
  const { pid, port } = await server.call<ServerInfo>("info");
  const fleet = new DeviceFleet({ port }, { mode: 2, handshake: true });
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
  await fleet[Symbol.asyncDispose]();
  await server.close();
  if (profileDir) {
    const file = [...Deno.readDirSync(profileDir)].find((e) => e.name.endsWith(".cpuprofile"));
    if (!file) continue;
    console.log(`  most self time (whole process life), ${profileDir}/${file.name}:`);
    for (const [name, ms] of selfTimes(`${profileDir}/${file.name}`).slice(0, 25)) {
      console.log(`  ${ms.toFixed(0).padStart(7)} ms  ${name}`);
    }
  }
}
