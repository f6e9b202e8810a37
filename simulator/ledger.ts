/**
 * The run's books on the manager's side: who the manager registered, the
 * lines it received, what it queued to devices, every disconnect by reason,
 * and whether each drop was one the run asked for (a silent device dropped for
 * heartbeat, a slow reader, churn, the shutdown, a restart) or an unexpected
 * one. Against an external manager the devices' own view of their drops takes
 * the manager's place.
 *
 * @module
 */

import type { Client, ConnectionEnd, Manager } from "@iot-manager/core";
import { commandLines } from "./fake_devices.ts";
import type { Recorder, SimDevice } from "./fleet.ts";
import type { Replies } from "./replies.ts";
import type { RestartRecord } from "./restart_phase.ts";
import { count, type Tally } from "./stats.ts";
import { until } from "./wait.ts";

const decoder = new TextDecoder();

/**
 * Counts what the manager (or, external, the devices) saw happen.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * import { Recorder, SimDevice } from "./fleet.ts";
 * import { Ledger } from "./ledger.ts";
 * import { Replies } from "./replies.ts";
 * import { until } from "./wait.ts";
 * await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 0 });
 * const recorder = new Recorder();
 * const light = new SimDevice({ type: "light", mode: 2, role: "normal", slowDelay: 0 });
 * const ledger = new Ledger([light], recorder, new Replies());
 * ledger.watch(manager);
 * await light.start({ hostname: "127.0.0.1", port: manager.port }, recorder);
 * console.log(await until(() => ledger.everConnected.has(light.uuid), 1000)); // true
 * await light.stop("done");
 * ```
 */
export class Ledger {
  /** Devices registered at least once (embedded) or connected (external), by UUID. */
  readonly everConnected: Set<string> = new Set();
  /** Most devices registered (embedded) or connected (external) at once. */
  peakConnected = 0;
  /** The manager's end reasons. */
  readonly managerEnds: Tally = {};
  /** Answer and telemetry lines the manager received. */
  managerReceived = 0;
  /** Command lines the manager queued to devices. */
  toDevicesSent = 0;
  /** Devices that answer heartbeats but were dropped for a missed one. */
  heartbeatMissed = 0;
  /** Silent devices dropped (embedded: for heartbeat). */
  silentDropped = 0;
  /** Slow readers dropped. */
  slowDropped = 0;
  /** Malformed handshakes the manager rejected. */
  malformedRejected = 0;
  /** The restart, once its manager is closed: the new one's registrations are returns. */
  restart: RestartRecord | null = null;
  readonly #sims: readonly SimDevice[];
  readonly #byUuid = new Map<string, SimDevice>();
  readonly #recorder: Recorder;
  readonly #replies: Replies;

  constructor(sims: readonly SimDevice[], recorder: Recorder, replies: Replies) {
    this.#sims = sims;
    for (const sim of sims) this.#byUuid.set(sim.uuid, sim);
    this.#recorder = recorder;
    this.#replies = replies;
  }

