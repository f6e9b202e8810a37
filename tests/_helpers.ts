/**
 * Shared test helpers: managers on port 0, raw-socket devices, TLS files,
 * captured logs and condition polling. Written once, used by every test.
 */

import { configure, type LogRecord, reset } from "@logtape/logtape";
import { Manager, type ManagerOptions, type ProtocolMode } from "../mod.ts";
import {
  encodeFrame,
  encodeHandshake,
  FrameDecoder,
  FrameType,
  type FrameTypeValue,
} from "../lib/protocol/mod.ts";

const fixtures = new URL("./fixtures/tls/", import.meta.url);
/** Test-only TLS files (see tests/fixtures/tls/README.md). */
export const tlsFiles = {
  ca: Deno.readTextFileSync(new URL("ca.pem", fixtures)),
  cert: Deno.readTextFileSync(new URL("server.pem", fixtures)),
  key: Deno.readTextFileSync(new URL("server.key", fixtures)),
};

/** Starts a manager on 127.0.0.1, port 0, with test-friendly timeouts unless overridden. */
export function startManager(options: Partial<ManagerOptions> = {}): Promise<Manager> {
  return Manager.listen({
    validTypes: ["light", "lock"],
    hostname: "127.0.0.1",
    port: 0,
    heartbeatRate: 60,
    heartbeatTimeout: 5,
    handshakeTimeout: 5,
    ...options,
  });
}

