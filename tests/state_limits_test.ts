/**
 * What manager.state and kept messages refuse, and what can never take the
 * manager down: invalid desired states, concurrent changes, a store that
 * fails, oversized or endless reports, bad ttls and timeouts.
 */
import assert from "node:assert/strict";
import { ConnectionEnd, Device, type DeviceRecord, type DeviceStore, MemoryStore } from "../mod.ts";
import { encodeFeatures, encodeReport } from "../lib/protocol/mod.ts";
import { connectDevice, startManager, waitFor } from "./_helpers.ts";

Deno.test("setDesired refuses what is not a JSON object it can send, with a clear TypeError", async () => {
  await using manager = await startManager({ maxStateSize: 200 });
  const uuid = crypto.randomUUID();
  const bad: unknown[] = [
    { n: 10n },
    { f: () => 1 },
    { u: undefined },
    { nan: NaN },
    { when: new Date() },
    [1, 2],
    "locked",
    null,
  ];
  for (const patch of bad) {
    assert.throws(
      () => manager.state.setDesired(uuid, patch as never),
      TypeError,
      `refused: ${String(patch)}`,
    );
  }
  let deep: Record<string, unknown> = {};
  for (let i = 0; i < 40; i++) deep = { d: deep };
  assert.throws(() => manager.state.setDesired(uuid, deep as never), /nested deeper/);
  assert.throws(() => manager.state.setDesired("not-a-uuid", { a: 1 }), /invalid uuid/);
  await assert.rejects(
    manager.state.setDesired(uuid, { big: "x".repeat(150) }).then(() =>
      manager.state.setDesired(uuid, { more: "y".repeat(150) })
    ),
    RangeError,
    "the merged desired state over maxStateSize",
  );
  const upper = await manager.state.setDesired(uuid.toUpperCase(), { ok: true });
  assert.equal(upper.uuid, uuid, "a UUID is one device whatever its case");
});

Deno.test("concurrent setDesired calls each apply: none is lost", async () => {
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  const states = await Promise.all([
    manager.state.setDesired(uuid, { a: 1 }),
    manager.state.setDesired(uuid, { b: 1 }),
    manager.state.setDesired(uuid, { c: 1 }),
  ]);
  assert.deepEqual(manager.state.get(uuid)?.desired, { a: 1, b: 1, c: 1 });
  assert.deepEqual(states.map((s) => s.version), [1, 2, 3]);
});

/** A store whose reads fail on demand, as a Redis that went away would. */
class FlakyStore extends MemoryStore {
  failing = false;
  override get(uuid: string): Promise<DeviceRecord | undefined> {
    return this.failing ? Promise.reject(new Error("store unreachable")) : super.get(uuid);
  }
  override kept(uuid: string) {
    return this.failing ? Promise.reject(new Error("store unreachable")) : super.kept(uuid);
  }
}

Deno.test("a store that fails while a device connects is logged; the manager and the device go on", async () => {
  const store = new FlakyStore();
  await using manager = await startManager({ store: store as DeviceStore });
  store.failing = true;
  await using lock = await Device.connect({ port: manager.port, type: "lock" });
  await waitFor(() => manager.get(lock.uuid) !== undefined, "registered");
  await manager.get(lock.uuid)!.heartbeat(); // the manager still serves it
  assert.equal(await lock.send("still here"), true);
});

Deno.test("a REPORT that arrives while the device's record is still being read is applied", async () => {
  let release = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const store = new (class extends MemoryStore {
    override async get(uuid: string) {
      await gate;
      return super.get(uuid);
    }
  })();
  await using manager = await startManager({ store });
  await using device = await connectDevice(manager, {
    mode: 2,
    type: "lock",
    data: { locked: false },
  });
  await device.write(encodeFeatures(["state"]));
  await device.write(encodeReport({ locked: true }));
  await new Promise((resolve) => setTimeout(resolve, 50)); // the report waits on the slow store
  release();
  await waitFor(
    () => manager.state.get(device.uuid)?.reported.locked === true,
    "the report applied",
  );
});

Deno.test("a device whose reported state grows past maxStateSize is disconnected (protocol)", async () => {
  await using manager = await startManager({ maxStateSize: 1000 });
  await using device = await connectDevice(manager, { mode: 2, type: "lock" });
  await device.write(encodeFeatures(["state"]));
  await waitFor(() => manager.state.get(device.uuid) !== undefined, "known");
  const client = manager.get(device.uuid)!;
  for (let i = 0; i < 5; i++) await device.write(encodeReport({ [`k${i}`]: "z".repeat(300) }));
  const end = await client.closed;
  assert.equal(end.reason, "protocol");
  assert.match(
    end.message,
    /reported state refused: \d+ bytes of JSON is over the 1000-byte limit/,
  );
});

Deno.test("send refuses a ttl or timeout that is not a number of seconds, and a message too large to keep", async () => {
  await using manager = await startManager({ maxBufferedBytes: 1024 });
  const uuid = crypto.randomUUID();
  for (const ttl of [0, -1, NaN, Infinity]) {
    await assert.rejects(manager.send(uuid, "x", { ttl }), TypeError, `ttl ${ttl}`);
  }
  for (const timeout of [-1, NaN]) {
    await assert.rejects(manager.sendAll("x", { ack: true, timeout }), TypeError);
  }
  await assert.rejects(manager.send(uuid, new Uint8Array(2048), { ttl: 60 }), RangeError);
});

Deno.test("after close, state changes and kept sends reject with ConnectionEnd manager-closed", async () => {
  const manager = await startManager();
  await manager.close();
  assert.throws(
    () => manager.state.setDesired(crypto.randomUUID(), { a: 1 }),
    (error) => error instanceof ConnectionEnd && error.reason === "manager-closed",
  );
});
