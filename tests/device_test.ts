import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ConnectionEnd,
  Device,
  hmacAuthenticator,
  InvalidInfo,
  type Manager,
} from "../mod.ts";
import { encodeFrame, encodeHandshake, FrameType } from "../lib/protocol/mod.ts";
import { backoffDelay } from "../lib/reconnect.ts";
import { splitManagerChunk } from "../lib/protocol/mod.ts";
import { bytes, LogCapture, RawDevice, startManager, text, tlsFiles, waitFor } from "./_helpers.ts";

/** Connects a device to `manager` and waits until the manager has registered it. */
async function connectTo(
  manager: Manager,
  options: Partial<Parameters<typeof Device.connect>[0]> = {},
): Promise<Device> {
  const device = await Device.connect({
    port: manager.port,
    type: "light",
    tls: manager.tls ? { caCerts: [tlsFiles.ca] } : undefined,
    ...options,
  });
  await waitFor(() => manager.get(device.uuid) !== undefined, `device ${device.uuid} registered`);
  return device;
}

/** Reads the next message of a device's iterator as text. */
async function next(messages: AsyncIterator<Uint8Array>): Promise<string> {
  const result = await messages.next();
  assert.equal(result.done, false, "the iterator ended early");
  return text(result.value as Uint8Array);
}

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: a device connects, gets send, sendType and sendAll, and talks back`, async () => {
    await using manager = await startManager();
    const received: string[] = [];
    manager.on("message", (_client, data) => void received.push(text(data)));
    await using light = await connectTo(manager, { mode, data: { room: "hall" } });
    const client = manager.get(light.uuid)!;
    assert.equal(client.mode, mode);
    assert.equal(light.mode, mode);
    assert.equal(light.connected, true);
    assert.deepEqual(client.info, { uuid: light.uuid, type: "light", data: { room: "hall" } });
    assert.deepEqual(light.settings?.heartbeatRate, mode === 2 ? 60 : undefined);

    const messages = light[Symbol.asyncIterator]();
    // Mode 1 has no message boundaries: wait for each message before sending the next.
    assert.equal(await manager.send(light.uuid, "one"), 1);
    assert.equal(await next(messages), "one");
    assert.equal(await manager.sendType("light", "two"), 1);
    assert.equal(await next(messages), "two");
    assert.equal(await manager.sendAll("three"), 1);
    assert.equal(await next(messages), "three");

    assert.equal(await light.send("hello manager"), true);
    await waitFor(() => received.length === 1, "the device's message");
    assert.deepEqual(received, ["hello manager"]);
    assert.equal(light.stats.messagesReceived, 3);
    assert.equal(light.stats.messagesSent, 1);
  });

  Deno.test(`mode ${mode}: the iterator ends and closed says why when the manager closes`, async () => {
    const manager = await startManager();
    await using light = await connectTo(manager, { mode });
    const drops: [ConnectionEnd, boolean][] = [];
    light.on("disconnect", (end, willReconnect) => void drops.push([end, willReconnect]));
    const collected = (async () => {
      const all: string[] = [];
      for await (const message of light) all.push(text(message));
      return all;
    })();
    await manager.sendAll("last words");
    await waitFor(() => light.stats.messagesReceived === 1, "the message");
    await manager.close();
    assert.deepEqual(await collected, ["last words"]);
    const end = await light.closed;
    // Mode 2's END carries the reason; mode 1's `end\n` cannot.
    const reason = mode === 2 ? "manager-closed" : "ended";
    assert.equal(end.reason, reason);
    if (mode === 2) assert.match(end.message, /shutting down/);
    assert.equal(light.connected, false);
    assert.deepEqual(drops.map(([e, again]) => [e.reason, again]), [[reason, false]]);
    assert.equal(await light.send("anyone?"), false);
  });

  Deno.test(`mode ${mode}: heartbeats are answered round after round`, async () => {
    await using manager = await startManager({ heartbeatRate: 0.2, heartbeatTimeout: 1 });
    await using light = await connectTo(manager, { mode });
    const rounds = manager.heartbeatRounds;
    await waitFor(() => manager.heartbeatRounds >= rounds + 4, "four heartbeat rounds");
    await waitFor(() => light.stats.heartbeatsAnswered >= 4, "four beats");
    assert.equal(light.connected, true);
    assert.ok(manager.get(light.uuid), "still registered");
  });

  Deno.test(`mode ${mode}: a device told not to answer heartbeats is dropped for it`, async () => {
    await using manager = await startManager({ heartbeatRate: 0.1, heartbeatTimeout: 0.3 });
    await using light = await connectTo(manager, { mode, answerHeartbeats: false });
    const client = manager.get(light.uuid)!;
    assert.equal((await client.closed).reason, "heartbeat");
    const end = await light.closed;
    assert.equal(end.reason, mode === 2 ? "heartbeat" : "ended");
    if (mode === 2) assert.match(end.message, /no beat/);
    assert.ok(light.stats.heartbeatsIgnored >= 1);
    assert.equal(light.stats.heartbeatsAnswered, 0);
  });

  Deno.test(`mode ${mode}: getinfo is answered with the device's current data`, async () => {
    await using manager = await startManager();
    await using lock = await connectTo(manager, { mode, type: "lock", data: { locked: true } });
    lock.data = { locked: false, battery: 80 };
    const info = await manager.get(lock.uuid)!.getData({ timeout: 5 });
    assert.deepEqual(info, { uuid: lock.uuid, type: "lock", data: { locked: false, battery: 80 } });
    assert.deepEqual(manager.get(lock.uuid)!.data, { locked: false, battery: 80 });
  });

  Deno.test(`mode ${mode}: close() ends the iterator and the manager sees the device leave`, async () => {
    await using manager = await startManager();
    const light = await connectTo(manager, { mode });
    const client = manager.get(light.uuid)!;
    const iterating = (async () => {
      for await (const _ of light) { /* nothing arrives */ }
      return "ended";
    })();
    await light.close();
    await light.close(); // idempotent
    assert.equal(await iterating, "ended");
    assert.equal((await light.closed).reason, "kicked");
    assert.equal((await client.closed).reason, mode === 2 ? "ended" : "closed");
    assert.equal(manager.size, 0);
  });
}

