/**
 * The manager's figures for one scenario: handshakes, memory and `sendAll`
 * as the bare server is measured (`deno_server.ts`), then what only the
 * manager does: `sendType`, `send`, device messages to a `for await`
 * consumer; acknowledged `sendAll` (mode 2) in a second process, with devices
 * that use `ack`; and heartbeats in a third.
 *
 * @module
 */

import { encodeMessage } from "@iot-manager/core/protocol";
import type { ServerProcess } from "../control.ts";
import {
  type FanOut,
  type HeartbeatSoak,
  type Latency,
  latencyOf,
  type MemoryFigures,
  percentile,
} from "../figures.ts";
import type { DeviceFleet } from "../load.ts";
import {
  DELIVERY_TIMEOUT_MS,
  type Log,
  type Scenario,
  type Settings,
  sleep,
  soak,
  timeBursts,
  WARM_UP_MESSAGES,
} from "../phases.ts";
import type { Failure } from "../report/results.ts";
import type { InboundResult, SendTiming } from "../server.ts";
import { benchPayload, PAYLOAD_SIZE, stampPayload, wallClock } from "../wire.ts";
import { connect, connectWarm, MANAGER, timeSendAll } from "./deno_server.ts";

/** Figures for the manager in one scenario. */
export interface ManagerFigures {
  readonly handshakesPerSecond: number;
  readonly memory: MemoryFigures;
  readonly fanOut: FanOut;
  readonly latency: Latency;
  readonly sendType: FanOut;
  readonly sendEach: FanOut;
  readonly inboundPerSecond: number;
  readonly consumerLatency: Latency;
  /** Mode 2 only: `sendAll` with `{ ack: true }`; a failure here leaves the other figures standing. */
  readonly acked?: AckedFigures | Failure;
  readonly heartbeat: HeartbeatSoak;
}

/** Acknowledged `sendAll`, on a manager whose devices all use `ack`. */
export interface AckedFigures {
  /** `ackedMessages` calls issued at once, from the first call to the last report. */
  readonly fanOut: FanOut;
  /** One call, from the call to its report (the last `ACK` in). */
  readonly latency: Latency;
}

/** Seconds the manager waits for the `ACK`s of one call; the bench waits 30 s more for its answer. */
export const ACK_TIMEOUT_SECONDS = 60;

