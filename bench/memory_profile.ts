/**
 * Where an idle device's bytes go in a server process: `deno run -A
 * bench/memory_profile.ts [--devices 2000] [--mode 1|2] [--tls] [--bare]
 * [--top 25] [--settle seconds] [--allocations] [--mode1-read-size bytes]
 * [--steps 1] [--keep-snapshots]`.
 *
 * Starts the manager (or, with `--bare`, the bare Deno server) in a process
 * of its own as `deno task bench` does, warms it up, takes a V8 heap snapshot
 * and `Deno.memoryUsage()` after full GCs, connects the fleet, and takes both
 * again. Prints, per device, the growth of RSS, of the V8 heap (live, and
 * committed) and of `external` (ArrayBuffers outside the heap), what is left
 * for native memory (RSS − the larger of heapTotal and heapUsed − external:
 * sockets and buffers in Rust, TLS state, the allocator's free lists), and,
 * for the manager (not `--bare`), the heap objects that grew, by kind and
 * constructor, largest first. `--settle` waits that many seconds idle before
 * measuring (V8 gives committed heap back meanwhile, RSS mostly not).
 * `--allocations` also lists what the manager allocated while the fleet
 * connected, garbage included (V8's sampling heap profiler), by function:
 * the young generation that the connect burst grows follows it. `--steps 3`
 * then connects `--devices` more twice, printing what each further fleet adds
 * per device: the first fleet also pays V8's one-time heap growth, the later
 * ones show the cost per device once the heap has grown. Not part of
 * `deno task bench`: a tool for finding what to shrink (issue 15's profile).
 *
 * @module
 */

import { toolArgs, usageError } from "./cli.ts";
import { DeviceFleet } from "./load.ts";
import { startServer, untilSize } from "./phases.ts";
import type { ServerInfo } from "./server.ts";

const USAGE = "Usage: deno run -A bench/memory_profile.ts [--devices 2000] [--mode 1|2] [--tls] " +
  "[--bare] [--top 25] [--settle seconds] [--allocations] [--mode1-read-size bytes] [--steps 1] " +
  "[--keep-snapshots]";
const values = toolArgs({
  devices: { type: "string", default: "2000" },
  mode: { type: "string", default: "2" },
  tls: { type: "boolean", default: false },
  bare: { type: "boolean", default: false },
  top: { type: "string", default: "25" },
  settle: { type: "string", default: "0" },
  allocations: { type: "boolean", default: false },
  "mode1-read-size": { type: "string" },
  steps: { type: "string", default: "1" },
  "keep-snapshots": { type: "boolean", default: false },
}, USAGE);
/** A whole number from an option, at least `least`, or a usage error. */
function count(name: string, value: string, least: number): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < least) {
    usageError(`--${name} must be a whole number >= ${least}, got ${JSON.stringify(value)}`, USAGE);
  }
  return parsed;
}
const devices = count("devices", values.devices, 1);
const steps = count("steps", values.steps, 1);
const mode1ReadSize = values["mode1-read-size"] === undefined
  ? undefined
  : count("mode1-read-size", values["mode1-read-size"], 1);
if (values.mode !== "1" && values.mode !== "2") usageError("--mode must be 1 or 2", USAGE);
const mode = Number(values.mode) as 1 | 2;
const fixtures = new URL("../tests/fixtures/tls/", import.meta.url);
const tls = values.tls
  ? {
    ca: Deno.readTextFileSync(new URL("ca.pem", fixtures)),
    cert: Deno.readTextFileSync(new URL("server.pem", fixtures)),
    key: Deno.readTextFileSync(new URL("server.key", fixtures)),
  }
  : undefined;

/** Self size and count of heap objects, by `kind constructor`. */
type Census = Map<string, { bytes: number; count: number }>;

/** Reads a `.heapsnapshot` into a census by node type and name. */
function census(path: string): Census {
  const snapshot = JSON.parse(Deno.readTextFileSync(path));
  const fields: string[] = snapshot.snapshot.meta.node_fields;
  const types: string[] = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const nodes: number[] = snapshot.nodes;
  const strings: string[] = snapshot.strings;
  const result: Census = new Map();
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]];
    const name = type === "string" || type === "concatenated string" || type === "sliced string"
      ? ""
      : strings[nodes[i + nameAt]].slice(0, 60);
    const key = `${type} ${name}`.trim();
    const entry = result.get(key) ?? { bytes: 0, count: 0 };
    entry.bytes += nodes[i + sizeAt];
    entry.count++;
    result.set(key, entry);
  }
  return result;
}