Deno.test("TLS: a device connects with the test CA and answers a request", async () => {
  await using manager = await startManager({ tls: { cert: tlsFiles.cert, key: tlsFiles.key } });
  await using light = await connectTo(manager, { mode: 2 });
  const answering = (async () => {
    for await (const message of light) await light.send(`echo ${text(message)}`);
  })();
  const answer = await manager.get(light.uuid)!.requestString("status", { timeout: 5 });
  assert.equal(answer, "echo status");
  await light.close();
  await answering;
});

Deno.test("TLS: a device that does not trust the manager's certificate cannot connect", async () => {
  await using manager = await startManager({ tls: { cert: tlsFiles.cert, key: tlsFiles.key } });
  await assert.rejects(
    Device.connect({ port: manager.port, type: "light", tls: true, connectTimeout: 5 }),
    (error: ConnectionEnd) => error.name === "ConnectionEnd" && error.reason === "io",
  );
});

Deno.test("client.end() ends the device's iterator with reason ended and the manager's words", async () => {
  await using manager = await startManager();
  await using light = await connectTo(manager, { mode: 2 });
  const iterating = (async () => {
    for await (const _ of light) { /* nothing arrives */ }
  })();
  await manager.get(light.uuid)!.end({ reason: "maintenance" });
  await iterating;
  const end = await light.closed;
  assert.equal(end.reason, "ended");
  assert.match(end.message, /kicked: maintenance/);
});

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: after the manager drops it, a device reconnects and is registered again`, async () => {
    await using manager = await startManager();
    await using light = await connectTo(manager, {
      mode,
      reconnect: { initialDelay: 0.02, maxDelay: 0.1, jitter: 0.5 },
    });
    const drops: [string, boolean][] = [];
    light.on("disconnect", (end, willReconnect) => void drops.push([end.reason, willReconnect]));
    let reconnected = 0;
    light.on("reconnect", () => void reconnected++);
    const messages = light[Symbol.asyncIterator]();
    const first = manager.get(light.uuid)!;
    await first.end({ reason: "go away for a bit" });
    await waitFor(() => light.reconnects === 1, "the reconnection");
    await waitFor(() => manager.get(light.uuid) !== undefined, "registered again");
    assert.notEqual(manager.get(light.uuid), first);
    assert.equal(reconnected, 1);
    assert.deepEqual(drops, [["ended", true]]);
    assert.equal(light.connected, true);
    // The same iterator carries on across the reconnection.
    await manager.send(light.uuid, "welcome back");
    assert.equal(await next(messages), "welcome back");
  });
}

Deno.test("reconnect: backs off while the manager is down and returns when it is back", async () => {
  const first = await startManager();
  const port = first.port;
  await using light = await connectTo(first, {
    mode: 2,
    reconnect: { initialDelay: 0.05, maxDelay: 0.2, jitter: 0.1 },
  });
  const drops: boolean[] = [];
  light.on("disconnect", (_end, willReconnect) => void drops.push(willReconnect));
  await first.close();
  await waitFor(() => drops.length === 1, "the drop");
  assert.equal(light.connected, false);
  assert.equal(await light.send("while away"), false);
  await new Promise((resolve) => setTimeout(resolve, 300)); // let a few attempts be refused
  await using second = await startManager({ port });
  await waitFor(() => second.get(light.uuid) !== undefined, "registered with the new manager");
  assert.equal(light.reconnects, 1);
  assert.equal(light.connected, true);
});

Deno.test("reconnect: close() during the backoff stops reconnecting at once", async () => {
  const manager = await startManager();
  const light = await connectTo(manager, { mode: 2, reconnect: { initialDelay: 60 } });
  await manager.close();
  await waitFor(() => !light.connected, "the drop");
  await light.close();
  assert.equal((await light.closed).reason, "kicked");
});

Deno.test("reconnect: gives up after maxAttempts with reason io", async () => {
  const manager = await startManager();
  const light = await connectTo(manager, {
    mode: 2,
    reconnect: { initialDelay: 0.01, maxDelay: 0.02, maxAttempts: 3 },
  });
  await manager.close();
  const end = await light.closed;
  assert.equal(end.reason, "io");
  assert.match(end.message, /gave up reconnecting after 3 attempts/);
});

Deno.test("backoffDelay: decorrelated jitter between initialDelay and 3x the last wait, capped", () => {
  const exact = {
    initialDelay: 0.5,
    maxDelay: 4,
    jitter: 0,
    maxAttempts: Infinity,
    maxReplaced: 3,
  };
  const waits: number[] = [];
  for (let previous = 500, i = 0; i < 4; i++) waits.push(previous = backoffDelay(previous, exact));
  assert.deepEqual(waits, [1500, 4000, 4000, 4000], "no jitter: three times the last, capped");
  const full = { ...exact, jitter: 1 };
  assert.equal(backoffDelay(1000, full, () => 0), 3000);
  assert.equal(backoffDelay(1000, full, () => 0.999999) < 501, true, "down to initialDelay");
  assert.equal(backoffDelay(3000, full, () => 0), 4000, "capped at maxDelay");
  const half = { ...exact, jitter: 0.5 };
  assert.equal(backoffDelay(1000, half, () => 1), 1750);
});
for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: two live devices with one UUID settle; the conflict is logged once`, async () => {
    await using logs = await LogCapture.start();
    await using manager = await startManager();
    const takeovers: string[] = [];
    manager.on("disconnect", (_client, end) => void takeovers.push(end.reason));
    const uuid = crypto.randomUUID();
    const reconnect = { initialDelay: 0.02, maxDelay: 0.1 };
    await using first = await connectTo(manager, { uuid, mode, reconnect });
    await using second = await connectTo(manager, { uuid, mode, reconnect });
    // The first takes the UUID back once; that second takeover is the conflict, and its
    // winner keeps the UUID: the other is refused from then on, in either mode.
    await waitFor(() => logs.matching({ reason: "uuid-conflict" }).length === 1, "the conflict");
    const holder = manager.get(uuid);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // many backoffs of the loser
    assert.equal(manager.get(uuid), holder, "the holder keeps the UUID");
    assert.ok(takeovers.filter((reason) => reason === "replaced").length <= 2, takeovers.join());
    const connected = () => [first, second].filter((device) => device.connected).length;
    if (mode === 2) {
      assert.equal(connected(), 1);
    } else {
      // A mode-1 device counts as connected once its answer is written (mode 1 has no WELCOME),
      // so the loser is, for a moment, between each refused attempt and the manager closing it.
      await waitFor(() => connected() === 1, "the loser between two refused attempts");
    }
    assert.equal(logs.matching({ reason: "uuid-conflict" }).length, 1, "logged once");
    const conflict = logs.matching({ reason: "uuid-conflict" })[0];
    assert.match(LogCapture.text(conflict), /127\.0\.0\.1:\d+ and 127\.0\.0\.1:\d+/);
    if (mode === 2) await logs.waitFor({ reason: "conflict" }); // the loser's refusals, logged
  });
}

