/**
 * The measurements: one function per system under test (the manager, the bare
 * Deno server, Mosquitto), each starting its server process, driving the load
 * through every phase with a deadline, and closing everything it opened.
 *
 * @module
 */

import { encodeMessage } from "@iot-manager/core/protocol";
import { ServerProcess } from "./control.ts";
import { DeviceFleet } from "./load.ts";
import { encodePublish, MqttFleet, startMosquitto, TOPIC } from "./mqtt.ts";
import type { InboundResult, SendTiming, ServerConfig, ServerInfo } from "./server.ts";
import {
  benchPayload,
  PAYLOAD_SIZE,
  processCpuSeconds,
  processRss,
  stampPayload,
  wallClock,
} from "./wire.ts";

/** One configuration the bench runs: how many devices, which mode, TLS or not. */
export interface Scenario {
  readonly id: string;
  readonly label: string;
  readonly devices: number;
  readonly mode: 1 | 2;
  readonly tls: boolean;
  /** Also run Mosquitto for this scenario (plain mode 2 only). */
  readonly mosquitto: boolean;
}

/** How hard and how long each phase pushes. */
export interface Settings {
  /** Back-to-back broadcasts in the fan-out phase. */
  readonly fanOutMessages: number;
  /** Single broadcasts timed one by one. */
  readonly latencyRounds: number;
  /** Back-to-back `sendType` calls to half the fleet. */
  readonly sendTypeMessages: number;
  /** Rounds of `send` to each device in turn. */
  readonly sendEachRounds: number;
  /** Inbound messages in total, spread over the fleet. */
  readonly inboundMessages: number;
  /** Device-to-consumer latency samples. */
  readonly consumerSamples: number;
  /** Seconds of heartbeats (1 s rate). */
  readonly heartbeatSeconds: number;
  /** Seconds of Mosquitto keep-alives (context only, so shorter). */
  readonly keepAliveSeconds: number;
  /** Devices that connect and leave before each measurement, so the server code is warm. */
  readonly warmUpDevices: number;
  /** Seconds a device has to answer a heartbeat in that phase. */
  readonly heartbeatTimeout: number;
  /** Runs of each throughput burst (the median is kept)... */
  readonly burstRuns: number;
  /** ...unless this many milliseconds have gone by (at least one run). */
  readonly burstBudgetMs: number;
  /** Handshakes in flight at once while connecting. */
  readonly connectConcurrency: number;
  /** PEM files for the TLS scenarios. */
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
}

/** Percentiles of a set of samples, in milliseconds. */
export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
}

/** Memory with the fleet connected, minus memory with nobody connected, per device. */
export interface MemoryFigures {
  /** Resident set size per device, in bytes: the figure reported. */
  readonly rssPerDevice: number;
  /** V8 heap per device (part of the RSS). */
  readonly heapPerDevice?: number;
  /** Array buffers and other memory V8 knows of outside its heap, per device. */
  readonly externalPerDevice?: number;
  readonly idleRss: number;
  readonly loadedRss: number;
}

/** A fan-out: how many messages reached how many sockets in how long. */
export interface FanOut {
  readonly deliveries: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** CPU seconds the server process used meanwhile. */
  readonly serverCpuSeconds: number;
  /** CPU seconds the load generator used meanwhile. */
  readonly loadCpuSeconds: number;
  /** Deliveries per second of every run; `perSecond` is their median. */
  readonly runs: readonly number[];
}

/** Heartbeats (or MQTT keep-alives) at 1 s for a while. */
export interface HeartbeatSoak {
  readonly seconds: number;
  /** Devices the server dropped although they answered every heartbeat. */
  readonly falseDisconnects: number;
  /** Heartbeats the devices answered (or PINGRESPs received). */
  readonly roundTrips: number;
  /** Server CPU time over wall time: 0.05 is 5 % of one core. */
  readonly cpuShare: number;
}

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
  readonly heartbeat: HeartbeatSoak;
}

/** Figures for the bare Deno server in one scenario. */
export interface BareFigures {
  readonly acceptsPerSecond: number;
  readonly memory: MemoryFigures;
  readonly fanOut: FanOut;
  readonly latency: Latency;
}

