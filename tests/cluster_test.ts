/**
 * Many managers, one fleet: three managers joined through a real redis-server
 * on a free loopback port, with devices spread over them.
 */
import assert from "node:assert/strict";
import type { Manager } from "../mod.ts";
import { FrameType } from "../lib/protocol/mod.ts";
import { createClient } from "redis";
import { RedisAdapter } from "../lib/redis_adapter.ts";
import {
  connectDevice,
  LogCapture,
  RawDevice,
  RedisServer,
  startManager,
  text,
  waitFor,
} from "./_helpers.ts";

const sortedUuids = (manager: Manager) => manager.getClientData().map((d) => d.uuid).sort();

async function startCluster(
  redis: RedisServer,
  size: number,
  nodeTtl = 2,
  prefix = `test-${crypto.randomUUID()}`,
): Promise<Manager[]> {
  const managers: Manager[] = [];
  for (let i = 0; i < size; i++) {
    managers.push(
      await startManager({ cluster: new RedisAdapter({ url: redis.url, prefix, nodeTtl }) }),
    );
  }
  return managers;
}

async function closeAll(managers: Manager[]): Promise<void> {
  await Promise.all(managers.map((manager) => manager.close()));
}

/** Waits until every manager lists exactly `uuids`. */
async function waitForAgreement(managers: Manager[], uuids: string[]): Promise<void> {
  const expected = [...uuids].sort();
  await waitFor(
    () => managers.every((m) => JSON.stringify(sortedUuids(m)) === JSON.stringify(expected)),
    `every manager to list ${uuids.length} devices`,
  );
}

/** A manager in a process of its own (`fixtures/cluster_node.ts`), to be killed with SIGKILL. */
async function spawnClusterNode(
  redis: RedisServer,
  prefix: string,
  nodeTtl: number,
): Promise<{ port: number; kill(): Promise<void> } & AsyncDisposable> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fixtures/cluster_node.ts", import.meta.url).pathname,
      redis.url,
      prefix,
      String(nodeTtl),
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await lines.read();
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already dead */ }
    await child.status;
  };
  return {
    port: JSON.parse(value!).port,
    kill,
    [Symbol.asyncDispose]: async () => {
      await lines.cancel();
      await kill();
    },
  };
}

/** A raw mode-1 light with `uuid` on `port`, past its handshake answer. */
async function rawLight(port: number, uuid: string): Promise<RawDevice> {
  const device = await RawDevice.connect(port);
  await device.readBytes(1);
  await device.write(`${uuid}##light##{}`);
  return device;
}

Deno.test("cluster: each send kind reaches exactly the right devices across three managers", async () => {
  await using redis = await RedisServer.start();
  const managers = await startCluster(redis, 3);
  const devices: (RawDevice & { uuid: string; type: string; node: number })[] = [];
  try {
    for (const [node, manager] of managers.entries()) {
      for (const type of ["light", "lock"]) {
        const device = await connectDevice(manager, { mode: 2, type });
        devices.push(Object.assign(device, { type, node }));
      }
    }
    await waitForAgreement(managers, devices.map((d) => d.uuid));
    assert.deepEqual(managers[1].getClientData().find((d) => d.uuid === devices[0].uuid), {
      uuid: devices[0].uuid,
      type: "light",
      data: {},
    });

    assert.equal(await managers[0].sendAll("everyone"), 6);
    for (const device of devices) {
      assert.equal(text(await device.readFrameOf(FrameType.DATA)), "everyone");
    }
    assert.equal(await managers[1].sendType("lock", "locks only"), 3);
    for (const device of devices.filter((d) => d.type === "lock")) {
      assert.equal(text(await device.readFrameOf(FrameType.DATA)), "locks only");
    }
    const far = devices.find((d) => d.node === 2)!;
    assert.equal(await managers[0].send(far.uuid, "just you"), 1);
    assert.equal(text(await far.readFrameOf(FrameType.DATA)), "just you");
    assert.equal(await managers[0].send(crypto.randomUUID(), "nobody"), 0);
    // Binary payloads cross nodes intact.
    const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.equal(await managers[2].send(devices[0].uuid, binary), 1);
    assert.deepEqual(await devices[0].readFrameOf(FrameType.DATA), binary);
    // The lights got nothing else: the next frame each reads is the next broadcast.
    assert.equal(await managers[2].sendType("light", "lights"), 3);
    for (const device of devices.filter((d) => d.type === "light")) {
      assert.equal(text(await device.readFrameOf(FrameType.DATA)), "lights");
    }
  } finally {
    for (const device of devices) device.close();
    await closeAll(managers);
  }
});