  /** Keeps the books on `manager`: its registrations, messages and disconnects. */
  watch(manager: Manager): void {
    manager.on("connect", (client) => this.#onRegistered(manager, client));
    manager.on("message", (client, data) => this.countAnswers(client.uuid, decoder.decode(data)));
    manager.on("disconnect", (client, end) => this.#onManagerDisconnect(manager, client, end));
  }

  /**
   * External: the device connected (`Device.connect` resolved). `timed`
   * false leaves it out of the handshake latency: the first device, which may
   * have waited for the manager to come up.
   */
  deviceConnected(sim: SimDevice, timed = true): void {
    if (timed) this.#recorder.handshakeMs.push(performance.now() - sim.dialAt);
    this.everConnected.add(sim.uuid);
  }

  /** External: the device-side view of a drop. */
  deviceDropped(sim: SimDevice, end: ConnectionEnd): void {
    if (this.#recorder.shuttingDown || sim.churning) return;
    if (sim.role === "silent") {
      this.silentDropped++;
      return;
    }
    if (sim.role === "slow") {
      this.slowDropped++;
      return;
    }
    if (/no beat/.test(end.message)) this.heartbeatMissed++;
    this.#recorder.unexpectedDisconnect(
      `${sim.type} ${sim.uuid} (mode ${sim.mode}): ${end.reason}: ${end.message}`,
    );
  }

  /** Counts the JSON lines a device sent and settles the round trips they answer; reports anything else. */
  countAnswers(uuid: string, text: string): void {
    const sim = this.#byUuid.get(uuid);
    for (const line of commandLines(text)) {
      if (!line.startsWith("{")) {
        this.#recorder.error(
          `the manager delivered ${
            JSON.stringify(line)
          } from ${uuid} (mode ${sim?.mode}) as a message`,
        );
        continue;
      }
      this.managerReceived++;
      if (sim) sim.linesAtManager++;
      this.#replies.offer(line);
    }
  }

  /**
   * Lines the undisturbed devices sent, and those of them the manager received.
   * Summed per device at the time of asking, so a device churned while its
   * answer was on the wire drops out of both sides.
   */
  stableAnswers(): { sent: number; received: number } {
    let sent = 0;
    let received = 0;
    for (const sim of this.#sims) {
      if (!sim.stable) continue;
      sent += sim.linesSent;
      received += sim.linesAtManager + sim.linesLost;
    }
    return { sent, received };
  }

  /**
   * Waits until the manager has every answer the undisturbed devices sent and,
   * with `settle` (once telemetry has stopped), until nothing more has arrived
   * for 100 ms, so slow readers have finished their backlog.
   */
  async quiet(settle: boolean, signal?: AbortSignal): Promise<void> {
    await until(
      () => {
        const answers = this.stableAnswers();
        return answers.received >= answers.sent;
      },
      10_000,
      { signal },
    );
    if (!settle) return;
    let seen = -1;
    await until(
      () => {
        const settled = seen === this.managerReceived;
        seen = this.managerReceived;
        return settled;
      },
      3_000,
      { everyMs: 100, signal },
    );
  }

  #onRegistered(manager: Manager, client: Client): void {
    const sim = this.#byUuid.get(client.uuid);
    this.peakConnected = Math.max(this.peakConnected, manager.size);
    if (!sim) return;
    sim.client = client;
    sim.registeredAt = performance.now();
    const restart = this.restart;
    if (restart?.fleet.has(sim) && !restart.back.has(sim)) {
      restart.back.add(sim);
      restart.backAfter.push((sim.registeredAt - restart.downAt) / 1000);
    }
    if (this.everConnected.has(sim.uuid)) return;
    this.everConnected.add(sim.uuid);
    this.#recorder.handshakeMs.push(performance.now() - sim.dialAt);
  }

  #onManagerDisconnect(manager: Manager, client: Client, end: ConnectionEnd): void {
    count(this.managerEnds, end.reason);
    this.#replies.ended(client, end);
    const sim = this.#byUuid.get(client.uuid);
    if (!sim) return;
    if (sim.client === client) sim.client = null;
    if (end.reason === "heartbeat" && sim.role !== "silent") this.heartbeatMissed++;
    if (this.#recorder.shuttingDown && end.reason === "manager-closed") return;
    if (manager === this.restart?.closed && end.reason === "manager-closed") return;
    if (sim.role === "silent" && end.reason === "heartbeat") {
      this.silentDropped++;
      return;
    }
    if (sim.churned && (end.reason === "ended" || end.reason === "closed")) return;
    if (sim.role === "slow") {
      this.slowDropped++;
      return;
    }
    this.#recorder.unexpectedDisconnect(
      `${sim.type} ${sim.uuid} (mode ${sim.mode}, ${sim.role}): ${end.reason}: ${end.message}`,
    );
  }
}