/** Figures for Mosquitto in one scenario. */
export interface MosquittoFigures {
  readonly version: string;
  readonly handshakesPerSecond: number;
  readonly memory: MemoryFigures;
  readonly fanOut: FanOut;
  readonly latency: Latency;
  readonly keepAlive: HeartbeatSoak;
}

type Log = (message: string) => void;

/** Longest a connect phase may take. */
export const CONNECT_TIMEOUT_MS = 120_000;
/** Longest the bench waits for a burst's deliveries (see {@linkcode deliveryTimeout}). */
export const DELIVERY_TIMEOUT_MS = 60_000;

/** A minute, plus a second per 20,000 deliveries (Mosquitto manages about 30,000/s at 10,000). */
function deliveryTimeout(deliveries: number): number {
  return DELIVERY_TIMEOUT_MS + deliveries / 20;
}
/** Broadcasts sent (and awaited) before the first timed burst. */
export const WARM_UP_MESSAGES = 20;
const serverModule = new URL("./server.ts", import.meta.url).pathname;
const configFile = new URL("../deno.json", import.meta.url).pathname;

/** Value at percentile `p` (nearest rank) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** p50, p99 and max of `samples` (milliseconds). */
export function latencyOf(samples: readonly number[]): Latency {
  return {
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    max: Math.max(...samples),
    samples: samples.length,
  };
}

function memoryOf(idle: Deno.MemoryUsage, loaded: Deno.MemoryUsage, devices: number) {
  return {
    rssPerDevice: (loaded.rss - idle.rss) / devices,
    heapPerDevice: (loaded.heapUsed - idle.heapUsed) / devices,
    externalPerDevice: (loaded.external - idle.external) / devices,
    idleRss: idle.rss,
    loadedRss: loaded.rss,
  };
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<unknown> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a `server.ts` process (see {@linkcode ServerConfig}). */
export function startServer(name: string, config: ServerConfig): ServerProcess {
  return new ServerProcess(name, [
    "run",
    "--quiet",
    `--config=${configFile}`,
    "--allow-net=127.0.0.1",
    "--allow-env",
    "--v8-flags=--expose-gc",
    serverModule,
    JSON.stringify(config),
  ]);
}

/** Polls the server until it counts `count` connections. */
export async function untilSize(
  server: ServerProcess,
  count: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await server.call<number>("size") < count) {
    if (Date.now() > deadline) {
      throw new Error(`${server.name} holds ${await server.call("size")} of ${count} connections`);
    }
    await sleep(2);
  }
}

/** One burst to time: arm the fleet's targets, then trigger the send (returns when it started). */
export interface Burst {
  readonly deliveries: number;
  expect(): Promise<number>;
  send(): Promise<number>;
  readonly what: string;
}

/** CPU seconds (user + system) the processes `pids` have used, together. */
async function cpuSecondsOf(pids: readonly number[]): Promise<number> {
  let seconds = 0;
  for (const pid of pids) seconds += await processCpuSeconds(pid);
  return seconds;
}

/**
 * Times a burst from the first send to the last socket's last message, `runs`
 * times (fewer if `budgetMs` runs out), and keeps the median run. The server
 * CPU is that of every process in `serverPids` (several for a cluster).
 */
export async function timeBursts(
  fleet: DeviceFleet | MqttFleet,
  serverPids: readonly number[],
  burst: Burst,
  settings: Settings,
): Promise<FanOut> {
  const runs: Omit<FanOut, "runs">[] = [];
  const budgetEnds = performance.now() + settings.burstBudgetMs;
  while (
    runs.length < settings.burstRuns && (runs.length === 0 || performance.now() < budgetEnds)
  ) {
    const expected = burst.expect();
    const serverCpu = await cpuSecondsOf(serverPids);
    const loadCpu = await processCpuSeconds(Deno.pid);
    const startedAt = await burst.send();
    const lastAt = await fleet.arrival(expected, deliveryTimeout(burst.deliveries), burst.what);
    const seconds = (lastAt - startedAt) / 1000;
    runs.push({
      deliveries: burst.deliveries,
      seconds,
      perSecond: burst.deliveries / seconds,
      serverCpuSeconds: await cpuSecondsOf(serverPids) - serverCpu,
      loadCpuSeconds: await processCpuSeconds(Deno.pid) - loadCpu,
    });
    await sleep(20);
  }
  const median = [...runs].sort((a, b) => a.perSecond - b.perSecond)[(runs.length - 1) >> 1];
  return { ...median, runs: runs.map((run) => run.perSecond) };
}