const target = values.bare ? "bare" : "manager";
const dir = await Deno.makeTempDir({ prefix: "memory_profile_" });
await using server = startServer(target, {
  target,
  tls: tls && { cert: tls.cert, key: tls.key },
  snapshotDir: dir,
  mode1ReadSize,
});
const { port } = await server.call<ServerInfo>("info");
/** Waits until the manager holds at most `count` devices (those leaving have left). */
async function untilAtMost(count: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (await server.call<number>("size") > count) {
    if (Date.now() > deadline) throw new Error(`the manager still holds more than ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
const fleetOf = () =>
  new DeviceFleet({ port, caCerts: tls && [tls.ca] }, { mode, handshake: !values.bare });
// Warm up: the server's code compiled and its pools grown, then let go.
{
  await using warm = fleetOf();
  await warm.connect(200, { concurrency: 100, timeoutMs: 30_000 });
}
if (!values.bare) await untilAtMost(0);
// Memory first (a heap snapshot grows the process), then the snapshots: with the fleet, and
// again once it has left, whose difference is what the fleet held.
const before = await server.call<Deno.MemoryUsage>("memory");
if (values.allocations && !values.bare) await server.call("allocationsStart");
const fleet = fleetOf();
await fleet.connect(devices, { concurrency: 200, timeoutMs: 60_000 });
if (!values.bare) await untilSize(server, devices, 60_000);
const allocated = values.allocations && !values.bare
  ? await server.call<[string, number][]>("allocationsStop", {}, 120_000)
  : null;
await new Promise((resolve) => setTimeout(resolve, Number(values.settle) * 1000));
const after = await server.call<Deno.MemoryUsage>("memory");
const per = (key: keyof Deno.MemoryUsage) => (after[key] - before[key]) / devices;
// After --settle the committed heap may shrink below what the fleet keeps live.
const native = per("rss") - Math.max(per("heapTotal"), per("heapUsed")) - per("external");
console.log(
  `${target}, mode ${mode}${tls ? " + TLS" : ""}, ${devices} idle devices, bytes per device:`,
);
console.log(
  `  rss ${per("rss").toFixed(0)}  heapUsed ${per("heapUsed").toFixed(0)}  ` +
    `heapTotal ${per("heapTotal").toFixed(0)}  external ${per("external").toFixed(0)}  ` +
    `native (rss - max(heapTotal, heapUsed) - external) ${native.toFixed(0)}`,
);
const more: DeviceFleet[] = [];
let previous = after;
for (let step = 2; step <= steps; step++) {
  const next = fleetOf();
  more.push(next);
  await next.connect(devices, { concurrency: 200, timeoutMs: 60_000 });
  if (!values.bare) await untilSize(server, devices * step, 60_000);
  const now = await server.call<Deno.MemoryUsage>("memory");
  const added = (key: keyof Deno.MemoryUsage) => ((now[key] - previous[key]) / devices).toFixed(0);
  console.log(
    `  fleet ${step} of ${devices} more: rss ${added("rss")}  heapUsed ${added("heapUsed")}  ` +
      `heapTotal ${added("heapTotal")}  external ${added("external")}`,
  );
  previous = now;
}
for (const extra of more) await extra[Symbol.asyncDispose]();
if (!values.bare) await untilAtMost(devices);
if (allocated) {
  const total = allocated.reduce((sum, [, bytes]) => sum + bytes, 0);
  console.log(`  allocated while connecting (sampled, garbage included), by function, per device:`);
  for (const [name, bytes] of allocated.slice(0, Number(values.top))) {
    console.log(`  ${(bytes / devices).toFixed(0).padStart(8)} B  ${name}`);
  }
  console.log(
    `  (the top ${allocated.length} functions: ${(total / devices).toFixed(0)} B per device)`,
  );
}
if (!values.bare) {
  const loaded = await server.call<string>("heapSnapshot", { path: `${dir}/loaded.heapsnapshot` });
  await fleet[Symbol.asyncDispose]();
  await untilAtMost(0);
  const empty = await server.call<string>("heapSnapshot", { path: `${dir}/empty.heapsnapshot` });
  const [a, b] = [census(empty), census(loaded)];
  const rows = [...b].map(([key, { bytes, count }]) => {
    const was = a.get(key) ?? { bytes: 0, count: 0 };
    return { key, bytes: (bytes - was.bytes) / devices, count: (count - was.count) / devices };
  }).filter((row) => row.bytes > 4).sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  console.log(`  heap objects the fleet held: ${total.toFixed(0)} B per device, largest first:`);
  for (const row of rows.slice(0, Number(values.top))) {
    console.log(
      `  ${row.bytes.toFixed(1).padStart(8)} B  ${row.count.toFixed(2).padStart(6)} ×  ${row.key}`,
    );
  }
} else {
  await fleet[Symbol.asyncDispose]();
}
// --keep-snapshots: for a closer look, e.g. in Chrome DevTools' Memory tab (Load profile).
if (values["keep-snapshots"]) console.log(`heap snapshots kept in ${dir}`);
else await Deno.remove(dir, { recursive: true });
