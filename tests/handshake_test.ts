import assert from "node:assert/strict";
import { InvalidInfo } from "../mod.ts";
import { encodeHandshake, FrameType, parseEnd } from "../lib/protocol/mod.ts";
import {
  bytes,
  connectDevice,
  decodeFrames,
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

/** A handshake answer of exactly `size` bytes: `UUID##light##{"pad":"xxx…"}`. */
function answerOfSize(size: number, uuid = UUID): string {
  const frame = `${uuid}##light##{"pad":""}`;
  return `${uuid}##light##{"pad":"${"x".repeat(size - frame.length)}"}`;
}

/** The JSON data of such an answer. */
function dataOf(answer: string): Record<string, unknown> {
  return JSON.parse(answer.slice(answer.indexOf("{")));
}

Deno.test("maxHandshakeSize counts the answer: at the limit with the allowed newline and a first message is accepted", async () => {
  await using manager = await startManager({ maxHandshakeSize: 2048 });
  const received = manager.messages();
  for (const [mode, tail] of [[1, "\n"], [1, "\r\nhello"], [2, ""]] as const) {
    const uuid = crypto.randomUUID();
    const answer = answerOfSize(2048, uuid);
    assert.equal(bytes(answer).length, 2048);
    await using device = await RawDevice.connect(manager.port);
    await device.readBytes(1);
    if (mode === 1) await device.write(answer + tail);
    else {
      const data = dataOf(answer);
      await device.write(encodeHandshake({ uuid, type: "light", data }, 2));
    }
    await waitFor(() => manager.get(uuid) !== undefined, `mode ${mode} at the limit`);
    if (tail.includes("hello")) assert.equal((await received.next()).value?.text, "hello");
  }
  await received.return?.();
});

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: an answer one byte over maxHandshakeSize is refused (reason size)`, async () => {
    await using logs = await LogCapture.start();
    await using manager = await startManager({ maxHandshakeSize: 2048 });
    await using device = await RawDevice.connect(manager.port);
    await device.readBytes(1);
    const answer = answerOfSize(2049);
    await device.write(
      mode === 1
        ? answer + "\n"
        : encodeHandshake({ uuid: UUID, type: "light", data: dataOf(answer) }, 2),
    );
    await device.readToEnd();
    const record = await logs.waitFor({ reason: "size" });
    assert.match(LogCapture.text(record), /2049 bytes is over the 2048-byte limit/);
    assert.equal(manager.size, 0);
  });

  Deno.test(`mode ${mode}: a getData answer over maxHandshakeSize ends the connection as soon as that is known`, async () => {
    await using manager = await startManager({ maxHandshakeSize: 2048 });
    await using device = await connectDevice(manager, { mode });
    const client = manager.get(device.uuid)!;
    const asked = client.getData({ timeout: 5 });
    const answer = answerOfSize(2049, device.uuid);
    if (mode === 1) {
      await device.readBytes(1);
      // Sent in pieces, never completing: the limit, not the JSON, ends it.
      await device.write(answer.slice(0, 1000));
      await device.write(answer.slice(1000, 2050));
      const error = await asked.then(() => null, (error) => error);
      assert.ok(error instanceof InvalidInfo, String(error));
      assert.equal(error.reason, "size");
    } else {
      assert.equal((await device.readFrame()).type, FrameType.GETINFO);
      // The INFO header alone says it is too big: refused there, not after 2049 bytes.
      const info = encodeHandshake({ uuid: device.uuid, type: "light", data: dataOf(answer) }, 2);
      await device.write(info.subarray(4, 9));
      const error = await asked.then(() => null, (error) => error);
      assert.equal(error?.name, "ConnectionEnd");
      assert.match(error.message, /2049 bytes is over the 2048-byte limit/);
    }
    assert.equal((await client.closed).reason, "protocol");
  });
}

Deno.test("mode 1: the newline after the answer, arriving in a later read, is not a message", async () => {
  await using manager = await startManager();
  const received = manager.messages();
  await using device = await RawDevice.connect(manager.port);
  await device.readBytes(1);
  await device.write(`${UUID}##light##{}`);
  await waitFor(() => manager.get(UUID) !== undefined, "registration");
  await device.write("\r\n");
  await new Promise((resolve) => setTimeout(resolve, 50));
  await device.write("first");
  assert.equal((await received.next()).value?.text, "first");
  await received.return?.();
});

/** Mode-2 refusals: each sends END with `reason: message`, then closes. */
const framedRefusals: { name: string; answer: () => Uint8Array; reason: string }[] = [
  {
    name: "an unknown type",
    answer: () => encodeHandshake({ uuid: UUID, type: "fridge", data: {} }, 2),
    reason: "type",
  },
  { name: "NUL then garbage", answer: () => Uint8Array.of(0, 1, 2, 3), reason: "preamble" },
  {
    name: "another protocol version",
    answer: () => Uint8Array.of(0, 0x49, 0x4d, 7),
    reason: "preamble",
  },
  {
    name: "an INFO frame without the preamble",
    answer: () => encodeHandshake({ uuid: UUID, type: "light", data: {} }, 2).subarray(4),
    reason: "preamble",
  },
  {
    name: "a DATA frame after the preamble",
    answer: () => Uint8Array.of(0, 0x49, 0x4d, 2, 0x10, 0, 0, 0, 0),
    reason: "preamble",
  },
  {
    name: "JSON that is not an object",
    answer: () => encodeFrameAfterPreamble(`${UUID}##light##[1]`),
    reason: "data",
  },
  {
    name: "a fourth field",
    answer: () => encodeFrameAfterPreamble(`${UUID}##light##{}##x`),
    reason: "fields",
  },
  {
    name: "an INFO payload over maxHandshakeSize",
    answer: () => encodeFrameAfterPreamble(answerOfSize(4097)),
    reason: "size",
  },
  {
    name: "a stalled answer (the deadline)",
    answer: () => encodeHandshake({ uuid: UUID, type: "light", data: {} }, 2).subarray(0, 12),
    reason: "timeout",
  },
];

/** The mode-2 preamble and an INFO frame around `text`, whatever it holds. */
function encodeFrameAfterPreamble(text: string): Uint8Array {
  const payload = bytes(text);
  const out = new Uint8Array(9 + payload.length);
  out.set([0, 0x49, 0x4d, 2, FrameType.INFO]);
  new DataView(out.buffer).setUint32(5, payload.length);
  out.set(payload, 9);
  return out;
}

for (const { name, answer, reason } of framedRefusals) {
  Deno.test(`mode-2 refusal (${name}): END says "${reason}: …" before the close`, async () => {
    await using logs = await LogCapture.start();
    await using manager = await startManager({ handshakeTimeout: 0.5, maxHandshakeSize: 4096 });
    await using device = await RawDevice.connect(manager.port);
    assert.equal((await device.readBytes(1))[0], 0x01);
    await device.write(answer());
    const frames = decodeFrames(await device.readToEnd());
    assert.equal(frames.length, 1, "one END frame, then the close");
    assert.equal(frames[0].type, FrameType.END);
    const end = parseEnd(frames[0].payload);
    assert.equal(end.reason, reason);
    const record = await logs.waitFor({ reason });
    assert.equal(end.message, LogCapture.text(record).replace(/^.*?: /, ""));
  });
}
