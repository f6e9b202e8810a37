/**
 * The control channel between the bench (the load generator) and a server
 * process it started: one JSON object per line, requests on the child's stdin,
 * replies on its stdout. Kept out of the measured sockets on purpose.
 *
 * @module
 */

/** A request: `{ id, command, args }`. */
interface Request {
  readonly id: number;
  readonly command: string;
  readonly args: Record<string, unknown>;
}

/** A reply: `{ id, result }` or `{ id, error }`. */
interface Reply {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}

/** A command the server side answers; its result must be JSON-serialisable. */
import { configure, getStreamSink, getTextFormatter } from "@logtape/logtape";

export type CommandHandler = (args: Record<string, unknown>) => unknown;

const encoder = new TextEncoder();

/** Splits a byte stream into lines of text. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let at: number;
    while ((at = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, at);
      pending = pending.slice(at + 1);
    }
  }
}

/** Resolves `promise`, or rejects with `what` after `ms`; the timer never outlives the call. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${(ms / 1000).toFixed(1)} s: ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The bench's end of a server process: sends commands, awaits replies, and
 * closes the process (politely, then by force) at the end.
 */
export class ServerProcess implements AsyncDisposable {
  readonly name: string;
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #waiting = new Map<number, PromiseWithResolvers<unknown>>();
  readonly #reading: Promise<void>;
  #nextId = 1;
  #exited = false;

  /**
   * Starts `deno run <args>` as a server speaking this control protocol.
   *
   * @param name For error messages.
   * @param args Everything after `deno`.
   */
  constructor(name: string, args: readonly string[]) {
    this.name = name;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.pid = this.#child.pid;
    this.#writer = this.#child.stdin.getWriter();
    this.#reading = this.#readReplies();
    this.#child.status.then(async () => {
      this.#exited = true;
      // Replies written just before exiting are still in the pipe: read them first.
      await this.#reading;
      for (const waiter of this.#waiting.values()) {
        waiter.reject(new Error(`${this.name} exited before answering`));
      }
      this.#waiting.clear();
    });
  }

  /** Sends a command and waits at most `timeoutMs` for its result. */
  async call<T>(
    command: string,
    args: Record<string, unknown> = {},
    timeoutMs = 30_000,
  ): Promise<T> {
    if (this.#exited) throw new Error(`${this.name} has exited; cannot run ${command}`);
    const id = this.#nextId++;
    const waiter = Promise.withResolvers<unknown>();
    this.#waiting.set(id, waiter);
    const request: Request = { id, command, args };
    await this.#writer.write(encoder.encode(JSON.stringify(request) + "\n"));
    try {
      return await within(waiter.promise, timeoutMs, `${this.name} answering "${command}"`) as T;
    } finally {
      this.#waiting.delete(id);
    }
  }

  /** Asks the server to close, then kills it if it has not exited within `graceMs`. */
  async close(graceMs = 15_000): Promise<void> {
    if (!this.#exited) {
      await this.call("close", {}, graceMs).catch((error) => {
        console.error(`${this.name}: ${(error as Error).message}; killing it`);
      });
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), graceMs)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      await this.#child.status;
    }
    await this.#writer.close().catch(() => {});
    await this.#reading;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #readReplies(): Promise<void> {
    try {
      for await (const line of lines(this.#child.stdout)) {
        if (line.trim() === "") continue;
        let reply: Reply;
        try {
          reply = JSON.parse(line);
        } catch {
          console.error(`${this.name} wrote a non-JSON line: ${line}`);
          continue;
        }
        const waiter = this.#waiting.get(reply.id);
        if (!waiter) continue;
        if (reply.error !== undefined) waiter.reject(new Error(`${this.name}: ${reply.error}`));
        else waiter.resolve(reply.result);
      }
    } catch (error) {
      console.error(`${this.name}: reading its replies failed: ${(error as Error).message}`);
    }
  }
}

/**
 * The server's end: answers each command line on stdin with one line on
 * stdout. Returns after answering `close` (whose handler should release
 * everything) or when stdin ends (the bench went away).
 *
 * @param handlers Commands by name; `close` must be one of them.
 */
export async function serveCommands(
  handlers: Readonly<Record<string, CommandHandler>>,
): Promise<void> {
  let writing = Promise.resolve();
  const reply = (message: Reply): Promise<void> => {
    const bytes = encoder.encode(JSON.stringify(message) + "\n");
    writing = writing.then(async () => {
      let offset = 0;
      while (offset < bytes.length) offset += await Deno.stdout.write(bytes.subarray(offset));
    });
    return writing;
  };
  const answer = async (request: Request): Promise<void> => {
    const handler = Object.hasOwn(handlers, request.command) ? handlers[request.command] : null;
    if (!handler) {
      return reply({ id: request.id, error: `unknown command ${JSON.stringify(request.command)}` });
    }
    try {
      await reply({ id: request.id, result: (await handler(request.args ?? {})) ?? null });
    } catch (error) {
      await reply({ id: request.id, error: String((error as Error)?.message ?? error) });
    }
  };
  for await (const line of lines(Deno.stdin.readable)) {
    if (line.trim() === "") continue;
    const request = JSON.parse(line) as Request;
    if (request.command === "close") {
      await answer(request);
      return;
    }
    // Commands run concurrently: a long one (a fan-out) must not hold up a status query.
    answer(request);
  }
  await handlers.close({});
}

/**
 * Logs of a bench child process: the library's warnings and errors to stderr,
 * so stdout stays the command channel.
 */
export async function configureChildLogs(): Promise<void> {
  await configure({
    sinks: { stderr: getStreamSink(Deno.stderr.writable, { formatter: getTextFormatter() }) },
    loggers: [
      { category: ["iot-manager"], lowestLevel: "warning", sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["stderr"] },
    ],
  });
}
