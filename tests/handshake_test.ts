import assert from "node:assert/strict";
import { encodeHandshake, FrameType } from "../mod.ts";
import {
  bytes,
  connectDevice,
  LogCapture,
  RawDevice,
  startManager,
  text,
  tlsFiles,
  waitFor,
} from "./_helpers.ts";

const UUID = "1862cfe1-5dab-4d8e-a946-50d6728f830f";

/** Every rejection: logged with its reason, socket closed, the bystander still served. */
const rejections: { name: string; answer: string | Uint8Array; reason: string; log: RegExp }[] = [
  { name: "bad UUID", answer: "hello##light##{}", reason: "uuid", log: /36-character UUID/ },
  {
    name: "unknown type",
    answer: `${UUID}##fridge##{}`,
    reason: "type",
    log: /"fridge" is not one of "light", "lock"/,
  },
  {
    name: "bad JSON",
    answer: `${UUID}##light##{"on":fals}`,
    reason: "data",
    log: /not valid JSON/,
  },
  {
    name: "JSON that is not an object",
    answer: `${UUID}##light##42`,
    reason: "data",
    log: /object/,
  },
  {
    name: "too many fields",
    answer: `${UUID}##light##{}##more`,
    reason: "fields",
    log: /after the JSON data/,
  },
  { name: "missing type field", answer: `${UUID}##{}`, reason: "fields", log: /type field/ },
  {
    name: "too few fields, then silence",
    answer: `${UUID}##light`,
    reason: "timeout",
    log: /waiting for the JSON data field/,
  },
  { name: "silence", answer: "", reason: "timeout", log: /nothing received yet/ },
  {
    name: "invalid UTF-8",
    answer: Uint8Array.of(0x31, 0xc3, 0x28),
    reason: "encoding",
    log: /UTF-8/,
  },
  {
    name: "binary noise",
    answer: Uint8Array.of(0xde, 0xad, 0xbe, 0xef),
    reason: "encoding",
    log: /UTF-8/,
  },
  {
    name: "an unknown protocol version",
    answer: Uint8Array.of(0, 0x49, 0x4d, 9),
    reason: "preamble",
    log: /version 9/,
  },
  {
    name: "an oversize handshake",
    answer: `${UUID}##light##{"pad":"${"x".repeat(5000)}"}`,
    reason: "size",
    log: /over the 4096-byte limit/,
  },
];

for (const { name, answer, reason, log } of rejections) {
  Deno.test(`handshake rejection (${name}): reason logged, socket closed, others unaffected`, async () => {
    await using logs = await LogCapture.start();
    await using manager = await startManager({ handshakeTimeout: 0.3, maxHandshakeSize: 4096 });
    await using bystander = await connectDevice(manager, { mode: 2 });
    await using device = await RawDevice.connect(manager.port);
    assert.equal((await device.readBytes(1))[0], 0x01);
    if (answer.length > 0) await device.write(answer);
    await device.readToEnd(); // the manager closes the connection
    const record = await logs.waitFor({ reason });
    assert.match(LogCapture.text(record), log);
    assert.match(String(record.properties.address), /^127\.0\.0\.1:\d+$/);
    assert.equal(manager.size, 1);
    assert.equal(await manager.sendAll("still here"), 1);
    assert.equal(text(await bystander.readFrameOf(FrameType.DATA)), "still here");
  });
}

Deno.test("a handshake dribbled one byte at a time within the timeout is accepted", async () => {
  await using manager = await startManager({ handshakeTimeout: 5 });
  await using device = await RawDevice.connect(manager.port);
  await device.readBytes(1);
  const answer = bytes(`${UUID}##lock##{"locked":true,"note":"a##b"}\n`);
  for (const byte of answer) await device.write(Uint8Array.of(byte));
  await waitFor(() => manager.get(UUID) !== undefined, "registration");
  assert.deepEqual(manager.get(UUID)!.data, { locked: true, note: "a##b" });
});

Deno.test("a mode-2 handshake split across writes, with a message right behind it, is accepted", async () => {
  await using manager = await startManager();
  const received = manager.messages();
  await using device = await RawDevice.connect(manager.port);
  await device.readBytes(1);
  const answer = encodeHandshake({ uuid: UUID, type: "light", data: {} }, 2);
  await device.write(answer.subarray(0, 7));
  await new Promise((resolve) => setTimeout(resolve, 20));
  await device.write(new Uint8Array([...answer.subarray(7), FrameType.DATA, 0, 0, 0, 1, 0x21]));
  const first = await received.next();
  assert.equal(first.value?.text, "!");
  assert.equal(first.value?.client.uuid, UUID);
  await received.return?.();
});

Deno.test("a plain TCP client on a TLS manager is logged and closed, TLS devices still served", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ tls: { cert: tlsFiles.cert, key: tlsFiles.key } });
  await using good = await connectDevice(manager, { mode: 2, tls: true });
  await using plain = await RawDevice.connect(manager.port);
  await plain.write(`${UUID}##light##{}`);
  await plain.readToEnd();
  const record = await logs.waitFor({ reason: "io" });
  assert.match(LogCapture.text(record), /ended before its handshake/);
  assert.equal(await manager.sendAll("ok"), 1);
  assert.equal(text(await good.readFrameOf(FrameType.DATA)), "ok");
});

Deno.test("connections past maxPendingHandshakes are refused with a logged reason", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ maxPendingHandshakes: 2, handshakeTimeout: 5 });
  await using a = await RawDevice.connect(manager.port);
  await using b = await RawDevice.connect(manager.port);
  await a.readBytes(1);
  await b.readBytes(1);
  await using c = await RawDevice.connect(manager.port);
  assert.equal((await c.readToEnd()).length, 0);
  const record = await logs.waitFor({ reason: "limit" });
  assert.match(LogCapture.text(record), /maxPendingHandshakes/);
  assert.equal(manager.pendingHandshakes, 2);
});

Deno.test("invalid options fail fast with a clear TypeError", async () => {
  await assert.rejects(startManager({ validTypes: [] }), /validTypes must be a non-empty array/);
  await assert.rejects(startManager({ validTypes: ["a##b"] }), /without "##"/);
  await assert.rejects(startManager({ heartbeatRate: 0 }), /heartbeatRate must be a positive/);
});

Deno.test("mode 1: bytes right behind the handshake answer are the device's first message", async () => {
  await using manager = await startManager();
  const received = manager.messages();
  await using device = await RawDevice.connect(manager.port);
  await device.readBytes(1);
  await device.write(`${UUID}##light##{"on":false}\nhello already`);
  const first = await received.next();
  assert.equal(first.value?.client.uuid, UUID);
  assert.equal(first.value?.text, "hello already");
  assert.deepEqual(manager.get(UUID)?.data, { on: false });
  await received.return?.();
});
