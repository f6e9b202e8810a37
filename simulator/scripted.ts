/**
 * The embedded scenario's scripted traffic, once the fleet is connected:
 * broadcasts (`sendAll`, `sendType`) to every undisturbed device, `send` to
 * single devices, and `request` round trips, each command tagged so its
 * receipt (and answer) can be matched. It records what it sent; the judge
 * (`judge.ts`) checks what arrived.
 *
 * @module
 */

import type { Manager } from "@iot-manager/core";
import type { FakeType } from "./fake_devices.ts";
import type { Recorder, SimDevice } from "./fleet.ts";
import type { BroadcastFigures } from "./judge.ts";
import type { Ledger } from "./ledger.ts";
import { isValidAnswer, type Replies } from "./replies.ts";
import { shuffled } from "./stats.ts";
import { until } from "./wait.ts";

/** Broadcasts the embedded scenario sends, in order. */
const BROADCASTS: readonly { target: "all" | FakeType; command: string }[] = [
  { target: "all", command: "status" },
  { target: "light", command: "on" },
  { target: "light", command: "brightness 40" },
  { target: "lock", command: "lock" },
  { target: "all", command: "status" },
];
const UNICASTS = 20;
const REQUEST_CONCURRENCY = 32;

/** What the scripted traffic needs from the run. */
export interface ScriptedContext {
  readonly manager: Manager;
  readonly sims: readonly SimDevice[];
  readonly recorder: Recorder;
  readonly ledger: Ledger;
  readonly replies: Replies;
  readonly random: () => number;
  /** Request round trips to send (`status` to that many devices, plus one unknown command per type). */
  readonly requests: number;
  readonly signal?: AbortSignal;
}

/**
 * The scripted traffic of one run, played phase by phase.
 *
 * @example
 * ```ts ignore
 * const scripted = new ScriptedTraffic(context);
 * await scripted.broadcast();
 * await scripted.unicast();
 * await scripted.request();
 * console.log(scripted.broadcasts.length); // 5
 * ```
 */
export class ScriptedTraffic {
  /** The broadcasts sent. */
  readonly broadcasts: BroadcastFigures[] = [];
  /** The `send(uuid)`s: to which device, with which tag. */
  readonly unicasts: { readonly device: SimDevice; readonly tag: string }[] = [];
  /** Round trips to undisturbed devices: sent, answered correctly, and their latencies. */
  readonly requests = { sent: 0, answered: 0, latencies: [] as number[] };
  readonly #context: ScriptedContext;

  constructor(context: ScriptedContext) {
    this.#context = context;
  }

  /** Sends each broadcast and waits until every undisturbed device it was for has it. */
  async broadcast(): Promise<void> {
    const { manager, sims, ledger, signal } = this.#context;
    for (const [i, step] of BROADCASTS.entries()) {
      if (signal?.aborted) return;
      const tag = `b${i + 1}`;
      const line = `${step.command} #${tag}\n`;
      const sentAt = performance.now();
      const reached = step.target === "all"
        ? await manager.sendAll(line)
        : await manager.sendType(step.target, line);
      ledger.toDevicesSent += reached;
      this.broadcasts.push({ tag, target: step.target, sentAt });
      const receivers = sims.filter((sim) =>
        sim.stable && (step.target === "all" || sim.type === step.target)
      );
      // A receiver churned since the send may never get it; the report only holds the undisturbed.
      await until(
        () => receivers.every((sim) => !sim.stable || sim.received.has(tag)),
        10_000,
        { signal },
      );
    }
  }

  /** Sends one command each to some undisturbed devices and waits until they have it. */
  async unicast(): Promise<void> {
    const { manager, sims, ledger, random, signal } = this.#context;
    const stable = shuffled(sims.filter((sim) => sim.stable), random);
    for (const [i, sim] of stable.slice(0, UNICASTS).entries()) {
      const tag = `u${i + 1}`;
      const command = sim.type === "lock" ? "unlock" : i % 2 === 0 ? "toggle" : "brightness 70";
      ledger.toDevicesSent += await manager.send(sim.uuid, `${command} #${tag}\n`);
      this.unicasts.push({ device: sim, tag });
    }
    await until(
      () => this.unicasts.every(({ device, tag }) => !device.stable || device.received.has(tag)),
      10_000,
      { signal },
    );
  }

  /** Runs the round trips, a few dozen at a time, and checks each answer. */
  async request(): Promise<void> {
    const { sims, recorder, ledger, replies, random, requests, signal } = this.#context;
    const stable = shuffled(sims.filter((sim) => sim.stable), random);
    const jobs: { sim: SimDevice; command: string; expectError: boolean }[] = stable
      .slice(0, requests)
      .map((sim) => ({ sim, command: "status", expectError: false }));
    for (const type of ["light", "lock"] as const) {
      const sim = stable.find((candidate) => candidate.type === type);
      if (sim && requests > 0) jobs.push({ sim, command: "fly", expectError: true });
    }
    let next = 0;
    const worker = async () => {
      while (next < jobs.length && !signal?.aborted) {
        const index = next++;
        const job = jobs[index];
        // The phase is for undisturbed devices; churn may have taken one since the list was made.
        if (!job.sim.stable) continue;
        const client = job.sim.client;
        if (!job.sim.live || !client) {
          recorder.error(`request ${index}: ${job.sim.uuid} is not connected`);
          continue;
        }
        ledger.toDevicesSent++;
        const tag = `r${index + 1}`;
        const result = await replies.roundTrip(
          client,
          job.command,
          tag,
          10,
          (text) => ledger.countAnswers(client.uuid, text),
        );
        if (!result.ok && !job.sim.stable) continue; // churned mid-request
        this.requests.sent++;
        if (!result.ok) {
          recorder.error(`request ${tag} to ${client.uuid} failed: ${result.error.message}`);
        } else if (!isValidAnswer(job.sim.type, result.reply, job.expectError)) {
          recorder.error(
            `request ${tag} to ${client.uuid}: bad answer ${JSON.stringify(result.reply)}`,
          );
        } else {
          this.requests.answered++;
          this.requests.latencies.push(result.ms);
        }
      }
    };
    await Promise.all(Array.from({ length: REQUEST_CONCURRENCY }, worker));
  }
}
