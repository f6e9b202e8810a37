import assert from "node:assert/strict";
import { type Client, Device, TimeoutError } from "../mod.ts";
import { encodeFrame, encodeHandshake, FrameType } from "../lib/protocol/mod.ts";
import {
  bytes,
  connectDevice,
  decodeFrames,
  LogCapture,
  type RawDevice,
  startManager,
  text,
  waitFor,
} from "./_helpers.ts";

Deno.test("request is exclusive: the answer goes to the requester, other messages to handlers", async () => {
  await using manager = await startManager();
  const seen: string[] = [];
  manager.on("message", (_client, data) => void seen.push(text(data)));
  await using device = await connectDevice(manager, { mode: 2 });
  const client = manager.get(device.uuid)!;
  // Telemetry before the request goes to handlers.
  await device.write(encodeFrame(FrameType.DATA, "telemetry 1"));
  await waitFor(() => seen.length === 1, "telemetry");
  // Two concurrent requests run one after the other, each getting its own answer.
  const first = client.requestString("status a", { timeout: 5 });
  const second = client.requestString("status b", { timeout: 5 });
  assert.equal(text(await device.readFrameOf(FrameType.DATA)), "status a");
  await device.write(encodeFrame(FrameType.DATA, "answer a"));
  assert.equal(await first, "answer a");
  assert.equal(text(await device.readFrameOf(FrameType.DATA)), "status b");
  await device.write(encodeFrame(FrameType.DATA, "answer b"));
  assert.equal(await second, "answer b");
  await device.write(encodeFrame(FrameType.DATA, "telemetry 2"));
  await waitFor(() => seen.length === 2, "telemetry");
  assert.deepEqual(seen, ["telemetry 1", "telemetry 2"]);
});

