/**
 * Mosquitto's figures for one scenario: N subscribers to one topic and one
 * publisher, QoS 0, through the same broadcast phases as the manager, then
 * keep-alives at 1 s as the counterpart of heartbeats.
 *
 * @module
 */

import type { FanOut, HeartbeatSoak, Latency, MemoryFigures } from "../figures.ts";
import { encodePublish, MqttFleet, startMosquitto, TOPIC } from "../mqtt.ts";
import {
  CONNECT_TIMEOUT_MS,
  type Log,
  type Scenario,
  type Settings,
  sleep,
  soak,
  timeBroadcasts,
  warmUpConnections,
} from "../phases.ts";
import { benchPayload, processRss, wallClock } from "../wire.ts";

/** Figures for Mosquitto in one scenario. */
export interface MosquittoFigures {
  readonly version: string;
  readonly handshakesPerSecond: number;
  readonly memory: MemoryFigures;
  readonly fanOut: FanOut;
  readonly latency: Latency;
  readonly keepAlive: HeartbeatSoak;
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
    const { fanOut, latency } = await timeBroadcasts(subscribers, [broker.pid], {
      send: publish,
      warmUp: "mosquitto warm-up",
      burst: "publishes through mosquitto",
    }, settings);
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
