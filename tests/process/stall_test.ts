/**
 * Liveness under a stalled manager: the manager runs in its own process and is
 * stopped with SIGSTOP, then resumed with SIGCONT. Devices that answered while
 * it was stopped must not be dropped: their answers are read before any
 * verdict, and the time the manager was not running does not count.
 */
import assert from "node:assert/strict";
import { encodeFrame, encodeHandshake, FrameType } from "../../lib/protocol/mod.ts";
import { RawDevice, waitFor } from "../_helpers.ts";
import { ManagerProcess } from "./_process.ts";

/** A mode-2 device that answers each HEARTBEAT `delayMs` late. */
async function lateDevice(port: number, delayMs: number): Promise<RawDevice> {
  const device = await RawDevice.connect(port);
  await device.readBytes(1);
  await device.write(encodeHandshake({ uuid: crypto.randomUUID(), type: "light", data: {} }, 2));
  await device.readFrameOf(FrameType.WELCOME);
  (async () => {
    try {
      while (true) {
        const frame = await device.readFrame(60_000);
        if (frame.type !== FrameType.HEARTBEAT) continue;
        setTimeout(() => device.write(encodeFrame(FrameType.BEAT)).catch(() => {}), delayMs);
      }
    } catch { /* closed */ }
  })();
  return device;
}

const STALL_MS = 4000; // longer than heartbeatRate + heartbeatTimeout

Deno.test("a stalled manager drops none of the devices that answered while it was stopped, at any phase", async () => {
  await using manager = new ManagerProcess({ heartbeatRate: 1, heartbeatTimeout: 2 });
  const port = await manager.port();
  const devices = await Promise.all(Array.from({ length: 20 }, () => lateDevice(port, 1500)));
  try {
    // Stop the manager at several points of its heartbeat cycle.
    for (const phaseMs of [100, 500, 900]) {
      const rounds = manager.rounds;
      await waitFor(() => manager.rounds > rounds, "a heartbeat round");
      await new Promise((resolve) => setTimeout(resolve, phaseMs));
      manager.signal("SIGSTOP");
      await new Promise((resolve) => setTimeout(resolve, STALL_MS));
      manager.signal("SIGCONT");
      // Three more rounds after the resume: every late answer is judged by then.
      const resumed = manager.rounds;
      await waitFor(() => manager.rounds >= resumed + 3, "three rounds after the stall", 20_000);
      assert.deepEqual(manager.disconnects, [], `stopped ${phaseMs} ms after a round`);
    }
  } finally {
    for (const device of devices) device.close();
  }
});

Deno.test("a device that really stopped answering is still dropped after a stall", async () => {
  await using manager = new ManagerProcess({ heartbeatRate: 0.5, heartbeatTimeout: 1 });
  const port = await manager.port();
  const honest = await lateDevice(port, 100);
  const silent = await RawDevice.connect(port);
  await silent.readBytes(1);
  await silent.write(encodeHandshake({ uuid: crypto.randomUUID(), type: "lock", data: {} }, 2));
  await silent.readFrameOf(FrameType.WELCOME);
  try {
    manager.signal("SIGSTOP");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    manager.signal("SIGCONT");
    await waitFor(() => manager.disconnects.length === 1, "the silent device dropped", 20_000);
    assert.equal(manager.disconnects[0].reason, "heartbeat");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(manager.disconnects.length, 1, "the honest device stays");
  } finally {
    honest.close();
    silent.close();
  }
});
