/**
 * examples/devices/python_device.py as a child process, for the tests that run
 * it (tests/python_device_test.ts, tests/process/python_keepalive_test.ts).
 */
import assert from "node:assert/strict";
import type { Manager, ProtocolMode } from "../mod.ts";
import { waitFor } from "./_helpers.ts";

const DEVICE = new URL("../examples/devices/python_device.py", import.meta.url).pathname;

/** The Python device as a child process, its stdout collected line by line. */
export class PythonDevice implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;

  /** Starts the device against a manager (or a port) in `mode`, with extra command-line `args`. */
  constructor(manager: Manager | number, mode: ProtocolMode, args: string[] = []) {
    const port = typeof manager === "number" ? manager : manager.port;
    this.#child = new Deno.Command("python3", {
      args: [DEVICE, "--port", String(port), "--mode", String(mode), ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = this.#collect(this.#child.stdout);
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** Resolves with the exit status once the process has exited. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#child.status;
  }

  /** Lines equal to `line` (or matching it) printed so far. */
  count(line: string | RegExp): number {
    return this.lines.filter((printed) => matches(printed, line)).length;
  }

  /** Waits until `line` has been printed `times` times; returns the last such line. */
  async waitForLine(line: string | RegExp, times = 1, timeoutMs = 10_000): Promise<string> {
    try {
      await waitFor(
        () => this.count(line) >= times,
        `the device to print ${line} (x${times})`,
        timeoutMs,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; it printed:\n${this.lines.join("\n")}`);
    }
    return this.lines.filter((printed) => matches(printed, line)).at(-1)!;
  }

  /** Stops the device (SIGTERM, which it handles by leaving cleanly) and reaps it. */
  async stop(): Promise<void> {
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
    // A traceback means the device crashed somewhere, even if the test got what it wanted.
    assert.doesNotMatch(stderr, /Traceback/, `the device wrote to stderr:\n${stderr}`);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (partial + text).split("\n");
      partial = lines.pop()!;
      this.lines.push(...lines);
    }
    if (partial) this.lines.push(partial);
  }
}

function matches(printed: string, line: string | RegExp): boolean {
  return typeof line === "string" ? printed === line : line.test(printed);
}
