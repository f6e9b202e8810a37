import assert from "node:assert/strict";
import { encodeFrame, FrameType } from "../lib/protocol/mod.ts";
import { connectDevice, decodeFrames, startManager, text, tlsFiles, waitFor } from "./_helpers.ts";

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: a device connects, is listed and gets send, sendType and sendAll`, async () => {
    await using manager = await startManager();
    const seen: string[] = [];
    manager.on("connect", (client) => void seen.push(client.uuid));
    await using light = await connectDevice(manager, {
      mode,
      type: "light",
      data: { room: "hall" },
    });
    await using lock = await connectDevice(manager, { mode, type: "lock" });
    assert.equal(manager.size, 2);
    assert.deepEqual(
      manager.getClientData().find((info) => info.uuid === light.uuid),
      { uuid: light.uuid, type: "light", data: { room: "hall" } },
    );
    await waitFor(() => seen.length === 2, "connect handlers");
    assert.equal(await manager.send(light.uuid, "one"), 1);
    assert.equal(await manager.sendType("light", "two"), 1);
    assert.equal(await manager.sendAll("three"), 2);
    assert.equal(await manager.send(crypto.randomUUID(), "nobody"), 0);
    if (mode === 1) {
      assert.equal(await light.readUntil("three"), "onetwothree");
      assert.equal(await lock.readUntil("three"), "three");
    } else {
      const frames = [];
      for (let i = 0; i < 3; i++) frames.push(await light.readFrameOf(FrameType.DATA));
      assert.deepEqual(frames.map(text), ["one", "two", "three"]);
      assert.equal(text(await lock.readFrameOf(FrameType.DATA)), "three");
    }
  });
}

Deno.test("TLS: a device connects over TLS and exchanges messages", async () => {
  await using manager = await startManager({ tls: { cert: tlsFiles.cert, key: tlsFiles.key } });
  assert.equal(manager.tls, true);
  await using device = await connectDevice(manager, { mode: 2, tls: true });
  const client = manager.get(device.uuid)!;
  const got = client.recvString();
  await device.write(new Uint8Array([FrameType.DATA, 0, 0, 0, 2, 104, 105]));
  assert.equal(await got, "hi");
  await manager.close();
  const rest = decodeFrames(await device.readToEnd());
  assert.equal(rest.at(-1)?.type, FrameType.END);
});

Deno.test("mode 2: a 300 KiB message arrives whole, with small ones before and after", async () => {
  await using manager = await startManager();
  await using device = await connectDevice(manager, { mode: 2 });
  const received = manager.messages();
  const big = new Uint8Array(300 * 1024).map((_, i) => i % 251);
  const frames = [
    ...encodeFrame(FrameType.DATA, "a"),
    ...encodeFrame(FrameType.DATA, big),
    ...encodeFrame(FrameType.DATA, "z"),
  ];
  await device.write(new Uint8Array(frames));
  assert.equal((await received.next()).value?.text, "a");
  assert.deepEqual((await received.next()).value?.data, big);
  assert.equal((await received.next()).value?.text, "z");
  await received.return?.();
});

Deno.test("Manager.listen takes a signal: aborting it closes the manager and ends its devices", async () => {
  const controller = new AbortController();
  const manager = await startManager({ signal: controller.signal });
  await using device = await connectDevice(manager, { mode: 2 });
  const client = manager.get(device.uuid)!;
  controller.abort(new Error("shutting down the building"));
  assert.equal((await client.closed).reason, "manager-closed");
  await manager.close(); // already closing: the same promise, resolves once closed
  await assert.rejects(
    startManager({ signal: controller.signal }),
    /shutting down the building/,
    "an already aborted signal makes listen throw its reason",
  );
});

Deno.test("mode 1: mode1ReadSize bounds one read, so a longer message arrives in parts of at most that size", async () => {
  await using manager = await startManager({ mode1ReadSize: 8 });
  await using device = await connectDevice(manager, { mode: 1 });
  const received = manager.messages();
  const message = "abcdefghijklmnopqrstuvwxyz"; // 26 bytes in one write
  await device.write(message);
  const parts: string[] = [];
  while (parts.join("").length < message.length) {
    const { value } = await received.next();
    assert.ok(value!.data.length <= 8, `a part of ${value!.data.length} bytes`);
    parts.push(value!.text);
  }
  assert.equal(parts.join(""), message);
  assert.ok(parts.length >= 4, `${parts.length} parts`);
  await received.return?.();
});

Deno.test("mode 1: mode1ReadSize must be a whole number of bytes up to 64 MiB; by default a 16 KiB write arrives intact", async () => {
  await using manager = await startManager();
  await using device = await connectDevice(manager, { mode: 1 });
  const received = manager.messages();
  const message = "y".repeat(16 * 1024);
  await device.write(message);
  let got = "";
  while (got.length < message.length) got += (await received.next()).value!.text;
  assert.equal(got, message);
  await received.return?.();
  for (const bad of [0, 1.5, -1, Number.NaN, 2 ** 40]) {
    await assert.rejects(
      startManager({ mode1ReadSize: bad }),
      /mode1ReadSize must be a whole number of bytes from 1 to 67108864/,
    );
  }
  // A string is shown quoted, so "16" is not mistaken for the number 16.
  await assert.rejects(startManager({ mode1ReadSize: "16" as never }), /got "16"$/);
});

Deno.test("a duration too long for a timer is refused, not run at once", async () => {
  // Deno (like Node and browsers) runs a timer over 2^31 - 1 ms at once: "never" became "now".
  for (const handshakeTimeout of [Infinity, 3e6]) {
    await assert.rejects(
      startManager({ handshakeTimeout }),
      /handshakeTimeout must be at most 2147483.647 seconds/,
    );
  }
  await assert.rejects(startManager({ heartbeatRate: Infinity }), /heartbeatRate must be at most/);
  await assert.rejects(startManager({ writeTimeout: 1e7 }), /writeTimeout must be at most/);
  await using manager = await startManager({ handshakeTimeout: 2_000_000 }); // 23 days: fine
  assert.ok(manager.port > 0);
});
