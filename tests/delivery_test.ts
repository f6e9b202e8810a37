/**
 * Acknowledged delivery (mode 2, feature `ack`): a send that waits for the
 * device's ACK, the fan-out's delivery report, and the older devices that do
 * not know the feature and must keep working.
 */
import assert from "node:assert/strict";
import { DeliveryError, Device } from "../mod.ts";
import {
  encodeAck,
  encodeFeatures,
  encodeFrame,
  FrameType,
  parseAckedMessage,
  parseWelcome,
} from "../lib/protocol/mod.ts";
import { connectDevice, RawDevice, startManager, text, waitFor } from "./_helpers.ts";
import { encodeHandshake } from "../lib/protocol/mod.ts";

/** A mode-2 device written by hand that reads WELCOME and (optionally) announces features. */
async function rawModernDevice(
  port: number,
  features: ("ack" | "state")[],
): Promise<RawDevice & { uuid: string }> {
  const uuid = crypto.randomUUID();
  const device = await RawDevice.connect(port);
  await device.readBytes(1);
  await device.write(encodeHandshake({ uuid, type: "lock", data: {} }, 2));
  const welcome = parseWelcome(await device.readFrameOf(FrameType.WELCOME));
  assert.deepEqual(welcome.features, ["ack", "state"], "WELCOME offers the features");
  await device.write(encodeFeatures(features));
  return Object.assign(device, { uuid });
}

Deno.test("ack: client.send resolves once the Device acknowledged, and the device got it", async () => {
  await using manager = await startManager();
  await using lock = await Device.connect({ port: manager.port, type: "lock" });
  await waitFor(() => manager.get(lock.uuid) !== undefined, "registered");
  const iterator = lock[Symbol.asyncIterator]();
  assert.equal(await manager.get(lock.uuid)!.send("lock", { ack: true, timeout: 5 }), true);
  assert.equal(text((await iterator.next()).value), "lock");
});

Deno.test("ack: sendAll reports who acknowledged and why the others did not", async () => {
  await using manager = await startManager();
  await using a = await Device.connect({ port: manager.port, type: "lock" });
  await using b = await Device.connect({ port: manager.port, type: "light" });
  // An older mode-2 device: it never heard of features; its first frame settles that.
  await using old = await connectDevice(manager, { mode: 2, type: "lock" });
  await old.write(encodeFrame(FrameType.DATA, "hello"));
  // A mode-1 device: no acknowledgements there.
  await using seed = await connectDevice(manager, { mode: 1, type: "lock" });
  await waitFor(() => manager.size === 4, "four devices");
  const report = await manager.sendAll("lock", { ack: true, timeout: 5 });
  assert.equal(report.targets, 4);
  assert.equal(report.acknowledged, 2);
  assert.deepEqual(
    [...report.failed].sort((x, y) => x.uuid.localeCompare(y.uuid)),
    [{ uuid: old.uuid, reason: "unsupported" }, { uuid: seed.uuid, reason: "unsupported" }]
      .sort((x, y) => x.uuid.localeCompare(y.uuid)),
  );
  assert.equal(report.remote, 0);
  // The older device was sent nothing it cannot read: no MESSAGE frame reached it.
  await manager.get(old.uuid)!.send("plain");
  const next = await old.readFrame();
  assert.equal(next.type, FrameType.DATA, "the next frame is plain DATA, not a MESSAGE");
  assert.equal(text(next.payload), "plain");
  assert.equal(a.stats.messagesReceived + b.stats.messagesReceived, 2);
});

Deno.test("ack: an acknowledged send waits while the device's features are not yet known", async () => {
  await using manager = await startManager();
  await using old = await connectDevice(manager, { mode: 2, type: "lock" });
  const sent = manager.send(old.uuid, "lock", { ack: true, timeout: 5 });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await old.write(encodeFrame(FrameType.BEAT)); // its first frame: it uses no features
  const report = await sent;
  assert.deepEqual(report.failed, [{ uuid: old.uuid, reason: "unsupported" }]);
});

Deno.test("ack: a device that never acknowledges times out; one that leaves is disconnected", async () => {
  await using manager = await startManager();
  await using mute = await rawModernDevice(manager.port, ["ack"]);
  await using leaver = await rawModernDevice(manager.port, ["ack"]);
  await waitFor(() => manager.size === 2, "two devices");
  const report = manager.sendType("lock", "lock", { ack: true, timeout: 1 });
  const { id, data } = parseAckedMessage(await leaver.readFrameOf(FrameType.MESSAGE));
  assert.equal(text(data), "lock");
  assert.ok(id > 0);
  leaver.close();
  const { failed, acknowledged } = await report;
  assert.equal(acknowledged, 0);
  assert.deepEqual(
    new Map(failed.map((entry) => [entry.uuid, entry.reason])),
    new Map([[mute.uuid, "timeout"], [leaver.uuid, "disconnected"]]),
  );
  await assert.rejects(
    manager.get(mute.uuid)!.send("again", { ack: true, timeout: 0.2 }),
    (error) => error instanceof DeliveryError && error.reason === "timeout",
  );
});

Deno.test("ack: a late or unknown ACK is ignored; the right id acknowledges", async () => {
  await using manager = await startManager();
  await using device = await rawModernDevice(manager.port, ["ack"]);
  await waitFor(() => manager.size === 1, "registered");
  const client = manager.get(device.uuid)!;
  const sent = client.send("unlock", { ack: true, timeout: 5 });
  const { id } = parseAckedMessage(await device.readFrameOf(FrameType.MESSAGE));
  await device.write(encodeAck(id + 1000)); // nothing waits for it
  await device.write(encodeAck(id));
  assert.equal(await sent, true);
  assert.equal(client.connected, true);
});

Deno.test("ack: a malformed ACK is a protocol error that closes only that device", async () => {
  await using manager = await startManager();
  await using device = await rawModernDevice(manager.port, ["ack"]);
  await waitFor(() => manager.size === 1, "registered");
  const client = manager.get(device.uuid)!;
  await device.write(encodeFrame(FrameType.ACK, Uint8Array.of(1, 2)));
  const end = await client.closed;
  assert.equal(end.reason, "protocol");
  assert.match(end.message, /ACK carries a 4-byte id/);
});

Deno.test("ack: send to a UUID nobody holds reports it offline", async () => {
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  const report = await manager.send(uuid, "lock", { ack: true });
  assert.deepEqual(report, {
    targets: 1,
    acknowledged: 0,
    failed: [{ uuid, reason: "offline" }],
    remote: 0,
    kept: 0,
  });
});
