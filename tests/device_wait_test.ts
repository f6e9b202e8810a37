/**
 * A device's first connection and an absent manager: `waitForManager` keeps
 * trying (with the reconnect backoff) so a device started before its manager
 * still arrives; without it, or when the manager refuses, it fails at once.
 */
import assert from "node:assert/strict";
import { ConnectionEnd, Device, InvalidInfo } from "../mod.ts";
import { freePort, startManager, waitFor } from "./_helpers.ts";

const quick = { initialDelay: 0.05, maxDelay: 0.2 };

Deno.test("waitForManager: a device started before its manager arrives once the manager listens", async () => {
  const port = freePort();
  const connecting = Device.connect({
    port,
    type: "light",
    waitForManager: 60,
    reconnect: quick,
    signal: AbortSignal.timeout(60_000),
  });
  // Refused a few times first: nothing listens yet.
  await new Promise((resolve) => setTimeout(resolve, 500));
  await using manager = await startManager({ port, validTypes: ["light"] });
  await using device = await connecting;
  assert.equal(device.connected, true);
  await waitFor(() => manager.get(device.uuid) !== undefined, "device registered");
});

Deno.test("waitForManager: without it the first connection fails at once with reason io", async () => {
  const port = freePort();
  const error = await Device.connect({ port, type: "light" }).catch((e) => e);
  assert.ok(error instanceof ConnectionEnd, String(error));
  assert.equal(error.reason, "io");
  assert.match(error.message, /cannot connect/);
});

Deno.test("waitForManager: gives up after its seconds with the last attempt's error", async () => {
  const port = freePort();
  const error = await Device.connect({
    port,
    type: "light",
    waitForManager: 0.3,
    reconnect: quick,
  }).catch((e) => e);
  assert.ok(error instanceof ConnectionEnd, String(error));
  assert.equal(error.reason, "io");
});

Deno.test("waitForManager: a refusal by the manager is not retried", async () => {
  await using manager = await startManager({ validTypes: ["lock"] });
  // Retried, this would run until the signal aborts it and fail with another error.
  const error = await Device.connect({
    port: manager.port,
    type: "light",
    waitForManager: 3600,
    reconnect: quick,
    signal: AbortSignal.timeout(30_000),
  }).catch((e) => e);
  assert.ok(error instanceof InvalidInfo, String(error));
  assert.equal(error.reason, "type");
});

Deno.test("waitForManager: the signal ends the waiting", async () => {
  const port = freePort();
  const controller = new AbortController();
  const connecting = Device.connect({
    port,
    type: "light",
    waitForManager: 3600,
    reconnect: { initialDelay: 5, maxDelay: 10 },
    signal: controller.signal,
  }).catch((e) => e);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const reason = new Error("stop");
  controller.abort(reason);
  assert.equal(await connecting, reason);
});

Deno.test("waitForManager: a negative value is a TypeError", async () => {
  await assert.rejects(
    Device.connect({ port: 1, type: "light", waitForManager: -1 }),
    TypeError,
  );
});

Deno.test("device durations too long for a timer are refused with the option's name", async () => {
  for (
    const [options, name] of [
      [{ waitForManager: Infinity }, "waitForManager"],
      [{ keepalive: Infinity }, "keepalive"],
      [{ connectTimeout: 3e6 }, "connectTimeout"],
      [{ reconnect: { maxDelay: Infinity } }, "reconnect.maxDelay"],
    ] as const
  ) {
    await assert.rejects(
      Device.connect({ port: 1, type: "light", ...options }),
      (error) => error instanceof TypeError && error.message.startsWith(name),
      name,
    );
  }
});