Deno.test("a Device taken over maxReplaced times in a row stops with reason replaced", async () => {
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  await using device = await connectTo(manager, {
    uuid,
    reconnect: { initialDelay: 0.02, maxDelay: 0.05, maxReplaced: 2 },
  });
  // Another party takes the UUID twice, each time after the device came back.
  for (let i = 0; i < 2; i++) {
    await waitFor(() => device.connected, "the device connected");
    const raw = await RawDevice.connect(manager.port);
    await raw.readBytes(1);
    await raw.write(encodeHandshake({ uuid, type: "light", data: {} }, 2));
    await raw.readFrameOf(FrameType.WELCOME);
    const end = i === 0 ? null : await device.closed;
    raw.close();
    if (end) {
      assert.equal(end.reason, "replaced");
      assert.match(end.message, /another device is using UUID/);
    }
  }
});
Deno.test("a slow consumer pauses reading and loses nothing", async () => {
  await using manager = await startManager();
  await using light = await connectTo(manager, { mode: 2, highWaterMark: 2 });
  for (let i = 0; i < 50; i++) await manager.send(light.uuid, `m${i}`);
  const got: string[] = [];
  for await (const message of light) {
    got.push(text(message));
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (got.length === 50) break;
  }
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `m${i}`));
});

Deno.test("mode 2: binary payloads and messages that look like control text arrive intact", async () => {
  await using manager = await startManager();
  await using light = await connectTo(manager, { mode: 2 });
  const messages = light[Symbol.asyncIterator]();
  await manager.send(light.uuid, Uint8Array.of(0, 1, 2, 255));
  assert.deepEqual((await messages.next()).value, Uint8Array.of(0, 1, 2, 255));
  await manager.send(light.uuid, "end\n");
  assert.equal(await next(messages), "end\n");
  assert.equal(light.connected, true);
});

