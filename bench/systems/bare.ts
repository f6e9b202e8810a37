/**
 * The bare Deno server's figures for one scenario: the runtime's limit for
 * accepts, memory per socket, and the same `sendAll` fan-out and latency the
 * manager is measured on (`deno_server.ts`), nothing else.
 *
 * @module
 */

import type { FanOut, Latency, MemoryFigures } from "../figures.ts";
import type { Log, Scenario, Settings } from "../phases.ts";
import { BARE, connectWarm, timeSendAll } from "./deno_server.ts";

/** Figures for the bare Deno server in one scenario. */
export interface BareFigures {
  readonly acceptsPerSecond: number;
  readonly memory: MemoryFigures;
  readonly fanOut: FanOut;
  readonly latency: Latency;
}

/** The bare Deno server: accepts, memory, fan-out and latency. */
export async function measureBare(
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<BareFigures> {
  await using connected = await connectWarm(BARE, scenario, settings);
  const { memory } = connected;
  const { fanOut, latency } = await timeSendAll(BARE, connected, scenario, settings);
  log(
    `bare: ${Math.round(fanOut.perSecond)} deliveries/s, p99 ${latency.p99.toFixed(2)} ms, ` +
      `${Math.round(memory.rssPerDevice)} B/socket`,
  );
  return { acceptsPerSecond: connected.connectsPerSecond, memory, fanOut, latency };
}
