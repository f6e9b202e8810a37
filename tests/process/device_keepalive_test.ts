/**
 * A device notices a manager that went silent without closing (stopped with
 * SIGSTOP): it ends the connection with reason `keepalive` and reconnects with
 * its backoff once the manager runs again.
 */
import assert from "node:assert/strict";
import { type ConnectionEnd, Device } from "../../mod.ts";
import { waitFor } from "../_helpers.ts";
import { ManagerProcess } from "./_process.ts";

for (const mode of [1, 2] as const) {
  Deno.test(`mode ${mode}: a Device treats a stopped manager as gone and comes back when it resumes`, async () => {
    await using manager = new ManagerProcess({ heartbeatRate: 1, heartbeatTimeout: 1 });
    const port = await manager.port();
    await using light = await Device.connect({
      port,
      type: "light",
      mode,
      // Mode 2 learns the promise (1 s + 1 s) from WELCOME; mode 1 has to be told.
      keepalive: mode === 1 ? 2 : undefined,
      reconnect: { initialDelay: 0.05, maxDelay: 0.2 },
    });
    const drops: [ConnectionEnd, boolean][] = [];
    light.on("disconnect", (end, willReconnect) => void drops.push([end, willReconnect]));
    if (mode === 2) assert.equal(light.settings?.heartbeatRate, 1);
    manager.signal("SIGSTOP");
    try {
      await waitFor(() => drops.length > 0, "the device to give up on the manager", 15_000);
    } finally {
      manager.signal("SIGCONT");
    }
    const [end, willReconnect] = drops[0];
    assert.equal(end.reason, "keepalive");
    assert.match(end.message, /the manager sent nothing for \d+\.\d s/);
    assert.equal(willReconnect, true);
    await waitFor(() => light.reconnects >= 1 && light.connected, "the reconnection", 15_000);
    assert.equal(await light.send("back"), true);
  });
}

Deno.test("a live manager that pings keeps a Device connected past its keepalive", async () => {
  await using manager = new ManagerProcess({ heartbeatRate: 0.3, heartbeatTimeout: 0.3 });
  const port = await manager.port();
  await using light = await Device.connect({ port, type: "light" });
  const drops: string[] = [];
  light.on("disconnect", (end) => void drops.push(end.reason));
  await new Promise((resolve) => setTimeout(resolve, 2000)); // over three keepalive periods
  assert.deepEqual(drops, []);
  assert.equal(light.connected, true);
  assert.ok(light.stats.heartbeatsAnswered >= 3);
});
