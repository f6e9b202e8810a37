/**
 * SqliteStore: the DeviceStore contract on a real file, and a manager killed
 * with SIGKILL and restarted on the same file, whose offline lock is still
 * locked when it comes back.
 */
import assert from "node:assert/strict";
import { Device, SqliteStore } from "../../mod.ts";
import { storeContract } from "../_store_contract.ts";
import { ManagerProcess } from "./_process.ts";

const dir = await Deno.makeTempDir({ prefix: "iot-manager-store-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
let files = 0;

storeContract(
  "SqliteStore",
  () => Promise.resolve(new SqliteStore(`${dir}/contract-${files++}.db`)),
);

Deno.test("SqliteStore: what one instance wrote, the next one on the same file reads", async () => {
  const path = `${dir}/reopen.db`;
  const uuid = crypto.randomUUID();
  const first = new SqliteStore(path);
  await first.update(uuid, { type: "lock", desired: { locked: true }, version: 1, lastSeen: 5 });
  await first.keep(uuid, Uint8Array.of(7), 99, { perDevice: 10, total: 10 });
  await first.close();
  const second = new SqliteStore(path);
  assert.deepEqual((await second.get(uuid))?.desired, { locked: true });
  assert.deepEqual((await second.kept(uuid)).map((m) => m.data[0]), [7]);
  await second.close();
});

Deno.test("a manager killed with SIGKILL and restarted on its SQLite file still locks the lock that was away", async () => {
  const path = `${dir}/restart.db`;
  const uuid = crypto.randomUUID();
  const lockOptions = { type: "lock", uuid, data: { locked: false } };
  {
    await using first = new ManagerProcess({ sqlite: path });
    const port = await first.port();
    const lock = await Device.connect({ port, ...lockOptions });
    await first.event((e) => e.connect === uuid, "the lock connected");
    await lock.close();
    await first.event((e) => e.disconnect === uuid, "the lock gone");
    const set = await first.command(
      { setDesired: uuid, patch: { locked: true } },
      (e) => e.desiredSet === uuid,
    );
    assert.equal(set.version, 1);
    const sent = await first.command(
      { send: uuid, data: "chime", ttl: 60 },
      (e) => e.sent === uuid,
    );
    assert.equal(sent.count, 1);
    first.signal("SIGKILL");
  }
  await using second = new ManagerProcess({ sqlite: path });
  const port = await second.port();
  await using lock = await Device.connect({ port, ...lockOptions });
  lock.on("delta", (delta) => void lock.report(delta));
  const messages = lock[Symbol.asyncIterator]();
  assert.equal(new TextDecoder().decode((await messages.next()).value), "chime");
  await second.event(
    (e) => e.state === "reported" && e.uuid === uuid && JSON.stringify(e.delta) === "{}",
    "the lock to report itself locked",
  );
  assert.deepEqual(lock.data, { locked: true });
});
