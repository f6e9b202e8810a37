/**
 * RedisStore: the DeviceStore contract on a real redis-server, and device
 * state shared by two clustered managers: desired state set on one reaches a
 * device on the other, and a device that moves finds its state and its kept
 * messages on the manager it moves to.
 */
import assert from "node:assert/strict";
import { Device, type Manager } from "../mod.ts";
import { RedisAdapter, RedisStore } from "../lib/redis.ts";
import { storeContract } from "./_store_contract.ts";
import { RedisServer, startManager, text, waitFor } from "./_helpers.ts";

const redis = await RedisServer.start();
globalThis.addEventListener("unload", () => void redis.stop());

storeContract("RedisStore", async () => {
  const adapter = new RedisAdapter({ url: redis.url, prefix: `contract-${crypto.randomUUID()}` });
  // A store outside a manager: attach the adapter to a stand-in node, as a manager would.
  await adapter.attach({
    nodeId: crypto.randomUUID(),
    heartbeatRate: 1,
    heartbeatTimeout: 1,
    deliverAll: () => 0,
    deliverType: () => 0,
    deliver: () => 0,
    localDevices: () => [],
    evict: () => {},
    refreshState: () => {},
  });
  const store = new RedisStore(adapter);
  return {
    all: () => store.all(),
    get: (uuid) => store.get(uuid),
    update: (uuid, changes) => store.update(uuid, changes),
    keep: (uuid, data, expiresAt, limits) => store.keep(uuid, data, expiresAt, limits),
    kept: (uuid) => store.kept(uuid),
    removeKept: (uuid, seqs) => store.removeKept(uuid, seqs),
    close: () => adapter.close(),
  };
});

async function clusteredPair(): Promise<[Manager, Manager]> {
  const prefix = `state-${crypto.randomUUID()}`;
  const start = () => {
    const cluster = new RedisAdapter({ url: redis.url, prefix, nodeTtl: 2 });
    return startManager({ cluster, store: new RedisStore(cluster) });
  };
  return [await start(), await start()];
}

Deno.test("redis state: desired state set on one manager reaches a lock connected to the other", async () => {
  const [a, b] = await clusteredPair();
  try {
    await using lock = await Device.connect({
      port: a.port,
      type: "lock",
      data: { locked: false },
    });
    lock.on("delta", (delta) => void lock.report(delta));
    await waitFor(() => a.state.get(lock.uuid)?.connected === true, "the lock on a");
    const state = await b.state.setDesired(lock.uuid, { locked: true });
    assert.equal(state.version, 1);
    await waitFor(() => lock.data.locked === true, "the lock locked through a");
    await waitFor(
      () => Object.keys(a.state.get(lock.uuid)?.delta ?? { x: 1 }).length === 0,
      "a sees it converged",
    );
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("redis state: a lock that moves managers finds its desired state and kept messages", async () => {
  const [a, b] = await clusteredPair();
  try {
    const uuid = crypto.randomUUID();
    const options = { type: "lock", uuid, data: { locked: false } } as const;
    const first = await Device.connect({ port: a.port, ...options });
    await waitFor(() => a.state.get(uuid)?.connected === true, "the lock on a");
    await first.close();
    await waitFor(() => a.state.get(uuid)?.connected === false, "the lock gone");
    await a.state.setDesired(uuid, { locked: true });
    assert.equal(await a.send(uuid, "chime", { ttl: 60 }), 1);
    await using moved = await Device.connect({ port: b.port, ...options });
    moved.on("delta", (delta) => void moved.report(delta));
    const messages = moved[Symbol.asyncIterator]();
    assert.equal(text((await messages.next()).value), "chime");
    await waitFor(() => moved.data.locked === true, "locked on b");
    await waitFor(
      () => Object.keys(b.state.get(uuid)?.delta ?? { x: 1 }).length === 0,
      "b sees it converged",
    );
    assert.equal(b.state.get(uuid)?.version, 1);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
