/**
 * What the manager and the bare Deno server are measured with alike, written
 * once: a `server.ts` process, the device fleet connected to it (timed, with
 * the memory it costs), and the broadcast phases. {@linkcode MANAGER} and
 * {@linkcode BARE} say what differs.
 *
 * @module
 */

import type { ServerProcess } from "../control.ts";
import { type FanOut, type Latency, type MemoryFigures, memoryOf } from "../figures.ts";
import { DeviceFleet } from "../load.ts";
import {
  CONNECT_TIMEOUT_MS,
  DELIVERY_TIMEOUT_MS,
  type Scenario,
  type Settings,
  startServer,
  timeBroadcasts,
  untilSize,
  warmUpConnections,
} from "../phases.ts";
import type { SendTiming, ServerConfig, ServerInfo } from "../server.ts";
import { wallClock } from "../wire.ts";

/** One of the two `server.ts` targets, and what sets it apart in the phases they share. */
export interface DenoServer {
  readonly target: ServerConfig["target"];
  /** The process's name in errors. */
  readonly name: string;
  /**
   * Devices answer the manager's handshake, and the server reports who left
   * and holds exactly the devices admitted; the bare server only accepts
   * sockets and counts them.
   */
  readonly handshake: boolean;
  /** A burst of `sendAll`, after its number of calls, in timeouts. */
  readonly broadcasts: string;
}

/** The real `Manager`. */
export const MANAGER: DenoServer = {
  target: "manager",
  name: "manager",
  handshake: true,
  broadcasts: "broadcasts",
};

/** The bare Deno server writing the same bytes: the runtime's limit. */
export const BARE: DenoServer = {
  target: "bare",
  name: "bare server",
  handshake: false,
  broadcasts: "bare broadcasts",
};

/** A server process and the scenario's fleet on it; disposing closes the fleet, then the server. */
export interface Connected extends AsyncDisposable {
  readonly server: ServerProcess;
  readonly pid: number;
  readonly fleet: DeviceFleet;
  /** Handshakes (manager) or accepts (bare server) per second while the fleet connected. */
  readonly connectsPerSecond: number;
}

/** How {@linkcode connect} starts the server. */
export interface ConnectOptions {
  /** The process's name, if not the system's. */
  readonly name?: string;
  /** Settings besides the target and TLS (heartbeats). */
  readonly config?: Omit<ServerConfig, "target" | "tls">;
  /** The devices use acknowledged delivery (mode 2, manager only): see {@linkcode DeviceFleet}. */
  readonly acks?: boolean;
}

/**
 * Starts the server and connects the scenario's fleet to it, once the server
 * holds every device.
 */
export async function connect(
  system: DenoServer,
  scenario: Scenario,
  settings: Settings,
  options: ConnectOptions = {},
): Promise<Connected> {
  const [connected] = await open(system, scenario, settings, options, () => Promise.resolve());
  return connected;
}

/**
 * Starts the server, warms its code up with throwaway connections, then
 * connects the scenario's fleet and measures what it costs in memory.
 */
export async function connectWarm(
  system: DenoServer,
  scenario: Scenario,
  settings: Settings,
  options: Omit<ConnectOptions, "acks"> = {},
): Promise<Connected & { readonly memory: MemoryFigures }> {
  await using stack = new AsyncDisposableStack();
  const [connected, idle] = await open(
    system,
    scenario,
    settings,
    options,
    async (server, port) => {
      await warmUpConnections(
        () => fleetOf(system, scenario, settings, port),
        settings,
        () => server.call<number>("size"),
      );
      if (system.handshake) await server.call("disconnects"); // forget the warm-up devices leaving
      return await server.call<Deno.MemoryUsage>("memory");
    },
  );
  stack.use(connected);
  const loaded = await connected.server.call<Deno.MemoryUsage>("memory");
  stack.move();
  return { ...connected, memory: memoryOf(idle, loaded, scenario.devices) };
}

/** The broadcast phases: `sendAll` to every device, in bursts and one at a time. */
export async function timeSendAll(
  system: DenoServer,
  { server, pid, fleet }: Connected,
  scenario: Scenario,
  settings: Settings,
): Promise<{ fanOut: FanOut; latency: Latency }> {
  return await timeBroadcasts(fleet, [pid], {
    // The bare server encodes the frames itself, for the scenario's mode; the manager ignores it.
    send: async (count) =>
      (await server.call<SendTiming>(
        "sendAll",
        { count, mode: scenario.mode },
        DELIVERY_TIMEOUT_MS,
      )).startedAt,
    warmUp: "warm-up",
    burst: system.broadcasts,
  }, settings);
}

/** The scenario's devices, not yet connected, for the server on `port`. */
function fleetOf(
  system: DenoServer,
  scenario: Scenario,
  settings: Settings,
  port: number,
  acks = false,
): DeviceFleet {
  return new DeviceFleet(
    { port, caCerts: scenario.tls ? [settings.tls.ca] : undefined },
    { mode: scenario.mode, handshake: system.handshake, acks },
  );
}

/** Starts the server, runs `beforeConnecting`, connects the fleet; returns both with its result. */
async function open<T>(
  system: DenoServer,
  scenario: Scenario,
  settings: Settings,
  options: ConnectOptions,
  beforeConnecting: (server: ServerProcess, port: number) => Promise<T>,
): Promise<[Connected, T]> {
  const n = scenario.devices;
  await using stack = new AsyncDisposableStack();
  const server = stack.use(startServer(options.name ?? system.name, {
    target: system.target,
    tls: scenario.tls ? { cert: settings.tls.cert, key: settings.tls.key } : undefined,
    ...options.config,
  }));
  const { pid, port } = await server.call<ServerInfo>("info");
  const before = await beforeConnecting(server, port);
  const fleet = stack.use(fleetOf(system, scenario, settings, port, options.acks));
  const timing = await fleet.connect(n, {
    concurrency: settings.connectConcurrency,
    timeoutMs: CONNECT_TIMEOUT_MS,
  });
  // A mode-2 device's WELCOME says the manager counted it; otherwise ask until it has.
  if (!(system.handshake && scenario.mode === 2)) await untilSize(server, n, CONNECT_TIMEOUT_MS);
  const seconds = (wallClock() - timing.startedAt) / 1000;
  if (system.handshake) {
    const size = await server.call<number>("size");
    if (size !== n) throw new Error(`the manager holds ${size} devices, expected ${n}`);
  }
  const owned = stack.move();
  const connected = {
    server,
    pid,
    fleet,
    connectsPerSecond: n / seconds,
    [Symbol.asyncDispose]: () => owned.disposeAsync(),
  };
  return [connected, before];
}