/** Sends one broadcast at a time and times the last socket's arrival. */
export async function timeRounds(
  fleet: DeviceFleet | MqttFleet,
  rounds: number,
  send: () => Promise<number>,
): Promise<Latency> {
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const expected = fleet.expect(1);
    const startedAt = await send();
    samples.push(await fleet.arrival(expected, 10_000, `broadcast ${round + 1}`) - startedAt);
    await sleep(10);
  }
  return latencyOf(samples);
}

/** Lets heartbeats run for `seconds`; measures the server's CPU time and the round trips. */
async function soak(
  serverPid: number,
  seconds: number,
  roundTrips: () => number,
): Promise<Omit<HeartbeatSoak, "falseDisconnects">> {
  const cpu = await processCpuSeconds(serverPid);
  const trips = roundTrips();
  const startedAt = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - startedAt) / 1000;
  return {
    seconds: elapsed,
    roundTrips: roundTrips() - trips,
    cpuShare: (await processCpuSeconds(serverPid) - cpu) / elapsed,
  };
}

function endpoint(scenario: Scenario, settings: Settings, port: number) {
  return { port, caCerts: scenario.tls ? [settings.tls.ca] : undefined };
}

function serverTls(scenario: Scenario, settings: Settings) {
  return scenario.tls ? { cert: settings.tls.cert, key: settings.tls.key } : undefined;
}

/**
 * Connects `settings.warmUpDevices` throwaway clients and closes them, then
 * waits until the server has let them all go: the first connections to a
 * fresh process pay for compiling its code, which is not what a device costs.
 */