Deno.test("a handshake the manager rejects fails Device.connect with its reason in mode 2 and closes in mode 1", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ validTypes: ["lock"] });
  await assert.rejects(
    Device.connect({ port: manager.port, type: "light", mode: 2 }),
    (error: InvalidInfo) =>
      error instanceof InvalidInfo && error.reason === "type" &&
      /"light" is not one of "lock"/.test(error.message),
  );
  await logs.waitFor({ reason: "type" });
  await using old = await Device.connect({ port: manager.port, type: "light", mode: 1 });
  assert.equal((await old.closed).reason, "closed");
});

Deno.test("authentication: the right secret is welcomed, a wrong one is refused with the reason", async () => {
  const secrets = new Map<string, string>();
  await using manager = await startManager({
    authenticate: hmacAuthenticator((uuid) => secrets.get(uuid)),
  });
  const uuid = crypto.randomUUID();
  secrets.set(uuid, "s3cret");
  await using good = await connectTo(manager, { uuid, secret: "s3cret" });
  assert.equal(good.connected, true);
  const client = manager.get(uuid);
  await assert.rejects(
    Device.connect({ port: manager.port, type: "light", uuid, secret: "guess" }),
    (error: InvalidInfo) =>
      error instanceof InvalidInfo && error.reason === "auth" && /wrong proof/.test(error.message),
  );
  assert.equal(manager.get(uuid), client, "the good device keeps its place");
});

