/**
 * A manager, the dashboard served next to it and, optionally, simulated
 * devices: what `deno task dashboard` runs, and what the browser tests and the
 * dashboard's measurements start.
 *
 * @module
 */

import { ListenError, Manager, type ManagerOptions } from "@iot-manager/core";
import { Dashboard, type DashboardOptions } from "./dashboard.ts";
import { type SimulatedFleet, startFleet } from "./fleet.ts";

/** Options of {@linkcode startDashboard}. */
export interface StackOptions {
  /** Web and manager interface. @default "127.0.0.1" */
  readonly hostname?: string;
  /** Web port; 0 lets the OS pick. @default 8080 */
  readonly port?: number;
  /** Simulated devices to connect (two lights to each lock). @default 0 */
  readonly simulate?: number;
  /** The manager's options; `validTypes` defaults to light and lock, `port` to 8595. */
  readonly manager?: Partial<ManagerOptions>;
  readonly dashboard?: DashboardOptions;
  /** Called once the web server listens. */
  readonly onListen?: (url: string) => void;
}

/** A running dashboard. */
export interface DashboardStack extends AsyncDisposable {
  readonly manager: Manager;
  readonly dashboard: Dashboard;
  readonly fleet: SimulatedFleet;
  /** The page's URL, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  /** Closes the fleet, the dashboard, the web server and the manager, in that order. */
  close(): Promise<void>;
}

/**
 * Starts a manager, the dashboard and `simulate` devices.
 *
 * @throws {ListenError} When the manager's port or the web port cannot be
 *   opened (nothing is left running then).
 * @example
 * ```ts ignore
 * await using stack = await startDashboard({ port: 0, simulate: 50 });
 * console.log(stack.url);
 * ```
 */
export async function startDashboard(options: StackOptions = {}): Promise<DashboardStack> {
  const hostname = options.hostname ?? "127.0.0.1";
  const manager = await Manager.listen({
    validTypes: ["light", "lock"],
    hostname,
    port: 8595,
    ...options.manager,
  });
  const dashboard = new Dashboard(manager, options.dashboard);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port: options.port ?? 8080,
      onListen: ({ hostname, port }) => options.onListen?.(`http://${hostname}:${port}/`),
    }, dashboard.handler);
  } catch (error) {
    await dashboard.close();
    await manager.close();
    throw ListenError.from(error, hostname, options.port ?? 8080);
  }
  const url = `http://${server.addr.hostname}:${server.addr.port}/`;
  let fleet: SimulatedFleet;
  try {
    fleet = await startFleet({
      hostname: manager.hostname,
      port: manager.port,
      count: options.simulate ?? 0,
    });
  } catch (error) {
    await dashboard.close();
    await server.shutdown();
    await manager.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await fleet.close();
      await dashboard.close();
      await server.shutdown();
      await manager.close();
    })();
  return { manager, dashboard, fleet, url, close, [Symbol.asyncDispose]: close };
}
