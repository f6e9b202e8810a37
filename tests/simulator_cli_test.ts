/**
 * The simulator's command line as a user meets it: one line for a usage
 * error, a fast and clear stop when no manager answers, a fleet that waits
 * for a manager started a moment later, JSON figures with their units, and a
 * memory verdict that says when it could not judge.
 */
import assert from "node:assert/strict";
import { parseCli, UsageError } from "../simulator/options.ts";
import { jsonReport } from "../simulator/json_report.ts";
import { renderReport } from "../simulator/report.ts";
import { runSimulation } from "../simulator/scenario.ts";
import { freePort, startManager } from "./_helpers.ts";

const MAIN = new URL("../simulator/main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

async function simulate(
  args: string[],
  permissions: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      ...permissions,
      MAIN,
      "--no-status",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("CLI: a negative count says it must be at least 0, not that the argument is ambiguous", () => {
  for (const args of [["--lights", "-5"], ["--locks", "-1"], ["--duration", "-0.5"]]) {
    assert.throws(() => parseCli(args), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, new RegExp(`^${args[0]} must be a number of at least 0, got -`));
      return true;
    });
  }
});

Deno.test("CLI: a usage error is one line that points to --help, exit code 2", async () => {
  for (
    const args of [
      ["--bogus"],
      ["--lights", "-5"],
      ["--mode", "3"],
      ["--memory-every", "10", "--warm-up", "120", "--duration", "60"],
    ]
  ) {
    const { code, stdout, stderr } = await simulate(args);
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
    assert.match(stderr, /^simulate: .* \(see --help\)\n$/);
  }
  const help = await simulate(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: deno task simulate \[options\]/);
  assert.match(help.stdout, /--connect-wait s/);
});

Deno.test("CLI: more usage errors caught before the run", async () => {
  const cases: [string[], RegExp][] = [
    [["--lights", "1.5"], /--lights must be a whole number, got 1\.5/],
    [["--connect", "127.0.0.1:99999"], /--connect port must be 1 to 65535, got 99999/],
    [["--connect", "127.0.0.1:9", "--requests", "5"], /--requests sets the embedded manager/],
  ];
  for (const [args, pattern] of cases) {
    const { code, stdout, stderr } = await simulate(["--duration", "30", ...args]);
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "", "no run");
    assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
    assert.match(stderr, pattern);
  }
  // A page that could not be written after the run is refused before it.
  const page = await simulate(["--html", "/nonexistent/r.html"], ["--allow-write=/nonexistent"]);
  assert.equal(page.code, 2, page.stderr);
  assert.equal(page.stdout, "");
  assert.match(page.stderr, /^simulate: --html \/nonexistent\/r\.html: no directory \/nonexistent/);
});

Deno.test("CLI: --connect to a manager that refuses the fleet, a silent listener or another protocol: one line, exit 2", async () => {
  // A manager for thermostats only: the first light is refused, the rest are not dialed.
  await using manager = await startManager({ validTypes: ["thermostat"] });
  const refused = await simulate([
    ...["--connect", `127.0.0.1:${manager.port}`, "--duration", "30"],
  ]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stderr.trimEnd().split("\n").length, 1, refused.stderr);
  assert.match(
    refused.stderr,
    new RegExp(
      `^simulate: the manager at 127\\.0\\.0\\.1:${manager.port} refused the first device \\(type\\)`,
    ),
  );

  // Something that accepts and says nothing; then something that speaks another protocol.
  using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })().catch(() => {});
  const quiet = await simulate([
    ...["--connect", `127.0.0.1:${silent.addr.port}`, "--connect-wait", "1", "--duration", "30"],
  ]);
  assert.equal(quiet.code, 2, quiet.stderr);
  assert.match(
    quiet.stderr,
    /^simulate: something at 127\.0\.0\.1:\d+ accepts connections but completed no handshake/,
  );

  using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const banners = (async () => {
    for await (const conn of other) {
      await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.6\r\n"));
      held.push(conn);
    }
  })().catch(() => {});
  const ssh = await simulate([
    ...["--connect", `127.0.0.1:${other.addr.port}`, "--connect-wait", "30", "--duration", "30"],
  ]);
  assert.equal(ssh.code, 2, ssh.stderr);
  // The last line (the device's own warning about the bytes may come before it).
  assert.match(
    ssh.stderr.trimEnd().split("\n").at(-1)!,
    /^simulate: something at 127\.0\.0\.1:\d+ answers, but not in the iot-manager protocol/,
  );
  for (const conn of held) conn.close();
  silent.close();
  other.close();
  await Promise.all([accepting, banners]);
});