Deno.test("a refused connection and a bad option fail fast with typed errors", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    Device.connect({ port, type: "light" }),
    (error: ConnectionEnd) => error.name === "ConnectionEnd" && error.reason === "io",
  );
  await assert.rejects(Device.connect({ port, type: "light", uuid: "nope" }), TypeError);
  await assert.rejects(Device.connect({ port, type: "li##ght" }), TypeError);
  await assert.rejects(Device.connect({ port, type: "light", data: [] as never }), TypeError);
});

Deno.test("the signal closes a device; an aborted signal fails connect", async () => {
  await using manager = await startManager();
  const controller = new AbortController();
  const light = await connectTo(manager, { signal: controller.signal });
  controller.abort();
  assert.equal((await light.closed).reason, "kicked");
  await assert.rejects(
    Device.connect({ port: manager.port, type: "light", signal: AbortSignal.abort() }),
  );
});

Deno.test("connectTimeout: a server that never says getinfo times the handshake out", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  await assert.rejects(
    Device.connect({
      port: (listener.addr as Deno.NetAddr).port,
      type: "light",
      connectTimeout: 0.2,
    }),
    (error: Error) => error.name === "TimeoutError",
  );
  (await accepted).close();
  listener.close();
});

Deno.test("mode 1: control bytes coalesced with messages are answered, end\\n then close is the goodbye", async () => {
  // A scripted manager on a raw socket, so the test chooses exactly how bytes are split.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connecting = Device.connect({
    port: (listener.addr as Deno.NetAddr).port,
    type: "light",
    mode: 1,
    data: { on: false },
  });
  const conn = await listener.accept();
  listener.close();
  const read = async () => {
    const buffer = new Uint8Array(1024);
    const count = await conn.read(buffer);
    return text(buffer.subarray(0, count ?? 0));
  };
  await conn.write(Uint8Array.of(0x01));
  const light = await connecting;
  assert.match(await read(), new RegExp(`^${light.uuid}##light##\\{"on":false\\}$`));
  const messages = light[Symbol.asyncIterator]();
  await conn.write(bytes("on\x02"));
  assert.equal(await next(messages), "on");
  assert.equal(await read(), "beat");
  await conn.write(bytes("\x01off"));
  assert.equal(await next(messages), "off");
  assert.match(await read(), /##light##/);
  await conn.write(bytes("sendend\n"));
  assert.equal(await next(messages), "send");
  await conn.write(bytes("x"));
  assert.equal(await next(messages), "end\nx", "end\\n not followed by a close is data");
  await conn.write(bytes("byeend\n"));
  assert.equal(await next(messages), "bye");
  conn.close();
  assert.equal((await messages.next()).done, true);
  assert.equal((await light.closed).reason, "ended");
  assert.equal(light.stats.heartbeatsAnswered, 1);
});

Deno.test("mode 2: a manager that breaks the protocol ends the device with reason protocol", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connecting = Device.connect({ port: (listener.addr as Deno.NetAddr).port, type: "lock" });
  const conn = await listener.accept();
  listener.close();
  await conn.write(Uint8Array.of(0x01));
  await conn.read(new Uint8Array(1024));
  await conn.write(encodeFrame(FrameType.WELCOME, "{}"));
  const lock = await connecting;
  await conn.write(Uint8Array.of(0x7f, 0, 0, 0, 0));
  const end = await lock.closed;
  assert.equal(end.reason, "protocol");
  const rest = new Uint8Array(1024);
  const count = await conn.read(rest);
  assert.equal(rest[0], FrameType.END, `the device said END (got ${count} bytes)`);
  conn.close();
});

