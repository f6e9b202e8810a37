/**
 * Desired and reported state (mode 2, feature `state`) and messages kept for
 * devices that are away (`send` with `ttl`), end to end on real sockets.
 */
import assert from "node:assert/strict";
import {
  Device,
  type DeviceOptions,
  type DeviceRecord,
  type Manager,
  MemoryStore,
  type StateChange,
} from "../mod.ts";
import { encodeFeatures, encodeFrame, FrameType } from "../lib/protocol/mod.ts";
import { connectDevice, LogCapture, startManager, text, waitFor } from "./_helpers.ts";

/** A lock that does what the desired state says and reports it. */
async function obedientLock(manager: Manager, options: Partial<DeviceOptions> = {}) {
  const lock = await Device.connect({
    port: manager.port,
    type: "lock",
    data: { locked: false, battery: 90 },
    ...options,
  });
  lock.on("delta", (delta) => void lock.report(delta));
  return lock;
}

const converged = (manager: Manager, uuid: string) => () => {
  const state = manager.state.get(uuid);
  return state !== undefined && state.connected && Object.keys(state.delta).length === 0;
};

Deno.test("state: a lock away when it is locked is locked once it reconnects", async () => {
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  const first = await obedientLock(manager, { uuid });
  await waitFor(() => manager.state.get(uuid)?.connected === true, "first connection");
  await first.close();
  await waitFor(() => manager.state.get(uuid)?.connected === false, "the lock gone");
  assert.equal(manager.state.get(uuid)?.lastEnd?.reason, "ended");

  const state = await manager.state.setDesired(uuid, { locked: true });
  assert.deepEqual(state.delta, { locked: true });
  assert.equal(state.version, 1);
  assert.equal(state.connected, false);

  await using again = await obedientLock(manager, { uuid });
  await waitFor(converged(manager, uuid), "the lock locked");
  assert.deepEqual(manager.state.get(uuid)?.reported, { locked: true, battery: 90 });
  assert.deepEqual(again.data, { locked: true, battery: 90 });
});

Deno.test("state: setDesiredType reaches every lock, connected or not, and changes are iterable", async () => {
  await using manager = await startManager();
  await using a = await obedientLock(manager);
  await using b = await obedientLock(manager);
  await using light = await Device.connect({ port: manager.port, type: "light" });
  await waitFor(() => manager.state.all().length === 3, "three known devices");
  const changes: StateChange[] = [];
  const watching = (async () => {
    for await (const change of manager.state.changes({ type: "lock" })) changes.push(change);
  })();
  assert.equal(await manager.state.setDesiredType("lock", { locked: true }), 2);
  await waitFor(converged(manager, a.uuid), "a converged");
  await waitFor(converged(manager, b.uuid), "b converged");
  assert.deepEqual(manager.state.get(light.uuid)?.desired, {}, "lights are not locks");
  assert.deepEqual(
    changes.filter((c) => c.kind === "desired").map((c) => c.state.uuid).sort(),
    [a.uuid, b.uuid].sort(),
  );
  await waitFor(() => changes.filter((c) => c.kind === "reported").length >= 2, "two reports");
  assert.ok(changes.every((c) => c.state.type === "lock"));
  await manager.close();
  await watching; // the iterator ends with the manager
});

Deno.test("state: a null in a desired patch removes the key; reports merge", async () => {
  await using manager = await startManager();
  await using lock = await obedientLock(manager);
  await waitFor(() => manager.state.get(lock.uuid)?.connected === true, "connected");
  await manager.state.setDesired(lock.uuid, { locked: true, schedule: { night: true } });
  await waitFor(converged(manager, lock.uuid), "converged");
  await manager.state.setDesired(lock.uuid, { schedule: null });
  assert.deepEqual(manager.state.get(lock.uuid)?.desired, { locked: true });
  assert.equal(manager.state.get(lock.uuid)?.version, 2);
  assert.equal(await lock.report({ battery: 80 }), true);
  await waitFor(() => manager.state.get(lock.uuid)?.reported.battery === 80, "report merged");
});

Deno.test("state: an older mode-2 device is tracked from its handshake and never sent a DELTA", async () => {
  await using manager = await startManager();
  await using old = await connectDevice(manager, {
    mode: 2,
    type: "lock",
    data: { locked: false },
  });
  await old.write(encodeFrame(FrameType.BEAT)); // its first frame: no features
  await manager.state.setDesired(old.uuid, { locked: true });
  await manager.get(old.uuid)!.send("after");
  const next = await old.readFrame();
  assert.equal(next.type, FrameType.DATA, "DATA, not a DELTA");
  assert.equal(text(next.payload), "after");
  assert.deepEqual(manager.state.get(old.uuid)?.delta, { locked: true });
});

Deno.test("kept: a message sent with ttl to an absent device arrives, acknowledged, when it is back", async () => {
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  const first = await Device.connect({ port: manager.port, type: "lock", uuid });
  await waitFor(() => manager.state.get(uuid) !== undefined, "known");
  await first.close();
  await waitFor(() => manager.state.get(uuid)?.connected === false, "gone");
  assert.equal(await manager.send(uuid, "unlock", { ttl: 60 }), 1);
  assert.equal(await manager.send(uuid, "lock", { ttl: 60 }), 1);
  const report = await manager.send(uuid, "status", { ttl: 60, ack: true });
  assert.equal(report.kept, 1);
  assert.deepEqual(report.failed, []);
  assert.equal(
    await manager.send(crypto.randomUUID(), "x", { ttl: 60 }),
    0,
    "never seen: not kept",
  );

  await using back = await Device.connect({ port: manager.port, type: "lock", uuid });
  const received: string[] = [];
  for await (const message of back) {
    received.push(text(message));
    if (received.length === 3) break;
  }
  assert.deepEqual(received, ["unlock", "lock", "status"]);
  await waitFor(() => manager.state.keptStats.delivered === 3, "three delivered");
  assert.deepEqual(manager.state.keptStats, { kept: 3, delivered: 3, expired: 0, dropped: 0 });
});

