/**
 * Reconnect herds: how a fleet of `Device`s with the default reconnect
 * settings returns to a manager that was lost (killed with SIGKILL) and comes
 * back on the same port 3 s later. The manager runs in a process of its own,
 * as in production; the devices run here. Prints, per run, the busiest 100 ms
 * of the return (a sliding window over the devices' `reconnect` events) and
 * the time until every device is back, and writes bench/RESULTS-herd.md.
 * Targets: the busiest 100 ms holds at most 5 % of the fleet, all are back
 * within 15 s.
 *
 * ```sh
 * ulimit -n 20000
 * deno run --config deno.json -A bench/herd.ts [devices=2000] [runs=3]
 * ```
 *
 * @module
 */

import { Device } from "@iot-manager/core";

const MANAGER = new URL("./herd_manager.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const DOWN_MS = 3000;
const devices = Number(Deno.args[0] ?? 2000);
const runs = Number(Deno.args[1] ?? 3);

/** Starts a manager process on `port`; resolves with it and the port it listens on. */
async function startManager(port: number): Promise<{ child: Deno.ChildProcess; port: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, "--allow-net=127.0.0.1", MANAGER, String(port)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the manager process exited");
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return { child, port: JSON.parse(text).port };
}

interface Run {
  readonly back: number;
  readonly busiest: number;
  readonly busiestAt: number;
  readonly p50: number;
  readonly p90: number;
  readonly all: number;
}

async function run(): Promise<Run> {
  const first = await startManager(0);
  const fleet: Device[] = [];
  for (let i = 0; i < devices; i += 100) {
    fleet.push(
      ...await Promise.all(
        Array.from({ length: Math.min(100, devices - i) }, (_, j) =>
          Device.connect({
            port: first.port,
            type: (i + j) % 5 < 3 ? "light" : "lock",
            reconnect: true,
          })),
      ),
    );
  }
  const back: number[] = [];
  const lostAt = performance.now();
  for (const device of fleet) device.on("reconnect", () => back.push(performance.now() - lostAt));
  first.child.kill("SIGKILL");
  await first.child.status;
  await new Promise((resolve) => setTimeout(resolve, DOWN_MS - (performance.now() - lostAt)));
  const second = await startManager(first.port);
  const deadline = performance.now() + 30_000;
  while (back.length < devices && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await Promise.all(fleet.map((device) => device.close()));
  second.child.kill("SIGKILL");
  await second.child.status;
  back.sort((a, b) => a - b);
  let busiest = 0;
  let busiestAt = 0;
  for (let i = 0, j = 0; i < back.length; i++) {
    while (back[i] - back[j] >= 100) j++;
    if (i - j + 1 > busiest) [busiest, busiestAt] = [i - j + 1, back[j]];
  }
  const at = (q: number) => back[Math.min(back.length - 1, Math.floor(q * back.length))] / 1000;
  return { back: back.length, busiest, busiestAt, p50: at(0.5), p90: at(0.9), all: at(1) };
}

const results: Run[] = [];
for (let i = 0; i < runs; i++) {
  const result = await run();
  results.push(result);
  console.log(
    `run ${i + 1}: back ${result.back}/${devices}; busiest 100 ms ${result.busiest} ` +
      `(${(100 * result.busiest / devices).toFixed(1)} %) from ${
        (result.busiestAt / 1000).toFixed(2)
      } s; p50 ${result.p50.toFixed(2)} s, p90 ${result.p90.toFixed(2)} s, all ${
        result.all.toFixed(2)
      } s`,
  );
}
const worst = results.reduce((a, b) => (b.busiest > a.busiest ? b : a));
const slowest = Math.max(...results.map((r) => r.all));
const met = worst.busiest <= devices * 0.05 && slowest <= 15 &&
  results.every((r) => r.back === devices);
const rows = results.map((r, i) =>
  `| ${i + 1} | ${r.back} / ${devices} | ${r.busiest} (${
    (100 * r.busiest / devices).toFixed(1)
  } %) | ${r.p50.toFixed(2)} s | ${r.p90.toFixed(2)} s | ${r.all.toFixed(2)} s |`
);
await Deno.writeTextFile(
  new URL("./RESULTS-herd.md", import.meta.url),
  `# Reconnect herd benchmark results

Produced by \`deno run --config deno.json -A bench/herd.ts ${devices} ${runs}\` on ${
    new Date().toISOString()
  } (Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores). ${devices} \`Device\`s with
the default reconnect settings (decorrelated jitter, 1 s to 10 s) lose their manager (SIGKILL of its
process); a new manager process listens on the same port ${DOWN_MS / 1000} s later. Times count from
the kill; "back" is a device's \`reconnect\` event.

| run | back | busiest 100 ms | p50 | p90 | all back |
| --- | ---- | -------------- | --- | --- | -------- |
${rows.join("\n")}

Targets: busiest 100 ms at most 5 % of the fleet (${devices * 0.05}), all back within 15 s:
**${
    met
      ? "met"
      : "not met"
  }** in every run (worst busiest 100 ms ${worst.busiest}, slowest return ${slowest.toFixed(2)} s).
`,
);
Deno.exit(met ? 0 : 1);