Deno.test("cluster: a device moving from node A to node B replaces its old connection", async () => {
  await using redis = await RedisServer.start();
  const [a, b, c] = await startCluster(redis, 3);
  try {
    await using first = await connectDevice(a, { mode: 2, data: { at: "a" } });
    await waitForAgreement([a, b, c], [first.uuid]);
    const old = a.get(first.uuid)!;
    await using second = await connectDevice(b, { mode: 1, uuid: first.uuid, data: { at: "b" } });
    const end = await old.closed;
    assert.equal(end.reason, "replaced");
    assert.match(end.message, /reconnected to manager/);
    assert.equal(a.get(first.uuid), undefined);
    await waitFor(
      () =>
        [a, b, c].every((m) =>
          m.getClientData().filter((d) => d.uuid === first.uuid).length === 1 &&
          m.getClientData().find((d) => d.uuid === first.uuid)?.data.at === "b"
        ),
      "every node to see the device on b only",
    );
    assert.equal(await c.send(first.uuid, "found you"), 1);
    assert.equal(await second.readUntil("found you"), "found you");
  } finally {
    await closeAll([a, b, c]);
  }
});

Deno.test("cluster: killing a manager removes its devices from the registry within the expiry", async () => {
  await using logs = await LogCapture.start();
  await using redis = await RedisServer.start();
  const prefix = `test-${crypto.randomUUID()}`;
  const survivor = await startManager({
    cluster: new RedisAdapter({ url: redis.url, prefix, nodeTtl: 1 }),
  });
  await using node = await spawnClusterNode(redis, prefix, 1);
  const devices: RawDevice[] = [];
  try {
    const uuids = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    for (const uuid of uuids) devices.push(await rawLight(node.port, uuid));
    await waitForAgreement([survivor], uuids);
    await node.kill();
    await waitForAgreement([survivor], []);
    await logs.waitFor({ removed: 3 });
    assert.equal(await survivor.sendAll("anyone?"), 0);
  } finally {
    for (const device of devices) device.close();
    await survivor.close();
  }
});

Deno.test("cluster: devices of a killed manager that come back to another are listed once, not also as the dead manager's", async () => {
  await using redis = await RedisServer.start();
  const prefix = `test-${crypto.randomUUID()}`;
  // A long TTL: the dead manager's registration outlives the whole test.
  await using survivor = await startManager({
    cluster: new RedisAdapter({ url: redis.url, prefix, nodeTtl: 60 }),
  });
  await using node = await spawnClusterNode(redis, prefix, 60);
  const devices: RawDevice[] = [];
  try {
    const uuids = [crypto.randomUUID(), crypto.randomUUID()];
    for (const uuid of uuids) devices.push(await rawLight(node.port, uuid));
    await waitForAgreement([survivor], uuids);
    await node.kill();
    // The devices come back to the survivor with their UUIDs.
    for (const uuid of uuids) devices.push(await rawLight(survivor.port, uuid));
    await waitFor(() => survivor.size === 2, "both back on the survivor");
    // Later reloads of the dead manager's hash must not add them again.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(sortedUuids(survivor), [...uuids].sort());
  } finally {
    for (const device of devices) device.close();
  }
});

Deno.test("cluster: a Redis restart mid-run loses no device", async () => {
  await using logs = await LogCapture.start();
  await using redis = await RedisServer.start();
  const prefix = `test-${crypto.randomUUID()}`;
  const managers = await startCluster(redis, 3, 2, prefix);
  const devices: (RawDevice & { uuid: string })[] = [];
  try {
    for (const manager of managers) devices.push(await connectDevice(manager, { mode: 2 }));
    await waitForAgreement(managers, devices.map((d) => d.uuid));
    await redis.stop();
    await logs.waitFor({ url: redis.url });
    // Each manager keeps serving its own devices while Redis is away.
    assert.equal(await managers[0].send(devices[0].uuid, "local still works"), 1);
    assert.equal(text(await devices[0].readFrameOf(FrameType.DATA)), "local still works");
    await redis.restart();
    await waitForAgreement(managers, devices.map((d) => d.uuid));
    assert.equal(managers.every((m) => m.size === 1), true);
    // The registry in Redis itself is rebuilt: a manager joining now sees every device.
    const [late] = await startCluster(redis, 1, 2, prefix);
    managers.push(late);
    await waitForAgreement([late], devices.map((d) => d.uuid));
    let reached = 0;
    const deadline = Date.now() + 10_000;
    while (reached !== 3 && Date.now() < deadline) {
      reached = await managers[1].sendAll("after restart");
      if (reached !== 3) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(reached, 3);
  } finally {
    for (const device of devices) device.close();
    await closeAll(managers);
  }
});

Deno.test("cluster: a stray subscriber on the channels does not stall sends", async () => {
  await using redis = await RedisServer.start();
  const prefix = `test-${crypto.randomUUID()}`;
  const managers = await startCluster(redis, 2, 2, prefix);
  // Someone watching the traffic: PUBLISH now counts one more subscriber, who never replies.
  const watcher = createClient({ url: redis.url });
  await watcher.connect();
  await watcher.pSubscribe(`${prefix}:*`, () => {});
  try {
    await using device = await connectDevice(managers[1], { mode: 2 });
    await waitForAgreement(managers, [device.uuid]);
    const started = performance.now();
    assert.equal(await managers[0].sendAll("hello"), 1);
    assert.equal(await managers[0].send(device.uuid, "direct"), 1);
    // Waiting out the 2 s reply timeout would mean the stray subscriber was counted as a node.
    assert.ok(performance.now() - started < 1500, "no reply timeout");
  } finally {
    watcher.destroy();
    await closeAll(managers);
  }
});
