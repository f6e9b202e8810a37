/**
 * The restart phase: `restart` seconds into the steady phase the manager is
 * closed, a new one listens on the same port `restartDown` seconds later, and
 * the run waits for the fleet to come back by itself, recording when each
 * device did. `restart.ts` measures the return from those times. The desired
 * scenario crosses the restart through two hooks: one just before the close,
 * one once the fleet is back.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Manager } from "@iot-manager/core";
import type { SimDevice } from "./fleet.ts";
import type { RestartFigures } from "./judge.ts";
import type { SimulationOptions } from "./options.ts";
import { sleep, until } from "./wait.ts";

const log = getLogger(["iot-manager", "simulator"]);

/** The library's reconnect defaults, shown in the report when the run does not set them. */
export const LIBRARY_RECONNECT = { initialDelay: 1, maxDelay: 10, jitter: 1 } as const;

/** A restart in progress or done: who should come back, and when each did. */
export interface RestartRecord {
  /** The manager closed for the restart; its `manager-closed` disconnects are expected. */
  readonly closed: Manager;
  /** `performance.now()` when it was closed: the devices lost it. */
  readonly downAt: number;
  /** Devices registered at that moment: the fleet that should come back. */
  readonly fleet: ReadonlySet<SimDevice>;
  /** Devices the new manager registered. */
  readonly back: Set<SimDevice>;
  /** Seconds from the loss to each of those registrations. */
  readonly backAfter: number[];
  /** Seconds `manager.close()` took. */
  closeSeconds: number;
  /** Seconds from the loss until the new manager listened. */
  upAfter: number;
  /** Lines the devices wrote that the closed manager never read. */
  linesLost: number;
}

/** What the restart needs from the run. */
export interface RestartContext {
  readonly options: Pick<SimulationOptions, "restart" | "restartDown" | "reconnect" | "signal">;
  readonly sims: readonly SimDevice[];
  /** The run's manager now. */
  readonly manager: () => Manager | null;
  /** Starts a new manager on `port` and makes it the run's. */
  readonly listen: (port: number) => Promise<Manager>;
  /** Takes the record as the manager closes, so the new one's registrations count as returns. */
  readonly onClose: (record: RestartRecord) => void;
  /** Names the run's phase for the status line and the memory samples. */
  readonly setPhase: (phase: string) => void;
  /** Runs just before the close; devices it takes away are not part of the fleet that must come back. */
  readonly beforeClose?: () => Promise<void>;
  /** Runs once the fleet is back (or the wait for it gave up). */
  readonly afterReturn?: () => Promise<void>;
}

/**
 * Runs the restart: waits `restart` seconds, runs `beforeClose`, closes the
 * manager, starts a new one on the same port `restartDown` seconds after the
 * close, waits until every device that was registered at the close is
 * registered again (or a deadline well past the backoff's longest wait), then
 * runs `afterReturn`.
 *
 * @example
 * ```ts ignore
 * await restartManager({ options, sims, manager: () => manager, listen, onClose, setPhase });
 * ```
 */
export async function restartManager(context: RestartContext): Promise<void> {
  const { restart = 0, restartDown, reconnect, signal } = context.options;
  await sleep(restart * 1000, signal);
  const closed = context.manager();
  if (!closed || signal?.aborted) return;
  context.setPhase("restart");
  await context.beforeClose?.();
  if (signal?.aborted) return;
  const record: RestartRecord = {
    closed,
    downAt: performance.now(),
    fleet: new Set(context.sims.filter((sim) => sim.client?.connected && sim.device?.connected)),
    back: new Set(),
    backAfter: [],
    closeSeconds: 0,
    upAfter: 0,
    linesLost: 0,
  };
  context.onClose(record);
  log.info("Restart: closing the manager with {devices} devices", {
    devices: record.fleet.size,
  });
  await closed.close();
  record.closeSeconds = (performance.now() - record.downAt) / 1000;
  await sleep(Math.max(0, record.downAt + restartDown * 1000 - performance.now()), signal);
  // The closed manager has read all it ever will and no device is connected: the rest is lost.
  for (const sim of context.sims) {
    sim.linesLost = sim.linesSent - sim.linesAtManager;
    record.linesLost += sim.linesLost;
  }
  if (signal?.aborted) return;
  await context.listen(closed.port);
  record.upAfter = (performance.now() - record.downAt) / 1000;
  const maxDelay = reconnect?.maxDelay ?? LIBRARY_RECONNECT.maxDelay;
  const backIn = await until(
    () => record.back.size >= record.fleet.size,
    (2 * maxDelay + 15) * 1000,
    { signal },
  );
  if (!backIn && !signal?.aborted) {
    log.warn("Restart: {missing} devices did not come back", {
      missing: record.fleet.size - record.back.size,
    });
  }
  await context.afterReturn?.();
  context.setPhase("steady");
}

/**
 * The restart's figures for the judge, from its record.
 *
 * @param startedAt `performance.now()` at the run's start.
 * @param options The run's `reconnect`, shown over the library's defaults.
 *
 * @example
 * ```ts ignore
 * const figures = restartFigures(record, started, options);
 * console.log(figures.expected, figures.backAfter.length);
 * ```
 */
export function restartFigures(
  record: RestartRecord,
  startedAt: number,
  options: Pick<SimulationOptions, "reconnect">,
): RestartFigures {
  return {
    closedAt: (record.downAt - startedAt) / 1000,
    closeSeconds: record.closeSeconds,
    upAfter: record.upAfter,
    reconnect: { ...LIBRARY_RECONNECT, ...options.reconnect },
    linesLost: record.linesLost,
    expected: record.fleet.size,
    backAfter: record.backAfter,
  };
}
