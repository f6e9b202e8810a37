/**
 * The contract every DeviceStore keeps, written once and run against each
 * implementation: tests/store_test.ts (memory), tests/process/sqlite_store_test.ts
 * (SQLite file), the Redis store's test.
 */
import assert from "node:assert/strict";
import type { DeviceStore } from "../mod.ts";

const LIMITS = { perDevice: 3, total: 5 };

/** Registers the contract's tests for a store made fresh by `open` for each test. */
export function storeContract(name: string, open: () => Promise<DeviceStore>): void {
  const test = (what: string, body: (store: DeviceStore) => Promise<void>) =>
    Deno.test(`${name}: ${what}`, async () => {
      const store = await open();
      try {
        await body(store);
      } finally {
        await store.close();
      }
    });

  test("updates create a record, change only the fields they name, and clear lastEnd", async (store) => {
    const uuid = crypto.randomUUID();
    assert.equal(await store.get(uuid), undefined);
    await store.update(uuid, { desired: { locked: true, schedule: { at: "22:00" } }, version: 3 });
    assert.deepEqual(await store.get(uuid), {
      uuid,
      type: "",
      desired: { locked: true, schedule: { at: "22:00" } },
      version: 3,
      reported: {},
      lastSeen: 0,
    });
    // Another writer's fields (reported, presence) leave desired alone, and the other way round.
    await store.update(uuid, {
      type: "lock",
      reported: JSON.parse('{"locked":false,"__proto__":{"a":1}}'),
      lastSeen: 1_700_000_000_123,
      lastEnd: { reason: "heartbeat", message: "no beat within 15 s" },
    });
    await store.update(uuid, { desired: { locked: false }, version: 4 });
    const both = await store.get(uuid);
    assert.equal(
      JSON.stringify(both),
      JSON.stringify({
        uuid,
        type: "lock",
        desired: { locked: false },
        version: 4,
        reported: JSON.parse('{"locked":false,"__proto__":{"a":1}}'),
        lastSeen: 1_700_000_000_123,
        lastEnd: { reason: "heartbeat", message: "no beat within 15 s" },
      }),
    );
    await store.update(uuid, { lastEnd: undefined, lastSeen: 5 });
    assert.equal((await store.get(uuid))?.lastEnd, undefined);
    assert.deepEqual((await store.all()).filter((r) => r.uuid === uuid).map((r) => r.version), [4]);
  });

  test("kept messages come back in order, bytes intact, and go when removed", async (store) => {
    const uuid = crypto.randomUUID();
    for (const text of ["one", "two"]) {
      const result = await store.keep(uuid, new TextEncoder().encode(text), 1000, LIMITS);
      assert.deepEqual(result, { kept: true, dropped: 0 });
    }
    await store.keep(uuid, Uint8Array.of(0, 255, 10), 2000, LIMITS);
    const kept = await store.kept(uuid);
    assert.deepEqual(kept.map((m) => [...m.data]), [[111, 110, 101], [116, 119, 111], [
      0,
      255,
      10,
    ]]);
    assert.deepEqual(kept.map((m) => m.expiresAt), [1000, 1000, 2000]);
    assert.ok(kept[0].seq < kept[1].seq && kept[1].seq < kept[2].seq);
    await store.removeKept(uuid, [kept[0].seq, kept[2].seq]);
    assert.deepEqual((await store.kept(uuid)).map((m) => m.seq), [kept[1].seq]);
    assert.deepEqual(await store.kept(crypto.randomUUID()), []);
  });

  test("the bounds drop the device's oldest message first", async (store) => {
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    for (let i = 0; i < 4; i++) await store.keep(a, Uint8Array.of(i), 1, LIMITS);
    assert.deepEqual((await store.kept(a)).map((m) => m.data[0]), [1, 2, 3], "3 per device");
    await store.keep(b, Uint8Array.of(10), 1, LIMITS);
    await store.keep(b, Uint8Array.of(11), 1, LIMITS); // 5 in all now
    const result = await store.keep(b, Uint8Array.of(12), 1, LIMITS);
    assert.deepEqual(result, { kept: true, dropped: 1 }, "the total bound drops b's own oldest");
    assert.deepEqual((await store.kept(b)).map((m) => m.data[0]), [11, 12]);
    assert.deepEqual((await store.kept(a)).map((m) => m.data[0]), [1, 2, 3], "a is untouched");
    const c = crypto.randomUUID();
    assert.deepEqual(await store.keep(c, Uint8Array.of(20), 1, LIMITS), {
      kept: false,
      dropped: 0,
    }, "a device with nothing kept cannot push others out");
  });
}
