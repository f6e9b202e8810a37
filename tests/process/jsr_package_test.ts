/**
 * README's "From JSR, with only Deno" commands, run as written against the
 * package as it would be published: the files `deno publish --dry-run`
 * lists, with the import specifiers `deno publish` rewrites ("unfurls",
 * read from its debug log), served by a local JSR registry (Deno reads the
 * registry's address from `JSR_URL`), from an empty directory with no
 * `deno.json`. The real registry is not reachable from CI; everything else
 * (resolution of `jsr:` exports, checksums, npm dependencies) is Deno's own.
 */
import assert from "node:assert/strict";
import { freePort } from "../_helpers.ts";

const ROOT = new URL("../../", import.meta.url);
const decoder = new TextDecoder();
const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
const [scope, name] = (config.name as string).slice(1).split("/");
const version: string = config.version;

/** The package's files as `deno publish` would upload them: path (from `/`) to bytes. */
async function packageFiles(): Promise<Map<string, Uint8Array<ArrayBuffer>>> {
  const { stdout, stderr, success } = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty", "--log-level=debug"],
    cwd: ROOT,
  }).output();
  const log = decoder.decode(stdout) + decoder.decode(stderr);
  assert.ok(success, log.slice(-2000));
  const rootHref = ROOT.href;
  const listed = [...log.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map((match) => match[1]);
  const unfurled = new Map<string, Map<string, string>>();
  for (
    const [, specifier, from, to] of log.matchAll(/Unfurled specifier: (\S+) from (\S+) -> (\S+)/g)
  ) {
    if (!unfurled.has(from)) unfurled.set(from, new Map());
    unfurled.get(from)!.set(specifier, to);
  }
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const href of listed) {
    let bytes: Uint8Array<ArrayBuffer> = Deno.readFileSync(new URL(href));
    const rewrites = unfurled.get(href);
    if (rewrites) {
      let source = decoder.decode(bytes);
      for (const [specifier, to] of rewrites) {
        // Only where a module is named: `from "x"`, `import "x"`, `import("x")`.
        const quoted = JSON.stringify(specifier).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
        source = source.replace(
          new RegExp(`(\\bfrom\\s*|\\bimport\\s*\\(?\\s*)${quoted}`, "g"),
          `$1${JSON.stringify(to)}`,
        );
      }
      bytes = new TextEncoder().encode(source);
    }
    files.set(`/${href.slice(rootHref.length)}`, bytes);
  }
  return files;
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** A JSR registry with one package, one version: the metadata Deno asks for, then the files. */
async function serveRegistry(
  files: Map<string, Uint8Array<ArrayBuffer>>,
): Promise<Deno.HttpServer<Deno.NetAddr>> {
  const manifest: Record<string, { size: number; checksum: string }> = {};
  for (const [path, bytes] of files) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    manifest[path] = { size: bytes.length, checksum: `sha256-${hex(digest)}` };
  }
  const base = `/@${scope}/${name}/`;
  const meta = { scope, name, latest: version, versions: { [version]: {} } };
  const versionMeta = { manifest, exports: config.exports };
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path === `${base}meta.json`) return Response.json(meta);
    if (path === `${base}${version}_meta.json`) return Response.json(versionMeta);
    const file = path.startsWith(`${base}${version}/`)
      ? files.get(path.slice(`${base}${version}`.length))
      : undefined;
    return file ? new Response(file) : new Response("not found", { status: 404 });
  });
}

