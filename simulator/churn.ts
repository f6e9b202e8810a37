/**
 * Churn (`--churn n`): n times a minute a well-behaved device is closed and,
 * a moment later, connected again under the same UUID. A churned device is no
 * longer undisturbed: the scenario's delivery expectations leave it out, and
 * steady traffic excuses what it had in flight.
 *
 * @module
 */

import type { Manager } from "@iot-manager/core";
import type { Recorder, SimDevice } from "./fleet.ts";
import { sleep, until } from "./wait.ts";

/** What churn needs from the run. */
export interface ChurnContext {
  readonly sims: readonly SimDevice[];
  readonly recorder: Recorder;
  readonly random: () => number;
  /** Connects a device again. */
  readonly start: (sim: SimDevice) => Promise<void>;
  /** The embedded manager, if any: a device counts as back once it lists it. */
  readonly manager: () => Manager | null;
  /** Takes each device just before churn closes it. */
  readonly onChurn: (sim: SimDevice) => void;
  readonly signal?: AbortSignal;
}

/**
 * Churn for one run.
 *
 * @example
 * ```ts ignore
 * const churn = new Churn(context, 120);
 * churn.start();
 * // ... the run ...
 * await churn.stop();
 * console.log(churn.reconnected, "/", churn.cycles);
 * ```
 */
export class Churn {
  /** Devices closed by churn. */
  cycles = 0;
  /** Of them, devices connected again. */
  reconnected = 0;
  readonly #context: ChurnContext;
  readonly #perMinute: number;
  readonly #tasks = new Set<Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** @param perMinute Cycles per minute across the fleet; 0 churns nothing. */
  constructor(context: ChurnContext, perMinute: number) {
    this.#context = context;
    this.#perMinute = perMinute;
  }

  /** Starts churning, when the run asked for it. */
  start(): void {
    if (this.#perMinute > 0) {
      this.#timer = setInterval(() => this.#once(), 60_000 / this.#perMinute);
    }
  }

  /** Stops starting cycles; resolves once the cycles under way have finished. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all(this.#tasks);
  }

  #once(): void {
    const { sims, recorder, random, signal } = this.#context;
    const candidates = sims.filter((sim) =>
      sim.role === "normal" && !sim.churning && sim.device?.connected
    );
    if (candidates.length === 0) return;
    const sim = candidates[Math.floor(random() * candidates.length)];
    sim.churned = true;
    sim.churning = true;
    sim.churnCycles++;
    this.#context.onChurn(sim);
    this.cycles++;
    const task: Promise<void> = (async () => {
      await sim.stop("churn");
      await sleep(50 + random() * 250);
      sim.churning = false;
      if (recorder.shuttingDown) return;
      await this.#context.start(sim);
      // Mode 1 has no acknowledgement: count the device back once the manager lists it.
      const manager = this.#context.manager();
      if (manager) await until(() => manager.get(sim.uuid) !== undefined, 5_000, { signal });
      if (sim.device?.connected) this.reconnected++;
    })().catch((error) => recorder.error(`churn failed: ${String(error)}`))
      .finally(() => this.#tasks.delete(task));
    this.#tasks.add(task);
  }
}