/** Polls `condition` until it holds or `timeoutMs` passes. */
export async function waitFor(
  condition: () => boolean,
  what = "condition",
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Captures every LogTape record of the `iot-manager` category for the duration of a test. */
export class LogCapture implements AsyncDisposable {
  readonly records: LogRecord[] = [];

  /** Starts capturing (replaces any LogTape configuration). */
  static async start(): Promise<LogCapture> {
    const capture = new LogCapture();
    await configure({
      reset: true,
      sinks: { capture: (record) => capture.records.push(record) },
      loggers: [
        { category: ["iot-manager"], lowestLevel: "debug", sinks: ["capture"] },
        { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
      ],
    });
    return capture;
  }

  /** Records whose properties include every given key/value. */
  matching(properties: Record<string, unknown>): LogRecord[] {
    return this.records.filter((record) =>
      Object.entries(properties).every(([key, value]) => record.properties[key] === value)
    );
  }

  /** Waits until a record with these properties has been logged, and returns it. */
  async waitFor(properties: Record<string, unknown>): Promise<LogRecord> {
    await waitFor(
      () => this.matching(properties).length > 0,
      `a log record with ${JSON.stringify(properties)}`,
    );
    return this.matching(properties)[0];
  }

  /** Renders a record's message as text. */
  static text(record: LogRecord): string {
    return record.message.map((part) => typeof part === "string" ? part : String(part)).join("");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await reset();
  }
}

/** A device on a raw socket: the test controls every byte it sends. */
export class RawDevice implements AsyncDisposable {
  readonly conn: Deno.Conn;
  #pending: Uint8Array = new Uint8Array(0);
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Connects to a manager, plain or with the test CA. */
  static async connect(port: number, options: { tls?: boolean } = {}): Promise<RawDevice> {
    const conn = options.tls
      ? await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [tlsFiles.ca] })
      : await Deno.connect({ hostname: "127.0.0.1", port });
    return new RawDevice(conn);
  }

  /** Writes all of `data`. */
  async write(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    while (bytes.length > 0) bytes = bytes.subarray(await this.conn.write(bytes));
  }

  /** Reads exactly `count` bytes, failing after `timeoutMs` or on end of stream. */
  async readBytes(count: number, timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.#pending.length < count) {
      if (this.#eof) throw new Error(`stream ended after ${this.#pending.length}/${count} bytes`);
      if (Date.now() > deadline) throw new Error(`no ${count} bytes within ${timeoutMs} ms`);
      await this.#fill(deadline);
    }
    const out = this.#pending.slice(0, count);
    this.#pending = this.#pending.subarray(count);
    return out;
  }

  /** Reads whatever arrives next (at least one byte). */
  async readSome(timeoutMs = 10_000): Promise<Uint8Array> {
    if (this.#pending.length === 0) await this.#fill(Date.now() + timeoutMs);
    if (this.#pending.length === 0) throw new Error("stream ended");
    const out = this.#pending.slice();
    this.#pending = new Uint8Array(0);
    return out;
  }

  /** Reads until the given text has arrived; returns everything up to and including it. */
  async readUntil(text: string, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const decoder = new TextDecoder();
    while (true) {
      const seen = decoder.decode(this.#pending);
      const at = seen.indexOf(text);
      if (at >= 0) {
        const upTo = new TextEncoder().encode(seen.slice(0, at + text.length)).length;
        const out = this.#pending.slice(0, upTo);
        this.#pending = this.#pending.subarray(upTo);
        return decoder.decode(out);
      }
      if (this.#eof) throw new Error(`stream ended before ${JSON.stringify(text)}; got ${seen}`);
      if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(text)}; got ${seen}`);
      await this.#fill(deadline);
    }
  }

  /** Reads one mode-2 frame. */
  async readFrame(timeoutMs = 10_000): Promise<{ type: FrameTypeValue; payload: Uint8Array }> {
    const header = await this.readBytes(5, timeoutMs);
    const length = new DataView(header.buffer).getUint32(1);
    const payload = await this.readBytes(length, timeoutMs);
    return { type: header[0] as FrameTypeValue, payload };
  }

  /** Reads mode-2 frames until one of `type` arrives, answering heartbeats on the way. */
  async readFrameOf(type: FrameTypeValue, timeoutMs = 10_000): Promise<Uint8Array> {
    while (true) {
      const frame = await this.readFrame(timeoutMs);
      if (frame.type === type) return frame.payload;
      if (frame.type === FrameType.HEARTBEAT) await this.write(encodeFrame(FrameType.BEAT));
    }
  }

  /** Reads until the manager closes the connection; returns everything that arrived. */
  async readToEnd(timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#eof) {
      if (Date.now() > deadline) throw new Error(`connection still open after ${timeoutMs} ms`);
      await this.#fill(deadline);
    }
    const out = this.#pending;
    this.#pending = new Uint8Array(0);
    return out;
  }

  /** Closes the socket (idempotent). */
  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  async #fill(deadline: number): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) =>
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()))
    );
    const read = this.conn.read(buffer).catch(() => null);
    const result = await Promise.race([read, timeout]);
    clearTimeout(timer);
    if (result === "timeout") {
      // Leave no pending read behind: close, and let the caller see the failure.
      this.close();
      await read;
      throw new Error("read timed out");
    }
    if (result === null) {
      this.#eof = true;
      return;
    }
    const merged = new Uint8Array(this.#pending.length + result);
    merged.set(this.#pending);
    merged.set(buffer.subarray(0, result), this.#pending.length);
    this.#pending = merged;
  }
}

/** Connects a device and completes the handshake in `mode`; returns it once the manager sees it. */
export async function connectDevice(
  manager: Manager,
  options: {
    mode?: ProtocolMode;
    type?: string;
    uuid?: string;
    data?: Record<string, unknown>;
    tls?: boolean;
  } = {},
): Promise<RawDevice & { uuid: string }> {
  const uuid = options.uuid ?? crypto.randomUUID();
  const device = await RawDevice.connect(manager.port, { tls: options.tls });
  const getinfo = await device.readBytes(1);
  if (getinfo[0] !== 0x01) throw new Error(`expected getinfo 0x01, got ${getinfo[0]}`);
  const mode = options.mode ?? 1;
  await device.write(
    encodeHandshake({ uuid, type: options.type ?? "light", data: options.data ?? {} }, mode),
  );
  if (mode === 2) await device.readFrameOf(FrameType.WELCOME);
  await waitFor(() => manager.get(uuid) !== undefined, `device ${uuid} registered`);
  return Object.assign(device, { uuid });
}

/** Decodes a stream of mode-2 frames completely (for assertions). */
export function decodeFrames(bytes: Uint8Array): { type: number; payload: Uint8Array }[] {
  const frames: { type: number; payload: Uint8Array }[] = [];
  new FrameDecoder(1 << 20).push(bytes, (type, payload) => frames.push({ type, payload }));
  return frames;
}

/** Cuts `data` at the given points (taken modulo its length + 1): any split of a stream into reads. */
export function splitAt(data: Uint8Array, points: readonly number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (data.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let last = 0;
  for (const point of at) {
    parts.push(data.slice(last, point));
    last = point;
  }
  parts.push(data.slice(last));
  return parts;
}

/** UTF-8 helpers. */
export const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
export const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);

/** A free loopback port (bound, read, released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A real redis-server on a free loopback port, without persistence; restartable. */
export class RedisServer implements AsyncDisposable {
  readonly port: number = freePort();
  #process: Deno.ChildProcess | null = null;

  /** The URL clients connect to. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server and waits until it accepts connections. */
  static async start(): Promise<RedisServer> {
    const server = new RedisServer();
    await server.restart();
    return server;
  }

  /** Starts the server (again) on the same port, empty. */
  async restart(): Promise<void> {
    await this.stop();
    this.#process = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(this.port);
  }

  /** Kills the server (the data goes with it). */
  async stop(): Promise<void> {
    if (!this.#process) return;
    this.#process.kill("SIGKILL");
    await this.#process.status;
    this.#process = null;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Waits until something accepts TCP connections on `port`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Open descriptors of this process (`/proc/self/fd`). */
export function openDescriptors(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

/**
 * Established TCP sockets on loopback touching `port` (`/proc/net/tcp`): `local`
 * counts the server's ends (local port = `port`), `remote` the clients' ends.
 */
export function establishedSockets(port: number): { local: number; remote: number } {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let local = 0;
  let remote = 0;
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== "01") continue; // 01: ESTABLISHED
    if (fields[1].endsWith(`:${hex}`)) local++;
    if (fields[2].endsWith(`:${hex}`)) remote++;
  }
  return { local, remote };
}