Deno.test("CLI: --connect where nothing listens stops after --connect-wait with one line, exit code 2", async () => {
  const port = freePort();
  const { code, stdout, stderr } = await simulate([
    ...["--connect", `127.0.0.1:${port}`, "--connect-wait", "0.5", "--duration", "30"],
  ]);
  assert.equal(code, 2, stderr);
  assert.equal(stdout, "", "no report of a run that never reached a manager");
  assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
  assert.match(
    stderr,
    new RegExp(
      `^simulate: no manager reachable at 127\\.0\\.0\\.1:${port} \\(tried for \\d\\.\\d s\\): .*refused`,
    ),
  );
});

Deno.test("CLI: a fleet started before its manager still arrives, and --json names its units", async () => {
  const port = freePort();
  const run = simulate([
    ...["--connect", `127.0.0.1:${port}`, "--connect-wait", "60", "--duration", "0.5"],
    ...["--lights", "4", "--locks", "2", "--json"],
  ]);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await using manager = await startManager({ port, validTypes: ["light", "lock"] });
  const { code, stdout, stderr } = await run;
  assert.equal(code, 0, stderr);
  assert.ok(manager.port === port);
  const report = JSON.parse(stdout);
  assert.deepEqual(report.devices.connected, 6, stderr);
  // The first device waited for the manager: it is not timed, the other five are.
  assert.equal(report.handshake.count, 5, stderr);
  // Nothing was broadcast against an external manager: no figures rather than zeros.
  assert.deepEqual(report.broadcasts.latency, { count: 0, p50Ms: null, p99Ms: null, maxMs: null });
  // The table goes to stderr, for people.
  assert.match(stderr, /result: PASS/);
  assert.equal(typeof report.handshake.p99Ms, "number");
  assert.equal(typeof report.durationSeconds, "number");
  assert.equal(typeof report.peakRssBytes, "number");
  assertUnitsNamed(report);
});

/** Every figure that is not a whole count names its unit and is rounded. */
function assertUnitsNamed(value: unknown, path = ""): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertUnitsNamed(item, `${path}[${i}]`));
  } else if (value !== null && typeof value === "object") {
    for (const [key, field] of Object.entries(value)) {
      if (path === "" && key === "plots") continue;
      assertUnitsNamed(field, path === "" ? key : `${path}.${key}`);
    }
  } else if (typeof value === "number") {
    const name = path.split(".").at(-1)!;
    if (!Number.isInteger(value)) {
      assert.match(name, /(Ms|Seconds|Bytes|share|jitter)$/, `${path} = ${value} has no unit`);
    }
    assert.equal(Math.round(value * 1e4) / 1e4, value, `${path} = ${value} is rounded`);
  }
}

Deno.test("--json: a rich run's figures all carry units and are rounded", async () => {
  const report = await runSimulation({
    lights: 6,
    locks: 3,
    heartbeat: 0.2,
    duration: 1.2,
    memoryEvery: 0.2,
    warmUp: 0.2,
    steadyBroadcast: 0.3,
    steadyRequests: 5,
    requests: 5,
  });
  const json = jsonReport(report) as Record<string, unknown>;
  assertUnitsNamed(json);
  const memory = json.memory as { verdict: Record<string, unknown>; samples: object[] };
  assert.ok("baselineHeapBytes" in memory.verdict, JSON.stringify(memory.verdict));
  assert.ok("elapsedSeconds" in memory.samples[0]);
  assert.ok(!("seconds" in json));
});

Deno.test("a memory timeline whose warm-up outlasts the run says memory not judged and passes", async () => {
  const report = await runSimulation({
    lights: 3,
    locks: 1,
    heartbeat: 0.2,
    duration: 0.6,
    memoryEvery: 0.2,
    warmUp: 10,
    requests: 2,
  });
  const table = renderReport(report);
  assert.equal(report.memory?.verdict.judged, false, table);
  assert.equal(report.ok, true, table);
  assert.match(table, /memory not judged: .*must outlast the warm-up/);
  assert.doesNotMatch(table, /heapUsed 0\.0 MiB after warm-up/);
});

Deno.test("with a forced GC too, a warm-up that outlasts the run is not judged and does not fail it", async () => {
  // No --duration: three heartbeat rounds, far shorter than the warm-up.
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "--allow-net=127.0.0.1", "--allow-read", "--v8-flags=--expose-gc", MAIN],
      ...["--no-status", "--lights", "3", "--locks", "1", "--heartbeat", "0.2", "--requests", "2"],
      ...["--memory-every", "0.2", "--warm-up", "10"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const table = decoder.decode(stdout);
  assert.equal(code, 0, table + decoder.decode(stderr));
  assert.match(table, /each after a forced GC/);
  assert.match(table, /memory not judged: 0 sample\(s\) after the warm-up/);
  assert.doesNotMatch(table, /heap flat after warm-up/);
});