/** README's command lines in the "From JSR" section, by what they start with. */
function readmeCommands(): string[] {
  const readme = Deno.readTextFileSync(new URL("README.md", ROOT));
  const section = readme.slice(readme.indexOf("## From JSR, with only Deno"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1];
  return block.split("\n").map((line) => line.replace(/\s+#.*$/, "").trim()).filter(Boolean);
}

Deno.test("README's JSR commands work from an empty directory against the package as published", async () => {
  const files = await packageFiles();
  for (const entry of Object.values<string>(config.exports)) {
    assert.ok(files.has(entry.slice(1)), `${entry} is published`);
  }
  assert.ok(files.has("/examples/devices/python_device.py"), "the Python device ships");
  await using registry = await serveRegistry(files);
  const jsrUrl = `http://127.0.0.1:${registry.addr.port}/`;
  const empty = await Deno.makeTempDir({ prefix: "jsr_package_" });
  const env = { JSR_URL: jsrUrl, NO_COLOR: "1" };
  const commands = readmeCommands();
  const command = (start: string, exact = false) => {
    const line = commands.find((c) => exact ? c === start : c.startsWith(start));
    assert.ok(line, `README has a command starting with ${start}`);
    return line.split(/\s+/);
  };
  const deno = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args,
      cwd: empty,
      env,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
  const port = freePort();
  // The quick start, with a free port instead of 8595 (every test server binds a free port).
  const quickStart = command("deno run --allow-net jsr:@iot-manager/core/quick-start");
  const manager = new Deno.Command(Deno.execPath(), {
    args: [...quickStart.slice(1), String(port)],
    cwd: empty,
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    // The simulator against it: README's line, with the port and a shorter run.
    const simulate = command("deno run -A jsr:@iot-manager/core/simulate --connect");
    const args = simulate.slice(1).map((arg) => arg.replace(":8595", `:${port}`))
      .map((arg, i, all) => all[i - 1] === "--duration" ? "2" : arg);
    const external = await deno([...args, "--lights", "6", "--locks", "3", "--no-status"]);
    const report = decoder.decode(external.stdout);
    assert.equal(external.code, 0, report + decoder.decode(external.stderr));
    assert.match(report, new RegExp(`external manager at 127\\.0\\.0\\.1:${port}, 9 devices`));
    assert.match(report, /\nresult: PASS\n/);

    // The Python device, fetched from where README says it is on the registry.
    const curl = command("curl");
    const url = curl.at(-1)!.replace("https://jsr.io/", jsrUrl);
    const python = await fetch(url);
    assert.equal(python.status, 200, url);
    Deno.writeTextFileSync(`${empty}/python_device.py`, await python.text());
    const device = command("python3 python_device.py").map((arg) =>
      arg === "8595" ? `${port}` : arg
    );
    const light = new Deno.Command(device[0], {
      args: device.slice(1),
      cwd: empty,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      // The quick start prints `+ light <uuid>` for it.
      const reader = manager.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!/\+ light [0-9a-f-]{36}/.test(seen)) {
        const { value, done } = await reader.read();
        assert.ok(!done, `the quick start ended before the Python device connected:\n${seen}`);
        seen += value;
      }
      reader.releaseLock();
    } finally {
      light.kill("SIGTERM");
      await light.output();
    }
  } finally {
    manager.kill("SIGTERM");
    await manager.status;
  }

  // The simulator with its embedded manager, and its help, named for how it was started.
  const embedded = await deno([
    ...command("deno run -A jsr:@iot-manager/core/simulate", true).slice(1),
    ...["--lights", "6", "--locks", "3", "--heartbeat", "0.2", "--no-status"],
    ...["--html", `${empty}/report.html`],
  ]);
  assert.equal(embedded.code, 0, decoder.decode(embedded.stdout) + decoder.decode(embedded.stderr));
  assert.match(Deno.readTextFileSync(`${empty}/report.html`), /^<!doctype html>/);
  const help = await deno(command("deno run -A jsr:@iot-manager/core/simulate --help").slice(1));
  assert.match(
    decoder.decode(help.stdout),
    /^Usage: deno run -A jsr:@iot-manager\/core\/simulate \[options\]/,
  );

  // And the package's own API, added to a project as README says.
  const add = await deno(command("deno add jsr:@iot-manager/core").slice(1));
  assert.equal(add.code, 0, decoder.decode(add.stderr));
  Deno.writeTextFileSync(
    `${empty}/fleet.ts`,
    `import { Device, Manager } from "@iot-manager/core";
import { createFake } from "@iot-manager/core/fake-devices";
await using manager = await Manager.listen({ validTypes: ["light"], port: 0 });
const fake = createFake("light");
await using light = await Device.connect({ port: manager.port, type: "light", data: fake.state() });
while (manager.size === 0) await new Promise((resolve) => setTimeout(resolve, 10));
console.log(manager.size, light.connected);
`,
  );
  const script = await deno(["run", "--allow-net=127.0.0.1", "fleet.ts"]);
  assert.equal(decoder.decode(script.stdout).trim(), "1 true", decoder.decode(script.stderr));
  await Deno.remove(empty, { recursive: true });
});
