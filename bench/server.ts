/**
 * The server side of the bench, run as its own process by `bench/main.ts`:
 * either the real {@linkcode Manager}, or a bare Deno TCP server that writes
 * the same bytes to the same sockets with no protocol, no registry and no
 * handlers (the runtime's limit). It obeys commands on stdin (see
 * `control.ts`) and never prints anything else to stdout.
 *
 * Run it with `--v8-flags=--expose-gc` so memory is measured after a full GC.
 *
 * @module
 */

import { Manager, type ProtocolMode } from "@iot-manager/core";
import { encodeMessage } from "@iot-manager/core/protocol";
import { type CommandHandler, configureChildLogs, serveCommands } from "./control.ts";
import { benchPayload, readStamp, STAMP_MARK, wallClock } from "./wire.ts";

/** How the bench starts a server process (passed as one JSON argument). */
export interface ServerConfig {
  readonly target: "manager" | "bare";
  /** PEM files to listen with TLS. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Manager only: seconds between heartbeat rounds. */
  readonly heartbeatRate?: number;
  /** Manager only: seconds a device has to answer. */
  readonly heartbeatTimeout?: number;
  /** Manager only: its `mode1ReadSize` option (bytes); the default when absent. */
  readonly mode1ReadSize?: number;
  /** Bare only: bytes of each socket's read buffer. */
  readonly readBufferSize?: number;
  /**
   * Manager only: absolute path of the `mod.ts` to load the `Manager` from (another
   * revision's, `bench --compare`); the working tree's when absent.
   */
  readonly module?: string;
  /** Manager only: a directory the `heapSnapshot` command may write to (`bench/memory_profile.ts`). */
  readonly snapshotDir?: string;
  /** A directory for V8's CPU profile of the whole process, written when it exits. */
  readonly cpuProfileDir?: string;
  /** Manager only: the port (default 0: any) and whether it is shared (`bench --scale`). */
  readonly port?: number;
  readonly reusePort?: boolean;
  /** Manager only: join a cluster through `RedisAdapter` (`bench --cluster`). */
  readonly cluster?: {
    readonly url: string;
    readonly prefix: string;
    readonly nodeTtl: number;
    readonly replyTimeout?: number;
  };
}

/** What `info` answers. */
export interface ServerInfo {
  readonly pid: number;
  readonly port: number;
}

/**
 * What the send commands answer: when the first call started and the last
 * returned, and (manager only) the least and most devices one call reached.
 */
export interface SendTiming {
  readonly startedAt: number;
  readonly returnedAt: number;
  readonly reachedMin?: number;
  readonly reachedMax?: number;
}

/** Keeps the least and most of the counts the send calls resolve with. */
class Reached {
  min = Infinity;
  max = -Infinity;
  add(count: number): void {
    if (count < this.min) this.min = count;
    if (count > this.max) this.max = count;
  }
  timing(startedAt: number): SendTiming {
    return { startedAt, returnedAt: wallClock(), reachedMin: this.min, reachedMax: this.max };
  }
}

/** What `inboundDone` answers. */
export interface InboundResult {
  readonly doneAt: number;
  readonly messages: number;
  readonly bytes: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Memory after full collections, so only live memory counts. */
async function settledMemory(): Promise<Deno.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Deno.memoryUsage();
}

const payload = benchPayload();

/**
 * V8's sampling heap profiler over `node:inspector`, with objects the GC has
 * already collected kept in the profile: what a phase allocated, not only
 * what it left alive.
 */