const CONTROL = new Set([0x01, 0x02]);
const withoutControls = (bytes: Uint8Array) => bytes.filter((byte) => !CONTROL.has(byte));
const END = bytes("end\n");
/** Byte streams rich in control bytes and "end\n". */
const managerStream = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 8 }),
    fc.constantFrom(Uint8Array.of(0x01), Uint8Array.of(0x02), END, bytes("e"), bytes("nd\n")),
  ),
  { maxLength: 12 },
).map((parts) => new Uint8Array(parts.flatMap((part) => [...part])));

Deno.test("property: a mode-1 read splits into its control bytes and the rest, nothing lost", () => {
  fc.assert(
    fc.property(managerStream, fc.boolean(), (chunk, heldEnd) => {
      const split = splitManagerChunk(chunk, heldEnd);
      assert.deepEqual(split.controls, [...chunk].filter((byte) => CONTROL.has(byte)));
      const stripped = new Uint8Array([...(heldEnd ? END : []), ...withoutControls(chunk)]);
      const rebuilt = new Uint8Array([...split.message, ...(split.heldEnd ? END : [])]);
      assert.deepEqual(rebuilt, stripped);
      assert.equal(split.heldEnd, text(stripped).endsWith("end\n"));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("property: whatever the split into reads, the messages join up to the stream", () => {
  fc.assert(
    fc.property(
      managerStream,
      fc.array(fc.nat(), { maxLength: 6 }),
      (stream, cuts) => {
        const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) =>
          a - b
        );
        let held = false;
        const out: number[] = [];
        let controls = 0;
        for (const [i, end] of [...points, stream.length].entries()) {
          const start = i === 0 ? 0 : points[i - 1];
          const split = splitManagerChunk(stream.subarray(start, end), held);
          out.push(...split.message);
          controls += split.controls.length;
          held = split.heldEnd;
        }
        if (held) out.push(...END);
        assert.deepEqual(new Uint8Array(out), withoutControls(stream));
        assert.equal(controls, stream.length - withoutControls(stream).length);
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("a device that closes while the manager is still writing to it says goodbye cleanly", async () => {
  await using manager = await startManager({ heartbeatRate: 60 });
  const reasons: string[] = [];
  manager.on("disconnect", (_client, end) => void reasons.push(`${end.reason}: ${end.message}`));
  // The manager keeps talking to every device: a broadcast every millisecond.
  const stream = setInterval(() => void manager.sendAll("status\n"), 1);
  try {
    for (let i = 0; i < 40; i++) {
      const device = await Device.connect({ port: manager.port, type: "light" });
      const reading = (async () => {
        for await (const _ of device) { /* read, as a device does */ }
      })();
      await waitFor(() => device.stats.messagesReceived > 0, "a broadcast");
      await device.close("bye");
      await reading;
    }
    await waitFor(() => reasons.length === 40, "40 disconnects");
  } finally {
    clearInterval(stream);
  }
  // Closing with unread input would reset the connection: the manager's writes fail (EPIPE)
  // and it may never read the END.
  assert.deepEqual(reasons.filter((reason) => !reason.startsWith("ended")), []);
});

Deno.test("reconnect: a refusal another attempt cannot change stops the device with reason refused", async () => {
  const first = await startManager({ validTypes: ["light", "lock"] });
  const port = first.port;
  await using lock = await connectTo(first, {
    type: "lock",
    reconnect: { initialDelay: 0.02, maxDelay: 0.1 },
  });
  await first.close();
  // The manager comes back on the same port without locks.
  await using second = await startManager({ validTypes: ["light"], port });
  const end = await lock.closed;
  assert.equal(end.reason, "refused");
  assert.ok(end.cause instanceof InvalidInfo);
  assert.equal(end.cause.reason, "type");
  assert.equal(lock.connected, false);
  assert.equal(second.size, 0);
});
