/**
 * manager.stats() and its Prometheus text: what is counted, on real sockets.
 */
import assert from "node:assert/strict";
import { Device, prometheusText } from "../mod.ts";
import { quantile } from "../lib/histogram.ts";
import { RawDevice, startManager, waitFor } from "./_helpers.ts";

Deno.test("stats count devices, refusals, disconnects, messages, fan-outs and heartbeat round trips", async () => {
  await using manager = await startManager({ heartbeatRate: 0.1, heartbeatTimeout: 2 });
  await using light = await Device.connect({ port: manager.port, type: "light" });
  await using lock = await Device.connect({ port: manager.port, type: "lock", mode: 1 });
  const bad = await RawDevice.connect(manager.port);
  await bad.readBytes(1);
  await bad.write("not-a-uuid##light##{}");
  await bad.readToEnd().catch(() => {});
  bad.close();
  await waitFor(() => manager.stats().handshakes.refused.uuid === 1, "the refusal counted");

  await light.send("on");
  await manager.sendType("light", "status");
  await manager.sendAll("ping");
  await manager.send(light.uuid, "x"); // payload bytes only: mode 2's frame header is not counted
  await waitFor(() => manager.stats().heartbeat.rttMs.count >= 2, "two beats timed");
  // Both devices may be pinged before the first round has run to its end (rounds count then).
  await waitFor(() => manager.stats().heartbeat.rounds >= 1, "a round run to its end");
  await waitFor(() => manager.stats().messages.received === 1, "the message counted");

  const stats = manager.stats();
  assert.deepEqual(stats.devices, {
    connected: 2,
    byType: { light: 1, lock: 1 },
    byMode: { 1: 1, 2: 1 },
  });
  assert.equal(stats.handshakes.accepted, 2);
  assert.equal(stats.messages.receivedBytes, 2);
  assert.equal(stats.messages.sent, 4, "one to the light by type, two by sendAll, one by send");
  assert.equal(stats.messages.sentBytes, 6 + 4 * 2 + 1);
  assert.equal(stats.fanOut.sends, 2);
  assert.deepEqual(stats.fanOut.deliveries.count, 2);
  assert.equal(stats.fanOut.deliveries.sum, 3);
  assert.ok(quantile(stats.heartbeat.rttMs, 0.5) < 2000, "round trips are in milliseconds");
  assert.ok(stats.heartbeat.rounds >= 1);

  await lock.close();
  await waitFor(
    () => manager.stats().disconnects.ended === 1 || manager.stats().disconnects.closed === 1,
    "the lock's end counted",
  );

  const text = prometheusText(manager.stats());
  for (const line of text.trimEnd().split("\n")) {
    assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [-+0-9.eInfNa]+)$/, line);
  }
  assert.match(text, /^iot_manager_devices_connected\{type="light"\} 1$/m);
  assert.match(text, /^iot_manager_handshakes_refused_total\{reason="uuid"\} 1$/m);
  assert.match(text, /^iot_manager_heartbeat_rtt_seconds_bucket\{le="\+Inf"\} \d+$/m);
  // Every known reason is there from the start, at 0, so the first one shows in a rate.
  assert.match(text, /^iot_manager_handshakes_refused_total\{reason="auth"\} 0$/m);
  assert.match(text, /^iot_manager_disconnects_total\{reason="heartbeat"\} 0$/m);
});

Deno.test("stats count handler calls that throw", async () => {
  await using manager = await startManager();
  manager.on("connect", () => {
    throw new Error("handler exploded");
  });
  await using light = await Device.connect({ port: manager.port, type: "light" });
  await waitFor(() => manager.stats().handlers.failed === 1, "the failure counted");
  assert.match(
    prometheusText(manager.stats()),
    /^iot_manager_handler_failures_total\{kind="threw"\} 1$/m,
  );
  assert.equal(light.connected, true);
});
