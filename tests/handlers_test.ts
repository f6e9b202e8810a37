import assert from "node:assert/strict";
import { encodeFrame, FrameType } from "../lib/protocol/mod.ts";
import { connectDevice, LogCapture, startManager, text, waitFor } from "./_helpers.ts";

Deno.test("a throwing or rejecting handler is logged and isolated from the others", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager();
  const seen: string[] = [];
  manager.on("message", () => {
    throw new Error("sync boom");
  });
  manager.on("message", () => Promise.reject(new Error("async boom")));
  manager.on("message", (_client, data) => void seen.push(text(data)));
  await using device = await connectDevice(manager, { mode: 2 });
  await device.write(encodeFrame(FrameType.DATA, "one"));
  await device.write(encodeFrame(FrameType.DATA, "two"));
  await waitFor(() => seen.length === 2, "both messages");
  assert.deepEqual(seen, ["one", "two"]);
  await waitFor(() => logs.records.filter((r) => r.level === "error").length === 4, "4 errors");
  const messages = logs.records.filter((r) => r.level === "error").map(LogCapture.text);
  assert.equal(messages.filter((m) => /\bsync boom/.test(m)).length, 2);
  assert.equal(messages.filter((m) => /async boom/.test(m)).length, 2);
  assert.ok(messages.every((m) => m.includes(`message handler failed for device ${device.uuid}`)));
  assert.equal(manager.size, 1, "the device is still connected");
});

Deno.test("type filters pick the seed's on_connect_[type] / on_message_[type]; off() unsubscribes", async () => {
  await using manager = await startManager();
  const events: string[] = [];
  manager.on("connect", (client) => void events.push(`connect ${client.type}`), { type: "lock" });
  const off = manager.on(
    "message",
    (client, data) => void events.push(`${client.type} ${text(data)}`),
    {
      type: "light",
    },
  );
  manager.on("disconnect", (client, end) => void events.push(`gone ${client.type} ${end.reason}`), {
    type: "light",
  });
  await using light = await connectDevice(manager, { mode: 2, type: "light" });
  await using lock = await connectDevice(manager, { mode: 2, type: "lock" });
  await lock.write(encodeFrame(FrameType.DATA, "ignored"));
  await light.write(encodeFrame(FrameType.DATA, "seen"));
  await waitFor(() => events.length === 2, "two events");
  off();
  await light.write(encodeFrame(FrameType.DATA, "after off"));
  light.close();
  await waitFor(() => events.length === 3, "disconnect");
  assert.deepEqual(events, ["connect lock", "light seen", "gone light closed"]);
});

Deno.test("at most maxConcurrentHandlers async handlers run at once; none is lost", async () => {
  await using manager = await startManager({ maxConcurrentHandlers: 3 });
  let running = 0;
  let peak = 0;
  let done = 0;
  const gates: (() => void)[] = [];
  manager.on("message", async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise<void>((resolve) => gates.push(resolve));
    running--;
    done++;
  });
  await using device = await connectDevice(manager, { mode: 2 });
  for (let i = 0; i < 10; i++) await device.write(encodeFrame(FrameType.DATA, `m${i}`));
  await waitFor(() => gates.length === 3, "three handlers started");
  while (done < 10) {
    await waitFor(() => gates.length > 0, "a handler waiting");
    gates.shift()!();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.equal(peak, 3);
  assert.equal(done, 10);
});

Deno.test("a slow messages() consumer pauses reads instead of dropping; nothing is lost", async () => {
  await using manager = await startManager();
  const iterator = manager.messages({ highWaterMark: 4 });
  await using device = await connectDevice(manager, { mode: 2 });
  const total = 200;
  const frames = [];
  for (let i = 0; i < total; i++) frames.push(...encodeFrame(FrameType.DATA, `m${i}`));
  await device.write(new Uint8Array(frames));
  const received: string[] = [];
  for await (const message of iterator) {
    received.push(message.text);
    if (received.length === total) break;
  }
  assert.deepEqual(received, Array.from({ length: total }, (_, i) => `m${i}`));
});

Deno.test("close() with 11,000 slow handler calls queued resolves within its grace; every disconnect runs", async () => {
  await using logs = await LogCapture.start();
  const manager = await startManager();
  let closing = false;
  let started = 0;
  let startedAfterClose = 0;
  manager.on("message", async () => {
    started++;
    if (closing) startedAfterClose++;
    await new Promise((resolve) => setTimeout(resolve, 1500));
  });
  const disconnected = new Set<string>();
  manager.on("disconnect", (client) => void disconnected.add(client.uuid));
  const devices = await Promise.all(
    Array.from({ length: 100 }, () => connectDevice(manager, { mode: 2 })),
  );
  const burst = new Uint8Array(
    Array.from({ length: 110 }, (_, i) => [...encodeFrame(FrameType.DATA, `m${i}`)]).flat(),
  );
  await Promise.all(devices.map((device) => device.write(burst)));
  await waitFor(() => started >= 16, "the handler slots are all busy");
  await new Promise((resolve) => setTimeout(resolve, 300)); // let the backlog build
  closing = true;
  const began = performance.now();
  await manager.close();
  const seconds = (performance.now() - began) / 1000;
  assert.ok(seconds < 15, `close() took ${seconds.toFixed(1)} s`);
  assert.equal(startedAfterClose, 0, "no queued message handler starts once close() began");
  assert.equal(disconnected.size, 100, "every device's disconnect handler ran");
  const record = logs.matching({ reason: "shutdown" })[0];
  assert.ok(record, "the dropped backlog is logged");
  assert.ok(Number(record.properties.dropped) > 1000, `dropped ${record.properties.dropped}`);
  for (const device of devices) device.close();
});

Deno.test("close() says how many handlers it left running when the grace runs out", async () => {
  await using logs = await LogCapture.start();
  const manager = await startManager();
  const release = Promise.withResolvers<void>();
  manager.on("message", () => release.promise); // never settles on its own
  await using device = await connectDevice(manager, { mode: 2 });
  await device.write(encodeFrame(FrameType.DATA, "hold"));
  await waitFor(() => manager.size === 1, "the device");
  await new Promise((resolve) => setTimeout(resolve, 100));
  await manager.close();
  const record = logs.matching({ reason: "shutdown" }).find((r) => "running" in r.properties);
  assert.ok(record, "the still-running handler is logged");
  assert.equal(record.properties.running, 1);
  release.resolve();
});