const allocationSampler = {
  session: null as import("node:inspector").Session | null,
  async post(method: string, params: object = {}): Promise<unknown> {
    return await new Promise((resolve, reject) =>
      this.session!.post(method, params, (error, result) => error ? reject(error) : resolve(result))
    );
  },
  async start(): Promise<void> {
    const { Session } = await import("node:inspector");
    this.session = new Session();
    this.session.connect();
    await this.post("HeapProfiler.enable");
    await this.post("HeapProfiler.startSampling", {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  },
  async stop(): Promise<[string, number][]> {
    type Node = {
      callFrame: { functionName: string; url: string; lineNumber: number };
      selfSize: number;
      children: Node[];
    };
    const { profile } = await this.post("HeapProfiler.stopSampling") as { profile: { head: Node } };
    this.session!.disconnect();
    this.session = null;
    const totals = new Map<string, number>();
    const walk = (node: Node) => {
      const { functionName, url, lineNumber } = node.callFrame;
      const key = `${functionName || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${
        lineNumber + 1
      }`;
      totals.set(key, (totals.get(key) ?? 0) + node.selfSize);
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    return [...totals].sort((a, b) => b[1] - a[1]).slice(0, 40);
  },
};

/** The real manager, with a `for await` consumer counting what devices send. */
async function managerCommands(config: ServerConfig): Promise<Record<string, CommandHandler>> {
  // Imported only when clustering, so the other runs never load the Redis client.
  const cluster = config.cluster
    ? new (await import("@iot-manager/core/redis")).RedisAdapter(config.cluster)
    : undefined;
  const { Manager: Loaded } = config.module
    ? await import(new URL(config.module, "file:///").href) as { Manager: typeof Manager }
    : { Manager };
  const manager = await Loaded.listen({
    validTypes: ["light", "lock"],
    hostname: "127.0.0.1",
    port: config.port ?? 0,
    reusePort: config.reusePort,
    mode1ReadSize: config.mode1ReadSize,
    tls: config.tls,
    heartbeatRate: config.heartbeatRate ?? 3600,
    heartbeatTimeout: config.heartbeatTimeout ?? 15,
    cluster,
  });
  const disconnects: Record<string, number> = {};
  manager.on("disconnect", (_client, end) => {
    disconnects[end.reason] = (disconnects[end.reason] ?? 0) + 1;
  });

  let inboundBytes = 0;
  let inboundMessages = 0;
  let inboundTarget = Infinity;
  let inboundDone = Promise.withResolvers<number>();
  const latencySamples: number[] = [];
  const consumer = (async () => {
    for await (const message of manager.messages()) {
      const data = message.data;
      if (data[0] === STAMP_MARK) {
        latencySamples.push(wallClock() - readStamp(data));
        continue;
      }
      inboundMessages++;
      inboundBytes += data.length;
      if (inboundBytes >= inboundTarget) {
        inboundTarget = Infinity;
        inboundDone.resolve(wallClock());
      }
    }
  })();

  const uuids = (): string[] => manager.getClientData().map((info) => info.uuid);
  return {
    info: (): ServerInfo => ({ pid: Deno.pid, port: manager.port }),
    memory: settledMemory,
    /** Starts V8's sampling heap profiler, garbage included (bench/memory_profile.ts --allocations). */
    allocationsStart: () => allocationSampler.start(),
    /** Stops it; answers bytes allocated by function (`name file:line`), largest first. */
    allocationsStop: () => allocationSampler.stop(),
    /** Writes a V8 heap snapshot to `path` (bench/memory_profile.ts); answers the path. */
    heapSnapshot: async ({ path }) => {
      await settledMemory();
      return (await import("node:v8")).writeHeapSnapshot(String(path));
    },
    size: () => manager.size,
    /** Devices listed by `getClientData()`: with a cluster, every node's. */
    clusterSize: () => manager.getClientData().length,
    time: wallClock,
    /** `count` calls, each awaited before the next, or with `concurrent` all issued at once. */
    sendAll: async ({ count, concurrent }): Promise<SendTiming> => {
      const reached = new Reached();
      const startedAt = wallClock();
      if (concurrent === true) {
        const calls = Array.from({ length: Number(count) }, () => manager.sendAll(payload));
        for (const result of await Promise.all(calls)) reached.add(result);
      } else {
        for (let i = 0; i < Number(count); i++) reached.add(await manager.sendAll(payload));
      }
      return reached.timing(startedAt);
    },
    /**
     * `count` calls of `sendAll(payload, { ack: true, timeout })`, all issued
     * at once; answers when the last report is in, with the least and most
     * devices a call had acknowledged. A device that did not acknowledge is an error.
     */
    sendAllAcked: async ({ count, timeout }): Promise<SendTiming> => {
      const options = { ack: true, timeout: Number(timeout) } as const;
      const reached = new Reached();
      const startedAt = wallClock();
      const calls = Array.from({ length: Number(count) }, () => manager.sendAll(payload, options));
      const reports = await Promise.all(calls);
      const returnedAt = wallClock();
      const reasons: Record<string, number> = {};
      for (const report of reports) {
        reached.add(report.acknowledged);
        for (const { reason } of report.failed) reasons[reason] = (reasons[reason] ?? 0) + 1;
      }
      if (Object.keys(reasons).length > 0) {
        throw new Error(`deliveries not acknowledged, by reason: ${JSON.stringify(reasons)}`);
      }
      return { startedAt, returnedAt, reachedMin: reached.min, reachedMax: reached.max };
    },
    sendType: async ({ count, type }): Promise<SendTiming> => {
      const startedAt = wallClock();
      for (let i = 0; i < Number(count); i++) await manager.sendType(String(type), payload);
      return { startedAt, returnedAt: wallClock() };
    },
    /** `send` to each of `uuids` (default: every device `getClientData()` lists) in turn. */
    sendEach: async ({ rounds, uuids: given }): Promise<SendTiming> => {
      const targets = Array.isArray(given) ? given.map(String) : uuids();
      const reached = new Reached();
      const startedAt = wallClock();
      for (let round = 0; round < Number(rounds); round++) {
        for (const uuid of targets) reached.add(await manager.send(uuid, payload));
      }
      return reached.timing(startedAt);
    },
    send: async ({ uuid }): Promise<SendTiming> => {
      const startedAt = wallClock();
      const reached = await manager.send(String(uuid), payload);
      return { startedAt, returnedAt: wallClock(), reachedMin: reached, reachedMax: reached };
    },
    inbound: ({ bytes }) => {
      inboundBytes = 0;
      inboundMessages = 0;
      inboundDone = Promise.withResolvers<number>();
      inboundTarget = Number(bytes);
    },
    inboundDone: async (): Promise<InboundResult> => {
      const doneAt = await inboundDone.promise;
      return { doneAt, messages: inboundMessages, bytes: inboundBytes };
    },
    latencySamples: () => latencySamples.splice(0),
    disconnects: () => {
      const taken = { ...disconnects };
      for (const reason of Object.keys(disconnects)) delete disconnects[reason];
      return taken;
    },
    close: async () => {
      await manager.close();
      await consumer;
    },
  };
}

/** One accepted socket of the bare server and its write state. */
class BareSocket {
  chunks: Uint8Array[] = [];
  writing = false;
  constructor(readonly conn: Deno.Conn) {}
}

/**
 * The runtime's limit: accept, hold, and write. Each socket has one write in
 * flight at most and what is queued meanwhile goes out in the next write, the
 * least any server can do with `Deno.Conn` without knowing the future.
 */
function bareCommands(config: ServerConfig): Record<string, CommandHandler> {
  const listener = config.tls
    ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...config.tls })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sockets = new Set<BareSocket>();
  const readBufferSize = config.readBufferSize ?? 64;
  let writeErrors = 0;

  const hold = async (socket: BareSocket): Promise<void> => {
    const buffer = new Uint8Array(readBufferSize);
    try {
      while (await socket.conn.read(buffer) !== null) { /* no protocol: input is ignored */ }
    } catch { /* reset by the peer */ }
    sockets.delete(socket);
    try {
      socket.conn.close();
    } catch { /* already closed */ }
  };
  const pump = async (socket: BareSocket): Promise<void> => {
    socket.writing = true;
    try {
      while (socket.chunks.length > 0) {
        const batch = socket.chunks.length === 1 ? socket.chunks[0] : concat(socket.chunks);
        socket.chunks = [];
        let offset = 0;
        while (offset < batch.length) offset += await socket.conn.write(batch.subarray(offset));
      }
    } catch {
      writeErrors++;
    } finally {
      socket.writing = false;
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
      const socket = new BareSocket(conn);
      sockets.add(socket);
      hold(socket);
    }
  })().catch(() => {});

  return {
    info: (): ServerInfo => ({ pid: Deno.pid, port: (listener.addr as Deno.NetAddr).port }),
    memory: settledMemory,
    heapSnapshot: async ({ path }) => {
      await settledMemory();
      return (await import("node:v8")).writeHeapSnapshot(String(path));
    },
    size: () => sockets.size,
    time: wallClock,
    sendAll: ({ count, mode }): SendTiming => {
      const bytes = encodeMessage(payload, Number(mode) as ProtocolMode);
      const startedAt = wallClock();
      for (let i = 0; i < Number(count); i++) {
        for (const socket of sockets) {
          socket.chunks.push(bytes);
          if (!socket.writing) pump(socket);
        }
      }
      return { startedAt, returnedAt: wallClock() };
    },
    disconnects: () => ({ writeErrors }),
    close: async () => {
      listener.close();
      for (const socket of sockets) {
        try {
          socket.conn.close();
        } catch { /* already closed */ }
      }
      await accepting;
    },
  };
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

if (import.meta.main) {
  await configureChildLogs();
  const config = JSON.parse(Deno.args[0]) as ServerConfig;
  const handlers = config.target === "manager"
    ? await managerCommands(config)
    : bareCommands(config);
  await serveCommands(handlers);
  Deno.exit(0);
}
