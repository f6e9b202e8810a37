/**
 * One load-generator process of `deno task bench --scale`: a fleet of mode-2
 * devices from `bench/load.ts`, connected from its own loopback source
 * address, driven over stdin/stdout like the bench's servers (`control.ts`).
 *
 * @module
 */

import { configureChildLogs, serveCommands } from "./control.ts";
import { DeviceFleet } from "./load.ts";

/** How `bench/scale.ts` starts one (one JSON argument). */
export interface ScaleDevicesConfig {
  /** The managers' shared port. */
  readonly port: number;
  /** The loopback address this process connects from, e.g. `127.0.0.11`. */
  readonly localAddress: string;
}

const config: ScaleDevicesConfig = JSON.parse(Deno.args[0]);
await configureChildLogs();
const fleet = new DeviceFleet(
  { port: config.port, localAddress: config.localAddress },
  { mode: 2, handshake: true },
);
let armed: Promise<number> | null = null;

await serveCommands({
  info: () => ({ pid: Deno.pid }),
  /** Opens `count` devices, `concurrency` handshakes at a time. */
  connect: ({ count, concurrency }) =>
    fleet.connect(Number(count), { concurrency: Number(concurrency), timeoutMs: 600_000 }),
  /** Devices still open, devices the server closed, heartbeats answered. */
  status: () => ({
    open: fleet.sockets.filter((socket) => socket.open).length,
    serverClosed: fleet.serverClosed,
    beats: fleet.beats,
  }),
  /** Expects one more message on every open device (answer with `arrived`). */
  arm: () => {
    armed = fleet.expect(1);
    armed.catch(() => {});
  },
  /** The wall-clock time the last device got the message `arm` expected. */
  arrived: () => armed,
  close: async () => {
    await fleet.close();
  },
});
