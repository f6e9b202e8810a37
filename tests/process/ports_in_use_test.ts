/**
 * The quick start and the dashboard as a user runs them, on a port that is
 * already taken: one line that says which port and why, exit code 2, no stack
 * trace. And the quick start doing what README says when its port is free.
 */
import assert from "node:assert/strict";
import { Device } from "../../mod.ts";
import { freePort } from "../_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function assertOneLine(stderr: string, pattern: RegExp): void {
  assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
  assert.match(stderr.trimEnd(), pattern);
  assert.doesNotMatch(stderr, /\bat file:|Uncaught/, "no stack trace");
}

Deno.test("quick start on a port in use: one line, exit code 2", async () => {
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = held.addr.port;
  const { code, stderr } = await run([
    ...["run", "--allow-net", "examples/quick_start.ts", String(port)],
  ]);
  assert.equal(code, 2, stderr);
  assertOneLine(
    stderr,
    new RegExp(`^cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use`),
  );
});

Deno.test("quick start on a free port answers status? with all good, as README says", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "examples/quick_start.ts", String(port)],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    await using light = await Device.connect({
      port,
      type: "light",
      data: { on: false },
      waitForManager: 30,
      reconnect: { initialDelay: 0.05, maxDelay: 0.5 },
    });
    await light.send("status?");
    const answer = await light[Symbol.asyncIterator]().next();
    assert.equal(decoder.decode(answer.value as Uint8Array), "all good");
  } finally {
    child.kill("SIGTERM");
    const output = await child.output();
    assert.match(
      decoder.decode(output.stdout),
      new RegExp(`Manager listening on 127\\.0\\.0\\.1:${port}`),
    );
  }
});

Deno.test("dashboard on a web port or a manager port in use: one line naming the flag, exit code 2", async () => {
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(held.addr.port);
  const web = await run([
    ...["run", "--allow-net", "--allow-read", "examples/dashboard/main.ts"],
    ...["--port", port, "--manager-port", "0"],
  ]);
  assert.equal(web.code, 2, web.stderr);
  assertOneLine(
    web.stderr,
    new RegExp(`^dashboard: cannot listen on 127\\.0\\.0\\.1:${port}: .*; --port N picks another$`),
  );
  const manager = await run([
    ...["run", "--allow-net", "--allow-read", "examples/dashboard/main.ts"],
    ...["--port", "0", "--manager-port", port],
  ]);
  assert.equal(manager.code, 2, manager.stderr);
  assertOneLine(
    manager.stderr,
    new RegExp(
      `^dashboard: cannot listen on 127\\.0\\.0\\.1:${port}: .*; --manager-port N picks another$`,
    ),
  );
  const usage = await run([
    "run",
    "--allow-net",
    "--allow-read",
    "examples/dashboard/main.ts",
    "--bogus",
  ]);
  assert.equal(usage.code, 2);
  assertOneLine(usage.stderr, /^dashboard: Unknown option '--bogus' \(see --help\)$/);
});

Deno.test("Manager.listen on an address this machine does not have: ListenError address-not-available", async () => {
  const { ListenError, Manager } = await import("../../mod.ts");
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine; nothing is bound.
  const error = await Manager.listen({ validTypes: ["light"], hostname: "192.0.2.1", port: 0 })
    .catch((e) => e);
  assert.ok(error instanceof ListenError, String(error));
  assert.equal(error.reason, "address-not-available");
});

Deno.test("dashboard: bad values are one line each, exit code 2, before anything listens", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--port", "-1"],
      /^dashboard: --port must be a whole number, not a negative one \(see --help\)$/,
    ],
    [
      ["--log-level", "loud"],
      /^dashboard: --log-level must be one of .*got "loud" \(see --help\)$/,
    ],
    [["--port", "9", "--manager-port", "9"], /^dashboard: --port and --manager-port are both 9/],
  ];
  for (const [args, pattern] of cases) {
    const result = await run([
      "run",
      "--allow-net",
      "--allow-read",
      "examples/dashboard/main.ts",
      ...args,
    ]);
    assert.equal(result.code, 2, result.stderr);
    assertOneLine(result.stderr, pattern);
    assert.equal(result.stdout, "", "nothing started");
  }
});
