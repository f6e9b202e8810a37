/**
 * Who plays what: the run's lights and locks, interleaved, then the chaos
 * roles (malformed handshake, silent, slow reader) and the protocol modes
 * handed out by a seeded shuffle, so the same seed gives the same fleet.
 *
 * @module
 */

import type { FakeType } from "./fake_devices.ts";
import { type Role, SimDevice } from "./fleet.ts";
import type { SimulationOptions } from "./options.ts";
import { shuffled } from "./stats.ts";

/** The fleet of one run. */
export interface Cast {
  /** The simulated devices, in the interleaved order. */
  readonly sims: SimDevice[];
  /** Connections that send a malformed handshake instead of being a device. */
  readonly malformed: number;
}

/**
 * Casts the fleet: `options.lights` lights and `options.locks` locks, with
 * the chaos shares and the mode-1 share drawn from `random` (two shuffles, in
 * that order).
 *
 * @example
 * ```ts
 * import { defaultOptions } from "./options.ts";
 * import { castFleet } from "./roles.ts";
 * import { seededRandom } from "./stats.ts";
 * const options = { ...defaultOptions, lights: 4, locks: 2, mode1Share: 0.5 };
 * const { sims } = castFleet(options, seededRandom(1));
 * console.log(sims.length, sims.filter((sim) => sim.mode === 1).length); // 6 3
 * ```
 */
export function castFleet(options: SimulationOptions, random: () => number): Cast {
  const total = options.lights + options.locks;
  const malformed = Math.round(total * options.chaos.malformed);
  const types: FakeType[] = [];
  for (let i = 0, lights = 0, locks = 0; i < total; i++) {
    const light = locks >= options.locks ||
      (lights < options.lights && lights * options.locks <= locks * options.lights);
    types.push(light ? "light" : "lock");
    if (light) lights++;
    else locks++;
  }
  const order = shuffled(types.map((_, i) => i), random);
  const roles = new Map<number, Role | "malformed">();
  const counts: [Role | "malformed", number][] = [
    ["malformed", malformed],
    ["silent", Math.round(total * options.chaos.silent)],
    ["slow", Math.round(total * options.chaos.slow)],
  ];
  let at = 0;
  for (const [role, n] of counts) {
    for (let i = 0; i < n && at < order.length; i++) roles.set(order[at++], role);
  }
  const mode1 = new Set(
    shuffled(types.map((_, i) => i), random)
      .slice(0, Math.round(total * options.mode1Share)),
  );
  const sims: SimDevice[] = [];
  for (let i = 0; i < total; i++) {
    const role = roles.get(i) ?? "normal";
    if (role === "malformed") continue;
    sims.push(
      new SimDevice({
        type: types[i],
        mode: mode1.has(i) ? 1 : 2,
        role,
        slowDelay: options.chaos.slowDelay,
        // The restart's devices come back by themselves; otherwise a drop is final.
        reconnect: options.restart === undefined ? undefined : options.reconnect ?? true,
      }),
    );
  }
  return { sims, malformed };
}
