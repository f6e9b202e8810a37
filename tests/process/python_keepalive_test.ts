/**
 * examples/devices/python_device.py notices a manager that went silent without
 * closing: the manager runs in a process of its own and is stopped with
 * SIGSTOP; the device must say so, drop the connection and reconnect with its
 * backoff, and must not do so while the manager is alive and pinging.
 */
import assert from "node:assert/strict";
import { waitFor } from "../_helpers.ts";
import { ManagerProcess } from "./_process.ts";

const DEVICE = new URL("../../examples/devices/python_device.py", import.meta.url).pathname;

// A small copy of tests/python_device_test.ts's PythonDevice: importing a test module would
// register and run all of its tests here too.

/** The Python device as a child process, its stdout collected line by line. */
class PythonDevice implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;

  constructor(port: number, mode: 1 | 2, args: string[] = []) {
    this.#child = new Deno.Command("python3", {
      args: [DEVICE, "--port", String(port), "--mode", String(mode), ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = collectLines(this.#child.stdout, (line) => this.lines.push(line));
    this.#stderr = new Response(this.#child.stderr).text();
  }

  count(line: RegExp): number {
    return this.lines.filter((printed) => line.test(printed)).length;
  }

  /** Waits until `line` has been printed `times` times; returns the last such line. */
  async waitForLine(line: RegExp, times = 1, timeoutMs = 10_000): Promise<string> {
    try {
      await waitFor(() => this.count(line) >= times, `the device to print ${line}`, timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}; it printed:\n${this.lines.join("\n")}`);
    }
    return this.lines.filter((printed) => line.test(printed)).at(-1)!;
  }

  /** Stops the device (SIGTERM, which it handles by leaving cleanly) and reaps it. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already exited */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<"stuck">((resolve) => timer = setTimeout(resolve, 5000, "stuck"));
    if (await Promise.race([this.#child.status, stuck]) === "stuck") this.#child.kill("SIGKILL");
    clearTimeout(timer);
    await this.#child.status;
    await this.#stdout;
    const stderr = await this.#stderr;
    assert.doesNotMatch(stderr, /Traceback/, `the device wrote to stderr:\n${stderr}`);
  }
}

async function collectLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let partial = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (partial + text).split("\n");
    partial = lines.pop()!;
    for (const line of lines) if (line) onLine(line);
  }
  if (partial) onLine(partial);
}

/**
 * Runs `device` against a live manager for `rounds` heartbeat rounds (longer than its silence
 * limit), checks it stayed, stops the manager and returns the line the device printed about it;
 * then checks the device reconnects once the manager runs again.
 */
async function silenceAfterLife(
  manager: ManagerProcess,
  device: PythonDevice,
  mode: 1 | 2,
  rounds: number,
  silent: RegExp,
): Promise<string> {
  const connected = new RegExp(`^connected \\S+ mode ${mode}$`);
  await device.waitForLine(connected);
  const start = manager.rounds;
  await waitFor(() => manager.rounds >= start + rounds, `${rounds} heartbeat rounds`);
  assert.equal(
    device.count(/^disconnected/),
    0,
    `dropped a live manager:\n${device.lines.join("\n")}`,
  );

  manager.signal("SIGSTOP");
  let line: string;
  try {
    line = await device.waitForLine(silent, 1, 15_000);
    const after = device.lines.indexOf(line);
    await waitFor(
      () =>
        device.lines.slice(after).some((printed) => /^reconnecting in \d+\.\d+ s$/.test(printed)),
      "a reconnect after the silent manager",
    );
  } finally {
    manager.signal("SIGCONT");
  }
  // The reconnect that reached the stopped manager's backlog completes once it runs again.
  await device.waitForLine(connected, 2, 15_000);
  return line;
}

Deno.test("python device, mode 2: treats a stopped manager as gone after WELCOME's promise and reconnects", async () => {
  await using manager = new ManagerProcess({ heartbeatRate: 1, heartbeatTimeout: 1 });
  await using device = new PythonDevice(await manager.port(), 2);
  // The limit is 1 + 1 s plus 1 s of slack: four rounds of life outlast it.
  const line = await silenceAfterLife(
    manager,
    device,
    2,
    4,
    /^disconnected: the manager sent nothing for \d+\.\d s \(it promised a heartbeat every 1 s\)$/,
  );
  const seconds = Number(line.match(/for (\d+\.\d) s/)![1]);
  assert.ok(seconds >= 3, `gave up after ${seconds} s, before the promise ran out`);
});

Deno.test("python device, mode 1: --keepalive treats a stopped manager as gone and reconnects", async () => {
  await using manager = new ManagerProcess({ heartbeatRate: 0.5, heartbeatTimeout: 1 });
  await using device = new PythonDevice(await manager.port(), 1, ["--keepalive", "2"]);
  // Six rounds of 0.5 s: the live manager is watched for longer than the 2 s keepalive.
  const line = await silenceAfterLife(
    manager,
    device,
    1,
    6,
    /^disconnected: the manager sent nothing for \d+\.\d s \(--keepalive 2\)$/,
  );
  const seconds = Number(line.match(/for (\d+\.\d) s/)![1]);
  assert.ok(seconds >= 2, `gave up after ${seconds} s, before --keepalive 2 ran out`);
});
