/**
 * The server process of `deno task bench --segmentation`: a `Manager` loaded
 * from the `mod.ts` it is given (this tree's, or a worktree of an older
 * commit's), or a bare Deno TCP server that writes the same one-byte `getinfo`
 * and then only reads and discards, with the manager's 4096-byte handshake read
 * buffer (the runtime's cost of the same reads). It obeys commands on stdin (see
 * `control.ts`) and never prints anything else to stdout.
 *
 * ```sh
 * deno run --config deno.json --allow-net=127.0.0.1 --allow-read bench/handshake_server.ts \
 *   '{"target":"manager","module":"/tmp/before/mod.ts"}'
 * ```
 *
 * @module
 */

import { type CommandHandler, configureChildLogs, serveCommands } from "./control.ts";

/** How the bench starts a handshake server (passed as one JSON argument). */
export interface HandshakeServerConfig {
  readonly target: "manager" | "bare";
  /** Manager only: absolute path of the `mod.ts` to load the `Manager` from. */
  readonly module?: string;
  /** Manager only: its `maxHandshakeSize`. */
  readonly maxHandshakeSize?: number;
}

/** What `info` answers. */
export interface HandshakeServerInfo {
  readonly pid: number;
  readonly port: number;
}

/**
 * What `counts` answers (and resets): connections that completed, what ended
 * them, and socket reads. The manager counts `connect` events and
 * `disconnect` reasons; the bare server counts sockets read to their end.
 */
export interface HandshakeCounts {
  readonly completed: number;
  readonly ends: Readonly<Record<string, number>>;
  /** Reads on any socket of the process that returned bytes. */
  readonly reads: number;
}

/** The device type every bench device announces. */
export const DEVICE_TYPE = "light";

/** The one byte the manager sends a new connection (mode-1 `getinfo`). */
export const GETINFO = 0x01;

/** The manager's handshake read buffer (`lib/admission.ts`), which the bare server copies. */
export const READ_SIZE = 4096;

type ManagerModule = typeof import("@iot-manager/core");

/**
 * Counts the reads that return bytes on every `Deno.Conn` of this process, by
 * wrapping `read` on the prototype all TCP connections share (found on a
 * throwaway loopback pair). The manager's code is not touched; both servers
 * pay the same wrapper, one extra promise per read.
 */
async function countReads(): Promise<{ take: () => number }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const accepted = await listener.accept();
  let prototype = Object.getPrototypeOf(accepted);
  while (prototype && !Object.hasOwn(prototype, "read")) {
    prototype = Object.getPrototypeOf(prototype);
  }
  for (const closable of [client, accepted, listener]) closable.close();
  if (!prototype) throw new Error("no read method on a Deno.Conn prototype");
  const read = prototype.read as Deno.Conn["read"];
  let reads = 0;
  prototype.read = async function (this: Deno.Conn, buffer: Uint8Array) {
    const count = await read.call(this, buffer);
    if (count !== null && count > 0) reads++;
    return count;
  };
  return {
    take: () => {
      const taken = reads;
      reads = 0;
      return taken;
    },
  };
}

/** The real manager, with heartbeats out of the way: only handshakes and disconnects run. */
async function managerCommands(
  config: HandshakeServerConfig,
  reads: { take: () => number },
): Promise<Record<string, CommandHandler>> {
  if (!config.module) throw new Error("a manager target needs the path of its mod.ts");
  const { Manager } = await import(new URL(config.module, "file:///").href) as ManagerModule;
  const manager = await Manager.listen({
    validTypes: [DEVICE_TYPE],
    hostname: "127.0.0.1",
    port: 0,
    maxHandshakeSize: config.maxHandshakeSize,
    heartbeatRate: 3600,
  });
  let completed = 0;
  let ends: Record<string, number> = {};
  manager.on("connect", () => {
    completed++;
  });
  manager.on("disconnect", (_client, end) => {
    ends[end.reason] = (ends[end.reason] ?? 0) + 1;
  });
  return {
    info: (): HandshakeServerInfo => ({ pid: Deno.pid, port: manager.port }),
    counts: (): HandshakeCounts => {
      const taken = { completed, ends, reads: reads.take() };
      completed = 0;
      ends = {};
      return taken;
    },
    close: () => manager.close(),
  };
}

/** Accept, write `getinfo`, read to the end into one 4096-byte buffer, close. */
function bareCommands(reads: { take: () => number }): Record<string, CommandHandler> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sockets = new Set<Deno.TcpConn>();
  const getinfo = new Uint8Array([GETINFO]);
  let completed = 0;
  let ends: Record<string, number> = {};
  const end = (reason: string) => ends[reason] = (ends[reason] ?? 0) + 1;

  const serve = async (conn: Deno.TcpConn): Promise<void> => {
    const buffer = new Uint8Array(READ_SIZE);
    try {
      conn.setNoDelay(true);
      await conn.write(getinfo);
      while (await conn.read(buffer) !== null) { /* discarded */ }
      completed++;
      end("closed");
    } catch (error) {
      end((error as Error).name);
    } finally {
      sockets.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      sockets.add(conn);
      serve(conn);
    }
  })().catch(() => {});

  return {
    info: (): HandshakeServerInfo => ({
      pid: Deno.pid,
      port: (listener.addr as Deno.NetAddr).port,
    }),
    counts: (): HandshakeCounts => {
      const taken = { completed, ends, reads: reads.take() };
      completed = 0;
      ends = {};
      return taken;
    },
    close: async () => {
      listener.close();
      for (const conn of sockets) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await accepting;
    },
  };
}

if (import.meta.main) {
  await configureChildLogs();
  const config = JSON.parse(Deno.args[0]) as HandshakeServerConfig;
  const reads = await countReads();
  const handlers = config.target === "manager"
    ? await managerCommands(config, reads)
    : bareCommands(reads);
  await serveCommands(handlers);
  Deno.exit(0);
}
