/**
 * Helpers for the tests that run a manager in a process of its own, to stop
 * it (SIGSTOP/SIGCONT) or kill it.
 */
import { waitFor } from "../_helpers.ts";

const FIXTURE = new URL("../fixtures/manager_process.ts", import.meta.url).pathname;

/** A manager child process (tests/fixtures/manager_process.ts) and the events it prints. */
export class ManagerProcess implements AsyncDisposable {
  readonly events: Record<string, unknown>[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  constructor(options: Record<string, unknown>, env: Record<string, string> = {}) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", FIXTURE, JSON.stringify(options)],
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.#reading = (async () => {
      let partial = "";
      for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
        const lines = (partial + text).split("\n");
        partial = lines.pop()!;
        for (const line of lines) if (line) this.events.push(JSON.parse(line));
      }
    })();
  }

  async port(): Promise<number> {
    await waitFor(() => this.events.some((e) => "port" in e), "the manager to listen");
    return this.events.find((e) => "port" in e)!.port as number;
  }

  get rounds(): number {
    return this.events.filter((e) => "round" in e).length;
  }

  get disconnects(): Record<string, unknown>[] {
    return this.events.filter((e) => "disconnect" in e);
  }

  /** Sends a command (see the fixture) and waits for the event it answers with. */
  async command(
    command: Record<string, unknown>,
    answer: (event: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>> {
    const writer = this.#child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    writer.releaseLock();
    await waitFor(() => this.events.some(answer), `the answer to ${JSON.stringify(command)}`);
    return this.events.find(answer)!;
  }

  /** Waits for an event. */
  async event(match: (event: Record<string, unknown>) => boolean, what: string): Promise<void> {
    await waitFor(() => this.events.some(match), what);
  }

  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGCONT");
      this.#child.kill("SIGKILL");
    } catch { /* exited */ }
    await this.#child.status;
    await this.#child.stdin.close().catch(() => {});
    await this.#reading;
  }
}