Deno.test("kept: expired messages are dropped and counted; bounds drop the oldest", async () => {
  await using manager = await startManager({ maxKeptPerDevice: 2 });
  const uuid = crypto.randomUUID();
  const away = async () => {
    const device = await Device.connect({ port: manager.port, type: "lock", uuid });
    await waitFor(() => manager.state.get(uuid)?.connected === true, "connected");
    await device.close();
    await waitFor(() => manager.state.get(uuid)?.connected === false, "gone");
  };
  const receive = async (count: number) => {
    await using back = await Device.connect({ port: manager.port, type: "lock", uuid });
    const received: string[] = [];
    for await (const message of back) {
      received.push(text(message));
      if (received.length === count) break;
    }
    return received;
  };
  await away();
  await manager.send(uuid, "stale", { ttl: 0.05 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  await manager.send(uuid, "fresh", { ttl: 60 });
  assert.deepEqual(await receive(1), ["fresh"]);
  await waitFor(() => manager.state.keptStats.delivered === 1, "delivered");
  assert.equal(manager.state.keptStats.expired, 1);

  await waitFor(() => manager.state.get(uuid)?.connected === false, "gone again");
  for (const command of ["one", "two", "three"]) await manager.send(uuid, command, { ttl: 60 });
  assert.deepEqual(await receive(2), ["two", "three"]);
  await waitFor(() => manager.state.keptStats.delivered === 3, "delivered");
  // Every message kept is accounted for: delivered, expired or dropped.
  assert.deepEqual(manager.state.keptStats, { kept: 5, delivered: 3, expired: 1, dropped: 1 });
});

Deno.test("kept: a mode-1 device gets its kept messages as plain messages when it is back", async () => {
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  const first = await connectDevice(manager, { mode: 1, type: "lock", uuid });
  first.close();
  await waitFor(() => manager.state.get(uuid)?.connected === false, "gone");
  assert.equal(await manager.send(uuid, "unlock", { ttl: 60 }), 1);
  await using back = await connectDevice(manager, { mode: 1, type: "lock", uuid });
  assert.equal(text(await back.readSome()), "unlock");
  await waitFor(() => manager.state.keptStats.delivered === 1, "delivered");
});

Deno.test("state: a report that moves a device away from its desired state gets the delta again, once", async () => {
  await using manager = await startManager();
  await using lock = await Device.connect({
    port: manager.port,
    type: "lock",
    data: { locked: false },
  });
  const deltas: unknown[] = [];
  lock.on("delta", (delta) => deltas.push(delta));
  await waitFor(() => manager.state.get(lock.uuid)?.connected === true, "connected");
  await manager.state.setDesired(lock.uuid, { locked: true });
  await waitFor(() => deltas.length === 1, "the first delta");
  await lock.report({ locked: true });
  await waitFor(converged(manager, lock.uuid), "converged");
  await lock.report({ locked: false }); // someone turned the key
  await waitFor(() => deltas.length === 2, "the delta again");
  assert.deepEqual(deltas[1], { locked: true });
  await lock.report({ locked: false, battery: 50 }); // still unlocked: the same delta, not repeated
  await waitFor(() => manager.state.get(lock.uuid)?.reported.battery === 50, "the report read");
  await manager.get(lock.uuid)!.heartbeat(); // a round trip after the report
  assert.equal(deltas.length, 2);
});

Deno.test("kept: an acknowledged ttl send to a device that leaves before its ACK is kept for it", async () => {
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  const leaver = await connectDevice(manager, { mode: 2, type: "lock", uuid });
  await leaver.write(encodeFeatures(["ack"]));
  await waitFor(() => manager.get(uuid)?.connected === true, "connected");
  const sending = manager.send(uuid, "unlock", { ack: true, ttl: 60, timeout: 5 });
  await leaver.readFrameOf(FrameType.MESSAGE);
  leaver.close(); // gone without acknowledging
  const report = await sending;
  assert.deepEqual(report, { targets: 1, acknowledged: 0, failed: [], remote: 0, kept: 1 });
  await waitFor(() => manager.state.get(uuid)?.connected === false, "gone");
  await using back = await Device.connect({ port: manager.port, type: "lock", uuid });
  assert.equal(text((await back[Symbol.asyncIterator]().next()).value), "unlock");
});

/** A store that is away for reads (a Redis that went down): every `get` fails. */
class UnreadableStore extends MemoryStore {
  override get(_uuid: string): Promise<DeviceRecord | undefined> {
    return Promise.reject(new Error("the store is away"));
  }
}

Deno.test("state: when the store cannot be read, a device's reports do not stop its messages", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ store: new UnreadableStore() });
  await using lock = await obedientLock(manager);
  await waitFor(() => manager.get(lock.uuid) !== undefined, "connected");
  const messages = manager.messages();
  // Its record could not be read, so the report has nowhere to go; the read loop must not
  // wait on that failed read forever (it used to, spinning on a promise chain that never ended).
  assert.equal(await lock.report({ battery: 80 }), true);
  await lock.send("still here");
  const next = await messages.next();
  assert.equal(next.value?.text, "still here");
  await messages.return?.();
  const dropped = await logs.waitFor({ uuid: lock.uuid, reason: "store" });
  assert.match(LogCapture.text(dropped), /Report from device .* dropped/);
});
