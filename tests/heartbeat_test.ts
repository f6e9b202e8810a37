import assert from "node:assert/strict";
import type { ConnectionEnd } from "../mod.ts";
import { encodeFrame, FrameType } from "../lib/protocol/mod.ts";
import { connectDevice, LogCapture, startManager, text, waitFor } from "./_helpers.ts";

Deno.test("mode 1: a device answering beat survives rounds; beat never reaches handlers", async () => {
  await using manager = await startManager({ heartbeatRate: 0.05, heartbeatTimeout: 2 });
  const messages: string[] = [];
  manager.on("message", (_client, data) => void messages.push(text(data)));
  await using device = await connectDevice(manager, { mode: 1 });
  const rounds = manager.heartbeatRounds;
  for (let i = 0; i < 5; i++) {
    assert.equal((await device.readBytes(1))[0], 0x02);
    await device.write("beat");
  }
  await device.write("hello");
  await waitFor(() => messages.length === 1, "the message");
  assert.deepEqual(messages, ["hello"]);
  // Five pings, one per round: the first may come in the round under way when it connected.
  assert.ok(manager.heartbeatRounds >= rounds + 4);
  assert.equal(manager.size, 1);
});

Deno.test("mode 2: BEAT frames keep a device; an unprompted BEAT is ignored", async () => {
  await using manager = await startManager({ heartbeatRate: 0.05, heartbeatTimeout: 2 });
  const messages: Uint8Array[] = [];
  manager.on("message", (_client, data) => void messages.push(data));
  await using device = await connectDevice(manager, { mode: 2 });
  await device.write(encodeFrame(FrameType.BEAT)); // unprompted
  for (let i = 0; i < 5; i++) {
    const frame = await device.readFrame();
    assert.equal(frame.type, FrameType.HEARTBEAT);
    await device.write(encodeFrame(FrameType.BEAT));
  }
  assert.equal(manager.size, 1);
  assert.equal(messages.length, 0);
});

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: a silent device is removed after the timeout with reason heartbeat`, async () => {
    await using logs = await LogCapture.start();
    await using manager = await startManager({ heartbeatRate: 0.1, heartbeatTimeout: 1 });
    const ends: ConnectionEnd[] = [];
    manager.on("disconnect", (_client, end) => void ends.push(end));
    await using silent = await connectDevice(manager, { mode });
    await using alive = await connectDevice(manager, { mode, type: "lock" });
    const answering = (async () => {
      // The live device answers every heartbeat until the manager closes.
      try {
        while (true) {
          if (mode === 1) {
            await alive.readBytes(1);
            await alive.write("beat");
          } else {
            await alive.readFrameOf(FrameType.HEARTBEAT);
            await alive.write(encodeFrame(FrameType.BEAT));
          }
        }
      } catch { /* closed */ }
    })();
    const client = manager.get(silent.uuid)!;
    const end = await client.closed;
    assert.equal(end.reason, "heartbeat");
    assert.deepEqual(ends.map((e) => e.reason), ["heartbeat"]);
    assert.equal(manager.get(silent.uuid), undefined);
    await logs.waitFor({ uuid: silent.uuid, reason: "heartbeat" });
    const farewell = await silent.readToEnd();
    assert.ok(
      mode === 1 ? text(farewell).endsWith("end\n") : farewell.includes(FrameType.END),
      "the silent device was told end",
    );
    await waitFor(() => manager.heartbeatRounds >= 5, "more rounds");
    assert.equal(manager.size, 1, "the answering device stays");
    await manager.close();
    await answering;
  });
}

Deno.test("client.heartbeat() measures a round trip and ends a device that does not answer", async () => {
  await using manager = await startManager();
  await using device = await connectDevice(manager, { mode: 2 });
  const client = manager.get(device.uuid)!;
  const rtt = client.heartbeat({ timeout: 5 });
  assert.equal((await device.readFrame()).type, FrameType.HEARTBEAT);
  await device.write(encodeFrame(FrameType.BEAT));
  assert.ok((await rtt) >= 0);
  await assert.rejects(client.heartbeat({ timeout: 0.05 }), {
    name: "ConnectionEnd",
    reason: "heartbeat",
  });
  assert.equal(client.connected, false);
});

Deno.test("mode 1: a beat split across reads at any point answers the heartbeat and is never a message", async () => {
  await using manager = await startManager({ heartbeatRate: 0.05, heartbeatTimeout: 1 });
  const messages: string[] = [];
  manager.on("message", (_client, data) => void messages.push(text(data)));
  await using device = await connectDevice(manager, { mode: 1 });
  const client = manager.get(device.uuid)!;
  for (const [first, second] of [["b", "eat"], ["be", "at"], ["bea", "t"], ["on be", "at"]]) {
    assert.equal((await device.readBytes(1))[0], 0x02);
    await device.write(first);
    await new Promise((resolve) => setTimeout(resolve, 20)); // two reads, not one
    await device.write(second);
  }
  // A message that only looks like the start of a beat is delivered once more bytes come.
  assert.equal((await device.readBytes(1))[0], 0x02);
  await device.write("be");
  await new Promise((resolve) => setTimeout(resolve, 20));
  await device.write("ach");
  await waitFor(() => messages.join("").includes("beach"), "the held bytes delivered");
  await device.write("beat");
  // A new ping only comes once the last one is answered; an unanswered one would drop us.
  assert.equal((await device.readBytes(1))[0], 0x02);
  await device.write("beat");
  assert.equal(client.connected, true, "every split beat answered its heartbeat");
  assert.deepEqual(messages.filter((m) => /^(b|be|bea|eat|at|t)$/.test(m)), []);
  assert.ok(messages.includes("on "), messages.join("|"));
});

Deno.test("heartbeats are smeared over the round: each device once per round, in slices of the fleet", async () => {
  const { HeartbeatMonitor, MAX_SLICES } = await import("../lib/heartbeat.ts");
  const pings = new Map<number, number>(); // device -> pings
  const bursts = new Map<number, number>(); // the time a tick pinged at -> devices it pinged
  const targets = Array.from({ length: 100 }, (_, i) => ({
    heartbeatSentAt: 0,
    heartbeatSlice: -1,
    heartbeatPaused: false,
    sendHeartbeat() {
      pings.set(i, (pings.get(i) ?? 0) + 1);
      bursts.set(this.heartbeatSentAt, (bursts.get(this.heartbeatSentAt) ?? 0) + 1);
      this.heartbeatSentAt = 0; // answered at once
    },
    heartbeatMissed() {},
  }));
  const monitor = new HeartbeatMonitor({ rate: 0.5, timeout: 15, targets: () => targets });
  monitor.start();
  await waitFor(() => monitor.rounds >= 4, "four rounds");
  monitor.stop();
  const rounds = monitor.rounds;
  // Every device pinged once in each round run (and at most once more in the one under way).
  assert.equal(pings.size, 100);
  for (const [device, n] of pings) {
    assert.ok(n >= rounds && n <= rounds + 1, `device ${device}: ${n} pings in ${rounds} rounds`);
  }
  // The fleet in MAX_SLICES even slices, one pinged at a time: no burst of the whole fleet.
  const slices = new Map<number, number>();
  for (const { heartbeatSlice } of targets) {
    slices.set(heartbeatSlice, (slices.get(heartbeatSlice) ?? 0) + 1);
  }
  assert.deepEqual([...slices.values()], Array(MAX_SLICES).fill(100 / MAX_SLICES));
  assert.ok(Math.max(...bursts.values()) <= 100 / MAX_SLICES, `bursts: ${[...bursts.values()]}`);
});