/** Every manager figure for one scenario (two manager processes: load, then heartbeats). */
export async function measureManager(
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<ManagerFigures> {
  const load = await measureLoad(scenario, settings, log);
  let acked: AckedFigures | Failure | undefined;
  if (scenario.mode === 2) {
    try {
      acked = await measureAcked(scenario, settings, log);
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      log(`ERROR in acknowledged sendAll: ${message}`);
      acked = { error: message };
    }
  }
  await using connected = await connect(MANAGER, scenario, settings, {
    name: "manager (heartbeats)",
    config: { heartbeatRate: 1, heartbeatTimeout: settings.heartbeatTimeout },
  });
  const { server, pid, fleet } = connected;
  const result = await soak(pid, settings.heartbeatSeconds, () => fleet.beats);
  const reasons = await server.call<Record<string, number>>("disconnects");
  const falseDisconnects = Math.max(
    fleet.serverClosed,
    Object.values(reasons).reduce((sum, count) => sum + count, 0),
  );
  log(
    `heartbeats: ${falseDisconnects} dropped, ${result.roundTrips} beats, ` +
      `${(result.cpuShare * 100).toFixed(1)} % CPU`,
  );
  return { ...load, ...(acked ? { acked } : {}), heartbeat: { ...result, falseDisconnects } };
}

/**
 * `sendAll(data, { ack: true })` on a fresh manager whose devices announce
 * `ack`: a warm-up, the fan-out bursts (all calls at once: awaited one by one,
 * each would wait a round trip), then single calls timed to their report.
 * Both ends of each time are read in the manager process.
 */
async function measureAcked(
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<AckedFigures> {
  const n = scenario.devices;
  await using connected = await connect(MANAGER, scenario, settings, {
    name: "manager (acks)",
    acks: true,
  });
  const { server, pid, fleet } = connected;
  const sendAllAcked = async (count: number): Promise<SendTiming> => {
    const timing = await server.call<SendTiming>(
      "sendAllAcked",
      { count, timeout: ACK_TIMEOUT_SECONDS },
      (ACK_TIMEOUT_SECONDS + 30) * 1000,
    );
    if (timing.reachedMin !== n || timing.reachedMax !== n) {
      throw new Error(
        `an acknowledged sendAll reached ${timing.reachedMin}` +
          (timing.reachedMax !== timing.reachedMin ? ` to ${timing.reachedMax}` : "") +
          ` devices, expected ${n}`,
      );
    }
    return timing;
  };
  await sendAllAcked(WARM_UP_MESSAGES);
  const m = settings.ackedMessages;
  let reported = Promise.withResolvers<number>();
  const fanOut = await timeBursts(fleet, [pid], {
    deliveries: m * n,
    expect: () => (reported = Promise.withResolvers<number>()).promise,
    send: async () => {
      const timing = await sendAllAcked(m);
      reported.resolve(timing.returnedAt);
      return timing.startedAt;
    },
    what: `${m} acknowledged sendAll`,
  }, settings);
  const samples: number[] = [];
  for (let round = 0; round < settings.latencyRounds; round++) {
    const timing = await sendAllAcked(1);
    samples.push(timing.returnedAt - timing.startedAt);
    await sleep(10);
  }
  const latency = latencyOf(samples);
  const dropped = await server.call<Record<string, number>>("disconnects");
  if (Object.keys(dropped).length > 0 || fleet.serverClosed > 0) {
    throw new Error(`devices were disconnected during the acks: ${JSON.stringify(dropped)}`);
  }
  log(
    `acknowledged fan-out ${Math.round(fanOut.perSecond)} deliveries/s, ` +
      `report p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`,
  );
  return { fanOut, latency };
}

async function measureLoad(
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<Omit<ManagerFigures, "heartbeat">> {
  const n = scenario.devices;
  await using connected = await connectWarm(MANAGER, scenario, settings);
  const { server, pid, fleet, memory } = connected;
  log(
    `${Math.round(connected.connectsPerSecond)} handshakes/s, ` +
      `${Math.round(memory.rssPerDevice)} B/device`,
  );
  const { fanOut, latency } = await timeSendAll(MANAGER, connected, scenario, settings);
  log(`fan-out ${Math.round(fanOut.perSecond)} deliveries/s`);
  log(`broadcast latency p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`);

  const lights = fleet.sockets.filter((socket) => socket.type === "light").length;
  const t = settings.sendTypeMessages;
  const sendType = await timeBursts(fleet, [pid], {
    deliveries: t * lights,
    expect: () => fleet.expect(t, (socket) => socket.type === "light"),
    send: async () =>
      (await server.call<SendTiming>("sendType", { count: t, type: "light" }, DELIVERY_TIMEOUT_MS))
        .startedAt,
    what: `${t} sendType to ${lights} lights`,
  }, settings);
  log(`sendType ${Math.round(sendType.perSecond)} deliveries/s`);
  const r = settings.sendEachRounds;
  const sendEach = await timeBursts(fleet, [pid], {
    deliveries: r * n,
    expect: () => fleet.expect(r),
    send: async () =>
      (await server.call<SendTiming>("sendEach", { rounds: r }, DELIVERY_TIMEOUT_MS)).startedAt,
    what: `${r} rounds of send to each device`,
  }, settings);
  log(`send ${Math.round(sendEach.perSecond)} messages/s`);

  const inboundPerSecond = await measureInbound(scenario, settings, server, fleet);
  log(`inbound ${Math.round(inboundPerSecond)} messages/s`);
  const consumerLatency = await measureConsumerLatency(scenario, settings, server, fleet);
  log(`device to consumer p50 ${consumerLatency.p50.toFixed(3)} ms`);

  const dropped = await server.call<Record<string, number>>("disconnects");
  if (Object.keys(dropped).length > 0 || fleet.serverClosed > 0) {
    throw new Error(`devices were disconnected during the load: ${JSON.stringify(dropped)}`);
  }
  return {
    handshakesPerSecond: connected.connectsPerSecond,
    memory,
    fanOut,
    latency,
    sendType,
    sendEach,
    inboundPerSecond,
    consumerLatency,
  };
}

/**
 * Every device sends its share of messages in one write; the manager's
 * `for await` consumer counts them. Median of `burstRuns` runs.
 */
async function measureInbound(
  scenario: Scenario,
  settings: Settings,
  server: ServerProcess,
  fleet: DeviceFleet,
): Promise<number> {
  const perDevice = Math.max(1, Math.ceil(settings.inboundMessages / scenario.devices));
  const total = perDevice * scenario.devices;
  const one = encodeMessage(benchPayload(), scenario.mode);
  const burst = new Uint8Array(one.length * perDevice);
  for (let i = 0; i < perDevice; i++) burst.set(one, i * one.length);
  const rates: number[] = [];
  for (let run = 0; run < settings.burstRuns; run++) {
    await server.call("inbound", { bytes: total * PAYLOAD_SIZE });
    const startedAt = wallClock();
    fleet.writeEach(burst);
    const result = await server.call<InboundResult>("inboundDone", {}, DELIVERY_TIMEOUT_MS);
    rates.push(total / ((result.doneAt - startedAt) / 1000));
    await sleep(20);
  }
  return percentile(rates, 0.5);
}

/** One stamped message at a time from a different device; the consumer computes the delay. */
async function measureConsumerLatency(
  scenario: Scenario,
  settings: Settings,
  server: ServerProcess,
  fleet: DeviceFleet,
): Promise<Latency> {
  const samples: number[] = [];
  for (let i = 0; i < settings.consumerSamples; i++) {
    const socket = fleet.sockets[(i * 7919) % fleet.size];
    fleet.write(socket, encodeMessage(stampPayload(wallClock()), scenario.mode));
    await sleep(5);
    if (i % 50 === 49) samples.push(...await server.call<number[]>("latencySamples"));
  }
  const deadline = Date.now() + 5000;
  while (samples.length < settings.consumerSamples) {
    if (Date.now() > deadline) {
      throw new Error(`the consumer saw ${samples.length} of ${settings.consumerSamples} samples`);
    }
    await sleep(10);
    samples.push(...await server.call<number[]>("latencySamples"));
  }
  return latencyOf(samples);
}