export async function warmUpConnections(
  open: () => DeviceFleet | MqttFleet,
  settings: Settings,
  size: () => Promise<number>,
): Promise<void> {
  const fleet = open();
  const until = async (done: (count: number) => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!done(await size())) {
      if (Date.now() > deadline) throw new Error(`the warm-up connections ${what}`);
      await sleep(10);
    }
  };
  try {
    await fleet.connect(settings.warmUpDevices, {
      concurrency: settings.connectConcurrency,
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    // Mode 1 has no acknowledgement: leave only once the manager holds them all.
    await until((count) => count >= settings.warmUpDevices || count < 0, "were not all admitted");
  } finally {
    await fleet.close();
  }
  await until((count) => count <= 0, "did not go away");
}

/** Connects a device fleet to a manager and waits until the manager has them all. */
async function connectDevices(
  scenario: Scenario,
  settings: Settings,
  server: ServerProcess,
  port: number,
): Promise<{ fleet: DeviceFleet; perSecond: number }> {
  const fleet = new DeviceFleet(endpoint(scenario, settings, port), {
    mode: scenario.mode,
    handshake: true,
  });
  try {
    const timing = await fleet.connect(scenario.devices, {
      concurrency: settings.connectConcurrency,
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    // Mode 1 has no acknowledgement: the handshake is done when the manager counts the device.
    if (scenario.mode === 1) await untilSize(server, scenario.devices, CONNECT_TIMEOUT_MS);
    const seconds = (wallClock() - timing.startedAt) / 1000;
    const size = await server.call<number>("size");
    if (size !== scenario.devices) {
      throw new Error(`the manager holds ${size} devices, expected ${scenario.devices}`);
    }
    return { fleet, perSecond: scenario.devices / seconds };
  } catch (error) {
    await fleet.close();
    throw error;
  }
}

/** Every manager figure for one scenario (two manager processes: load, then heartbeats). */
export async function measureManager(
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<ManagerFigures> {
  const load = await measureManagerLoad(scenario, settings, log);
  await using server = startServer("manager (heartbeats)", {
    target: "manager",
    tls: serverTls(scenario, settings),
    heartbeatRate: 1,
    heartbeatTimeout: settings.heartbeatTimeout,
  });
  const { pid, port } = await server.call<ServerInfo>("info");
  const { fleet } = await connectDevices(scenario, settings, server, port);
  await using _fleet = fleet;
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
  return { ...load, heartbeat: { ...result, falseDisconnects } };
}

async function measureManagerLoad(
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<Omit<ManagerFigures, "heartbeat">> {
  const n = scenario.devices;
  await using server = startServer("manager", {
    target: "manager",
    tls: serverTls(scenario, settings),
  });
  const { pid, port } = await server.call<ServerInfo>("info");
  await warmUpConnections(
    () =>
      new DeviceFleet(endpoint(scenario, settings, port), { mode: scenario.mode, handshake: true }),
    settings,
    () => server.call<number>("size"),
  );
  await server.call("disconnects"); // forget the warm-up devices leaving
  const idle = await server.call<Deno.MemoryUsage>("memory");
  const { fleet, perSecond: handshakesPerSecond } = await connectDevices(
    scenario,
    settings,
    server,
    port,
  );
  await using _fleet = fleet;
  const memory = memoryOf(idle, await server.call<Deno.MemoryUsage>("memory"), n);
  log(
    `${Math.round(handshakesPerSecond)} handshakes/s, ` +
      `${Math.round(memory.rssPerDevice)} B/device`,
  );

  const sendAll = async (count: number) =>
    (await server.call<SendTiming>("sendAll", { count }, DELIVERY_TIMEOUT_MS)).startedAt;
  const warmUpArrival = fleet.expect(WARM_UP_MESSAGES);
  await sendAll(WARM_UP_MESSAGES);
  await fleet.arrival(warmUpArrival, DELIVERY_TIMEOUT_MS, "warm-up");

  const m = settings.fanOutMessages;
  const fanOut = await timeBursts(fleet, [pid], {
    deliveries: m * n,
    expect: () => fleet.expect(m),
    send: () => sendAll(m),
    what: `${m} broadcasts`,
  }, settings);
  log(`fan-out ${Math.round(fanOut.perSecond)} deliveries/s`);
  const latency = await timeRounds(fleet, settings.latencyRounds, () => sendAll(1));
  log(`broadcast latency p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`);

  const lights = fleet.sockets.filter((socket) => socket.type === "light").length;
  const t = settings.sendTypeMessages;
  const sendType = await timeBursts(fleet, [pid], {
    deliveries: t * lights,
    expect: () => fleet.expect(t, (socket) => socket.type === "light"),
    send: async () =>
      (await server.call<SendTiming>("sendType", { count: t, type: "light" }, 60_000)).startedAt,
    what: `${t} sendType to ${lights} lights`,
  }, settings);
  log(`sendType ${Math.round(sendType.perSecond)} deliveries/s`);
  const r = settings.sendEachRounds;
  const sendEach = await timeBursts(fleet, [pid], {
    deliveries: r * n,
    expect: () => fleet.expect(r),
    send: async () => (await server.call<SendTiming>("sendEach", { rounds: r }, 60_000)).startedAt,
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
    handshakesPerSecond,
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

/** The bare Deno server: accepts, memory, fan-out and latency. */
export async function measureBare(
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<BareFigures> {
  const n = scenario.devices;
  await using server = startServer("bare server", {
    target: "bare",
    tls: serverTls(scenario, settings),
  });
  const { pid, port } = await server.call<ServerInfo>("info");
  await warmUpConnections(
    () =>
      new DeviceFleet(endpoint(scenario, settings, port), {
        mode: scenario.mode,
        handshake: false,
      }),
    settings,
    () => server.call<number>("size"),
  );
  const idle = await server.call<Deno.MemoryUsage>("memory");
  await using fleet = new DeviceFleet(endpoint(scenario, settings, port), {
    mode: scenario.mode,
    handshake: false,
  });
  const timing = await fleet.connect(n, {
    concurrency: settings.connectConcurrency,
    timeoutMs: CONNECT_TIMEOUT_MS,
  });
  await untilSize(server, n, CONNECT_TIMEOUT_MS);
  const acceptsPerSecond = n / ((wallClock() - timing.startedAt) / 1000);
  const memory = memoryOf(idle, await server.call<Deno.MemoryUsage>("memory"), n);

  const sendAll = async (count: number) =>
    (await server.call<SendTiming>("sendAll", { count, mode: scenario.mode }, 60_000)).startedAt;
  const warmUpArrival = fleet.expect(WARM_UP_MESSAGES);
  await sendAll(WARM_UP_MESSAGES);
  await fleet.arrival(warmUpArrival, DELIVERY_TIMEOUT_MS, "warm-up");
  const m = settings.fanOutMessages;
  const fanOut = await timeBursts(fleet, [pid], {
    deliveries: m * n,
    expect: () => fleet.expect(m),
    send: () => sendAll(m),
    what: `${m} bare broadcasts`,
  }, settings);
  const latency = await timeRounds(fleet, settings.latencyRounds, () => sendAll(1));
  log(
    `bare: ${Math.round(fanOut.perSecond)} deliveries/s, p99 ${latency.p99.toFixed(2)} ms, ` +
      `${Math.round(memory.rssPerDevice)} B/socket`,
  );
  return { acceptsPerSecond, memory, fanOut, latency };
}

/** Mosquitto with N subscribers to one topic and one publisher, QoS 0. */
export async function measureMosquitto(
  binary: string,
  scenario: Scenario,
  settings: Settings,
  log: Log,
): Promise<MosquittoFigures> {
  const n = scenario.devices;
  await using broker = await startMosquitto(binary);
  // Mosquitto cannot say how many clients it holds without $SYS; a pause lets it drop them.
  await warmUpConnections(
    () => new MqttFleet({ port: broker.port }, { keepAliveSeconds: 0, subscribe: true }),
    settings,
    () => Promise.resolve(-1),
  );
  await sleep(500);
  const idleRss = await processRss(broker.pid);
  const connected = await (async () => {
    await using subscribers = new MqttFleet({ port: broker.port }, {
      keepAliveSeconds: 0,
      subscribe: true,
    });
    await using publisher = new MqttFleet({ port: broker.port }, {
      keepAliveSeconds: 0,
      subscribe: false,
    });
    const timing = await subscribers.connect(n, {
      concurrency: settings.connectConcurrency,
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    const handshakesPerSecond = n / timing.seconds;
    await publisher.connect(1, { concurrency: 1, timeoutMs: 10_000 });
    await sleep(200);
    const loadedRss = await processRss(broker.pid);
    const memory = { rssPerDevice: (loadedRss - idleRss) / n, idleRss, loadedRss };

    const one = encodePublish(TOPIC, benchPayload());
    const publish = (count: number): Promise<number> => {
      const bytes = new Uint8Array(one.length * count);
      for (let i = 0; i < count; i++) bytes.set(one, i * one.length);
      const startedAt = wallClock();
      publisher.writeEach(bytes);
      return Promise.resolve(startedAt);
    };
    const warmUpArrival = subscribers.expect(WARM_UP_MESSAGES);
    await publish(WARM_UP_MESSAGES);
    await subscribers.arrival(warmUpArrival, DELIVERY_TIMEOUT_MS, "mosquitto warm-up");
    const m = settings.fanOutMessages;
    const fanOut = await timeBursts(subscribers, [broker.pid], {
      deliveries: m * n,
      expect: () => subscribers.expect(m),
      send: () => publish(m),
      what: `${m} publishes through mosquitto`,
    }, settings);
    const latency = await timeRounds(subscribers, settings.latencyRounds, () => publish(1));
    log(
      `mosquitto: ${Math.round(handshakesPerSecond)} handshakes/s, ` +
        `${Math.round(fanOut.perSecond)} deliveries/s, p99 ${latency.p99.toFixed(2)} ms`,
    );
    return { handshakesPerSecond, memory, fanOut, latency };
  })();

  await using pingers = new MqttFleet({ port: broker.port }, {
    keepAliveSeconds: settings.heartbeatTimeout,
    subscribe: true,
  });
  await pingers.connect(n, {
    concurrency: settings.connectConcurrency,
    timeoutMs: CONNECT_TIMEOUT_MS,
  });
  pingers.startPinging(1000);
  const result = await soak(broker.pid, settings.keepAliveSeconds, () => pingers.pongs);
  pingers.stopPinging();
  const keepAlive = { ...result, falseDisconnects: pingers.serverClosed };
  log(
    `mosquitto keep-alives: ${keepAlive.falseDisconnects} dropped, ` +
      `${(keepAlive.cpuShare * 100).toFixed(1)} % CPU`,
  );
  return { version: broker.version, ...connected, keepAlive };
}
