/**
 * Several managers behind one port (`reusePort`): the kernel spreads the
 * devices over them, and joined through a real redis-server each reaches the
 * whole fleet. Here in one process; README shows one manager per process.
 */
import assert from "node:assert/strict";
import { Device, ListenError, Manager } from "../mod.ts";
import { RedisAdapter } from "../lib/redis_adapter.ts";
import { RedisServer, tlsFiles, waitFor } from "./_helpers.ts";

Deno.test("reusePort: two managers share a port and the devices are spread over both", async () => {
  await using first = await Manager.listen({ validTypes: ["light"], port: 0, reusePort: true });
  await using second = await Manager.listen({
    validTypes: ["light"],
    port: first.port,
    reusePort: true,
  });
  assert.equal(second.port, first.port);
  const devices = await Promise.all(
    Array.from({ length: 40 }, () => Device.connect({ port: first.port, type: "light" })),
  );
  try {
    await waitFor(() => first.size + second.size === 40, "every device registered");
    // The kernel hashes each connection to one listener: 40 all on one side is 2^-39 likely.
    assert.ok(first.size > 0 && second.size > 0, `${first.size} + ${second.size}`);
  } finally {
    await Promise.all(devices.map((device) => device.close()));
  }
});

Deno.test("reusePort: a manager without it cannot take a port others share, and TLS shares too", async () => {
  const tls = { cert: tlsFiles.cert, key: tlsFiles.key };
  await using first = await Manager.listen({
    validTypes: ["light"],
    port: 0,
    reusePort: true,
    tls,
  });
  const error = await Manager.listen({ validTypes: ["light"], port: first.port }).catch((e) => e);
  assert.ok(error instanceof ListenError, String(error));
  assert.equal(error.reason, "address-in-use");
  // And the other way round: sharing a port a listener holds alone, with a hint.
  await using alone = await Manager.listen({ validTypes: ["light"], port: 0 });
  const refused = await Manager.listen({ validTypes: ["light"], port: alone.port, reusePort: true })
    .catch((e) => e);
  assert.ok(refused instanceof ListenError, String(refused));
  assert.match(
    refused.message,
    /already in use .*; a port is shared only when every listener on it sets reusePort$/,
  );
  await using second = await Manager.listen({
    validTypes: ["light"],
    port: first.port,
    reusePort: true,
    tls,
  });
  await using device = await Device.connect({
    port: first.port,
    type: "light",
    tls: { caCerts: [tlsFiles.ca] },
  });
  await waitFor(() => first.size + second.size === 1, "the TLS device registered");
  assert.equal(device.connected, true);
});

Deno.test("reusePort + RedisAdapter: a sendAll from either manager on the shared port reaches every device", async () => {
  await using redis = await RedisServer.start();
  const prefix = `reuse-${crypto.randomUUID()}`;
  const join = () => new RedisAdapter({ url: redis.url, prefix, nodeTtl: 2 });
  await using a = await Manager.listen({
    validTypes: ["light"],
    port: 0,
    reusePort: true,
    cluster: join(),
  });
  await using b = await Manager.listen({
    validTypes: ["light"],
    port: a.port,
    reusePort: true,
    cluster: join(),
  });
  const devices = await Promise.all(
    Array.from({ length: 20 }, () => Device.connect({ port: a.port, type: "light" })),
  );
  try {
    await waitFor(
      () => a.getClientData().length === 20 && b.getClientData().length === 20,
      "both list all 20",
    );
    const inboxes = devices.map((device) => device[Symbol.asyncIterator]());
    await a.sendAll("from a");
    await b.sendAll("from b");
    const decoder = new TextDecoder();
    for (const inbox of inboxes) {
      const got = [(await inbox.next()).value, (await inbox.next()).value]
        .map((bytes) => decoder.decode(bytes as Uint8Array)).sort();
      assert.deepEqual(got, ["from a", "from b"]);
    }
  } finally {
    await Promise.all(devices.map((device) => device.close()));
  }
});