Deno.test("recv times out with TimeoutError and the connection stays open", async () => {
  await using manager = await startManager();
  await using device = await connectDevice(manager, { mode: 1 });
  const client = manager.get(device.uuid)!;
  await assert.rejects(client.recv({ timeout: 0.05 }), TimeoutError);
  assert.equal(client.connected, true);
  const next = client.recvString({ timeout: 5 });
  await device.write("late");
  assert.equal(await next, "late");
  const aborted = new AbortController();
  const waiting = client.recv({ signal: aborted.signal, timeout: Infinity });
  aborted.abort(new Error("stop waiting"));
  await assert.rejects(waiting, /stop waiting/);
});

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: getData asks again and updates the client's data`, async () => {
    await using manager = await startManager();
    await using device = await connectDevice(manager, { mode, data: { version: 1 } });
    const client = manager.get(device.uuid)!;
    const asked = client.getData({ timeout: 5 });
    const info = { uuid: device.uuid, type: "light", data: { version: 2 } };
    if (mode === 1) {
      assert.equal((await device.readBytes(1))[0], 0x01);
      const answer = bytes(`${device.uuid}##light##{"version":2}`);
      await device.write(answer.subarray(0, 20)); // split on purpose
      await new Promise((resolve) => setTimeout(resolve, 10));
      await device.write(answer.subarray(20));
    } else {
      assert.equal((await device.readFrame()).type, FrameType.GETINFO);
      await device.write(encodeHandshake(info, 2).subarray(4)); // the INFO frame alone
    }
    assert.deepEqual(await asked, info);
    assert.deepEqual(client.data, { version: 2 });
    assert.deepEqual(manager.getClientData(), [info]);
  });
}

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: a device that re-identifies as another type is seen only as that type`, async () => {
    await using manager = await startManager();
    await using device = await connectDevice(manager, { mode, type: "light" });
    await using bystander = await connectDevice(manager, { mode: 2, type: "lock" });
    const client = manager.get(device.uuid)!;
    const lightMessages: string[] = [];
    const lockMessages: string[] = [];
    manager.on("message", (_c, data) => void lightMessages.push(text(data)), { type: "light" });
    manager.on("message", (_c, data) => void lockMessages.push(text(data)), { type: "lock" });
    const newLocks = manager.clients({ type: "lock", existing: false });
    const asked = client.getData({ timeout: 5 });
    const info = { uuid: device.uuid, type: "lock", data: { locked: true } };
    if (mode === 1) {
      assert.equal((await device.readBytes(1))[0], 0x01);
      await device.write(encodeHandshake(info, 1));
    } else {
      assert.equal((await device.readFrame()).type, FrameType.GETINFO);
      await device.write(encodeHandshake(info, 2).subarray(4));
    }
    assert.deepEqual(await asked, info);
    assert.equal(client.type, "lock");
    assert.equal(manager.countOfType("light"), 0);
    assert.equal(manager.countOfType("lock"), 2);
    assert.deepEqual(
      manager.getClientData().find((entry) => entry.uuid === device.uuid),
      info,
    );
    assert.equal(await manager.sendType("light", "for lights"), 0);
    assert.equal(await manager.sendType("lock", "for locks"), 2);
    const existingLocks: string[] = [];
    for await (const lock of manager.clients({ type: "lock" })) {
      existingLocks.push(lock.uuid);
      if (existingLocks.length === 2) break;
    }
    assert.deepEqual(existingLocks.sort(), [device.uuid, bystander.uuid].sort());
    // An iterator of new locks sees the device when it becomes one.
    assert.equal(await newLocks.next().then((next) => next.value?.uuid), device.uuid);
    await newLocks.return?.();
    await device.write(mode === 1 ? "now a lock" : encodeFrame(FrameType.DATA, "now a lock"));
    await waitFor(() => lockMessages.length === 1, "the message under the new type");
    assert.deepEqual(lightMessages, []);
    device.close();
    await client.closed;
    assert.equal(manager.countOfType("light"), 0, "nothing outlives the disconnect");
    assert.equal(manager.countOfType("lock"), 1);
    assert.equal(manager.size, 1);
  });
}

Deno.test("a second connection with the same UUID replaces the first", async () => {
  await using manager = await startManager();
  const reasons: string[] = [];
  manager.on("disconnect", (_client, end) => void reasons.push(end.reason));
  await using first = await connectDevice(manager, { mode: 2, data: { n: 1 } });
  const firstClient = manager.get(first.uuid)!;
  await using second = await connectDevice(manager, { mode: 1, uuid: first.uuid, data: { n: 2 } });
  await waitFor(() => manager.get(first.uuid) !== firstClient, "takeover");
  assert.equal((await firstClient.closed).reason, "replaced");
  const farewell = decodeFrames(await first.readToEnd());
  assert.equal(farewell.at(-1)?.type, FrameType.END);
  assert.match(text(farewell.at(-1)!.payload), /replaced by a new connection/);
  assert.equal(manager.size, 1);
  assert.deepEqual(manager.get(first.uuid)!.data, { n: 2 });
  await waitFor(() => reasons.length === 1, "disconnect event");
  assert.deepEqual(reasons, ["replaced"]);
  assert.equal(await manager.send(first.uuid, "to the new one"), 1);
  assert.equal(await second.readUntil("to the new one"), "to the new one");
});

Deno.test("a client's iterator yields its messages and ends when the device disconnects", async () => {
  await using manager = await startManager();
  await using device = await connectDevice(manager, { mode: 2 });
  const client = manager.get(device.uuid)!;
  const collected = (async () => {
    const out: string[] = [];
    for await (const data of client) out.push(text(data));
    return out;
  })(); // subscribes synchronously, before the first await
  await device.write(encodeFrame(FrameType.DATA, "a"));
  await device.write(encodeFrame(FrameType.DATA, "b"));
  await device.write(encodeFrame(FrameType.END, "bye"));
  assert.deepEqual(await collected, ["a", "b"]);
  const end = await client.closed;
  assert.equal(end.reason, "ended");
  assert.match(end.message, /bye/);
});

Deno.test("manager iterators end on close; close() with devices connected leaves nothing open", async () => {
  const manager = await startManager();
  const devices = await Promise.all([
    connectDevice(manager, { mode: 1 }),
    connectDevice(manager, { mode: 2, type: "lock" }),
  ]);
  const clients: Client[] = [];
  const clientLoop = (async () => {
    for await (const client of manager) clients.push(client);
  })();
  const messageLoop = (async () => {
    let count = 0;
    for await (const _message of manager.messages({ type: "lock" })) count++;
    return count;
  })();
  const perClient = (async () => {
    for await (const _ of manager.get(devices[0].uuid)!) { /* drain */ }
  })();
  await devices[1].write(encodeFrame(FrameType.DATA, "x"));
  await waitFor(() => clients.length === 2, "existing clients listed");
  await manager.close();
  await manager.close(); // idempotent
  await clientLoop;
  assert.equal(await messageLoop, 1);
  await perClient;
  assert.equal(manager.size, 0);
  assert.equal(text(await devices[0].readToEnd()), "end\n");
  assert.equal(decodeFrames(await devices[1].readToEnd()).at(-1)?.type, FrameType.END);
  for (const device of devices) device.close();
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: manager.port }));
});

Deno.test("end() says goodbye, fires disconnect once, and raiseException rejects", async () => {
  await using manager = await startManager();
  let disconnects = 0;
  manager.on("disconnect", () => void disconnects++);
  await using device = await connectDevice(manager, { mode: 1 });
  const client = manager.get(device.uuid)!;
  await assert.rejects(client.end({ raiseException: true, reason: "bye" }), {
    name: "ConnectionEnd",
    reason: "kicked",
  });
  await client.end(); // idempotent
  assert.equal(text(await device.readToEnd()), "end\n");
  assert.equal(await client.send("anyone?"), false);
  await assert.rejects(client.recv(), { name: "ConnectionEnd" });
  await waitFor(() => disconnects === 1, "one disconnect");
  assert.equal(manager.size, 0);
});

Deno.test("an AbortSignal ends waiting iterators and removes a handler", async () => {
  await using manager = await startManager();
  const controller = new AbortController();
  let handled = 0;
  manager.on("message", () => void handled++, { signal: controller.signal });
  await using device = await connectDevice(manager, { mode: 2 });
  const client = manager.get(device.uuid)!;
  const waits = [
    (async () => {
      for await (const _ of manager.clients({ existing: false, signal: controller.signal })) {
        // no new device arrives
      }
    })(),
    (async () => {
      for await (const _ of manager.messages({ signal: controller.signal })) { /* none */ }
    })(),
    (async () => {
      for await (const _ of client.messages({ signal: controller.signal })) { /* none */ }
    })(),
  ];
  controller.abort();
  await Promise.all(waits); // each loop ends although nothing arrived
  let dispatched = 0;
  manager.on("message", () => void dispatched++);
  await device.write(encodeFrame(FrameType.DATA, "after abort"));
  await waitFor(() => dispatched === 1, "the message dispatched to handlers");
  assert.equal(handled, 0, "the aborted handler was removed");
});

Deno.test("devices that are still sending when the manager closes all get its goodbye", async () => {
  const manager = await startManager();
  const devices = await Promise.all(
    Array.from({ length: 50 }, () => Device.connect({ port: manager.port, type: "light" })),
  );
  await waitFor(() => manager.size === 50, "50 devices");
  let sending = true;
  const senders = devices.map(async (device) => {
    while (sending && device.connected) {
      await device.send("x".repeat(2048));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await manager.close();
  const ends = await Promise.all(devices.map((device) => device.closed));
  sending = false;
  await Promise.all(senders);
  // Without a half-close the unread input makes the kernel reset the connection, and the
  // device never reads the END that was already sent.
  assert.deepEqual(
    ends.filter((end) => end.reason !== "manager-closed").map((end) => end.message),
    [],
  );
});

Deno.test("maxFrameSize counts the payload: a frame of exactly the limit is delivered, one byte more is refused", async () => {
  await using manager = await startManager({ maxFrameSize: 1024 });
  const received = manager.messages();
  await using device = await connectDevice(manager, { mode: 2 });
  await device.write(encodeFrame(FrameType.DATA, new Uint8Array(1024).fill(0x61)));
  assert.equal((await received.next()).value?.data.length, 1024);
  await device.write(encodeFrame(FrameType.DATA, new Uint8Array(1025)));
  const end = await manager.get(device.uuid)!.closed;
  assert.equal(end.reason, "protocol");
  assert.match(end.message, /1025 bytes is over the 1024-byte limit/);
  await received.return?.();
});

Deno.test("one device back twice within a minute, its old connections stale, is admitted each time; no conflict", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ heartbeatTimeout: 0.5 });
  const uuid = crypto.randomUUID();
  // Each "restart" leaves the previous connection open but silent, as a crashed or frozen
  // device does until its TCP connection times out.
  const stale: RawDevice[] = [];
  try {
    for (let restart = 0; restart < 3; restart++) {
      const device = await connectDevice(manager, { mode: 2, uuid });
      stale.push(device);
      await waitFor(() => manager.get(uuid) !== undefined, "admitted");
    }
    assert.equal(manager.size, 1);
    assert.deepEqual(logs.matching({ reason: "uuid-conflict" }), []);
    assert.deepEqual(logs.matching({ reason: "conflict" }), []);
  } finally {
    for (const device of stale) device.close();
  }
});
