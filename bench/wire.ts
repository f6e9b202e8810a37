/**
 * What the bench's processes agree on: the message they move around, how a
 * timestamp rides in one, and the clock they share; plus the few process
 * chores (find a binary, a free port, wait for a listener, stop a child) that
 * the brokers it starts share.
 *
 * @module
 */

/** Every benchmark message is this many bytes of payload. */
export const PAYLOAD_SIZE = 64;

/** First byte of a payload that carries its send time (for latency samples). */
export const STAMP_MARK = 0x4c; // "L"

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Wall-clock milliseconds with sub-millisecond resolution, comparable between
 * processes on one machine (both read the same system clock at start-up).
 */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/** The 64-byte broadcast payload: printable ASCII, so it is valid in mode 1 too. */
export function benchPayload(): Uint8Array {
  return encoder.encode("iot-manager bench payload ".padEnd(PAYLOAD_SIZE, "0123456789"));
}

/** A 64-byte payload holding `time` (wall-clock ms) as text after {@linkcode STAMP_MARK}. */
export function stampPayload(time: number): Uint8Array {
  return encoder.encode(`L${time.toFixed(4)}`.padEnd(PAYLOAD_SIZE, " "));
}

/** The time a {@linkcode stampPayload} carries. */
export function readStamp(payload: Uint8Array): number {
  return Number(decoder.decode(payload.subarray(1, 24)).trim());
}

/**
 * Reads a file under `/proc`. Deno asks for `--allow-all` to read `/proc`, so
 * without it the file is read by `cat` (the bench already runs processes).
 */
export async function readProcFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (
      !(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)
    ) {
      throw error;
    }
  }
  const { success, stdout, stderr } = await new Deno.Command("cat", { args: [path] }).output();
  if (!success) throw new Error(`cannot read ${path}: ${decoder.decode(stderr).trim()}`);
  return decoder.decode(stdout);
}

/** Resident set size of a process, in bytes, from `/proc/<pid>/status` (Linux). */
export async function processRss(pid: number): Promise<number> {
  const status = await readProcFile(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** CPU seconds (user + system) a process has used, from `/proc/<pid>/stat` (Linux). */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readProcFile(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const userTicks = Number(fields[11]);
  const systemTicks = Number(fields[12]);
  return (userTicks + systemTicks) / await clockTicksPerSecond();
}

let clockTicks: Promise<number> | null = null;

/** `sysconf(_SC_CLK_TCK)` by `getconf CLK_TCK`, the unit of `/proc/<pid>/stat`; 100 if unknown. */
export function clockTicksPerSecond(): Promise<number> {
  clockTicks ??= new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).output()
    .then(({ success, stdout }) => {
      const ticks = Number(decoder.decode(stdout).trim());
      return success && ticks > 0 ? ticks : 100;
    }, () => 100);
  return clockTicks;
}

/** CPU time of each live thread of a process, from `/proc/<pid>/task/<tid>/schedstat` (Linux). */
export interface ThreadsCpu {
  /** Nanoseconds on a CPU, by thread id. */
  readonly threads: ReadonlyMap<number, number>;
}

/**
 * Nanosecond CPU time of each thread of a process (scheduler statistics).
 * `/proc/<pid>/stat` also counts threads that have exited, but only in clock
 * ticks (10 ms); see {@linkcode threadsCpuSince}. Read by `grep` through `sh`
 * (a glob under `/proc` needs `--allow-all` in Deno).
 */
export async function processThreadsCpu(pid: number): Promise<ThreadsCpu> {
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", 'grep -H "" /proc/"$0"/task/*/schedstat', String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  const threads = new Map<number, number>();
  // "/proc/<pid>/task/<tid>/schedstat:<ns on CPU> <ns waiting> <timeslices>"
  for (const match of decoder.decode(stdout).matchAll(/\/task\/(\d+)\/schedstat:(\d+) /g)) {
    threads.set(Number(match[1]), Number(match[2]));
  }
  if (threads.size === 0) throw new Error(`cannot read /proc/${pid}/task/*/schedstat`);
  return { threads };
}

/**
 * Nanoseconds a process spent on CPU between two samples: every thread alive
 * at the second, less what it had at the first (0 if it started since). A
 * thread that exited in between is left out with whatever it used before
 * exiting (an idle pool thread timing out: nothing); `exited` says how many.
 */
export function threadsCpuSince(
  first: ThreadsCpu,
  second: ThreadsCpu,
): { nanoseconds: number; exited: number } {
  let nanoseconds = 0;
  for (const [tid, spent] of second.threads) nanoseconds += spent - (first.threads.get(tid) ?? 0);
  let exited = 0;
  for (const tid of first.threads.keys()) if (!second.threads.has(tid)) exited++;
  return { nanoseconds, exited };
}

/** The first of `candidates`, then of `name` on the `PATH`, that is a file; or `null`. */
export function findBinary(name: string, candidates: readonly string[]): string | null {
  const path = (Deno.env.get("PATH") ?? "").split(":").map((dir) => `${dir}/${name}`);
  for (const candidate of [...candidates, ...path]) {
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch { /* not there */ }
  }
  return null;
}

/** A free loopback port (bound, read, released). */
export function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/** Waits until something accepts TCP connections on `port`; `what` names it in the error. */
export async function waitUntilListening(
  port: number,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`${what} is not listening on ${port} after ${timeoutMs / 1000} s`, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Stops a child process: SIGTERM, then SIGKILL after `graceMs`. Safe on one that has exited. */
export async function stopProcess(child: Deno.ChildProcess, graceMs = 5000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* exited */ }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    child.status.then(() => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), graceMs)),
  ]);
  clearTimeout(timer);
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
  }
}

/** A third-party server (redis-server, mosquitto) the bench started on 127.0.0.1 and a free port. */
export class Daemon implements AsyncDisposable {
  readonly pid: number;
  readonly #child: Deno.ChildProcess;

  private constructor(child: Deno.ChildProcess, readonly port: number, readonly version: string) {
    this.#child = child;
    this.pid = child.pid;
  }

  /**
   * Picks a free port, spawns the server for it, runs `setUp` (e.g. feeding a
   * configuration on stdin) and waits until it accepts connections.
   */
  static async start(
    what: string,
    version: string,
    spawn: (port: number) => Deno.ChildProcess,
    setUp?: (child: Deno.ChildProcess, port: number) => Promise<void>,
  ): Promise<Daemon> {
    const port = freePort();
    const daemon = new Daemon(spawn(port), port, version);
    try {
      await setUp?.(daemon.#child, port);
      await waitUntilListening(port, what);
    } catch (error) {
      await daemon.close();
      throw error;
    }
    return daemon;
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  close(): Promise<void> {
    return stopProcess(this.#child);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
