/**
 * Once a connection has ended, nothing more from that peer is delivered, even
 * when the goodbye or the offence shares a read with more frames (the shared
 * core in lib/connection_core.ts stops dispatching).
 */
import assert from "node:assert/strict";
import { encodeFeatures, encodeFrame, FrameType } from "../lib/protocol/mod.ts";
import { concatBytes } from "../lib/bytes.ts";
import { connectDevice, startManager } from "./_helpers.ts";

/** Writes `frames` in one write from a mode-2 device; returns how it ended and what was delivered. */
async function afterOneWrite(
  frames: Uint8Array[],
): Promise<{ reason: string; received: string[] }> {
  await using manager = await startManager();
  const received: string[] = [];
  const done = (async () => {
    for await (const message of manager.messages()) received.push(message.text);
  })();
  await using device = await connectDevice(manager, { mode: 2 });
  const client = manager.get(device.uuid)!;
  await device.write(concatBytes(frames));
  const end = await client.closed;
  await manager.close();
  await done;
  return { reason: end.reason, received };
}

Deno.test("a device's frames after its END, in the same read, are not delivered", async () => {
  const outcome = await afterOneWrite([
    encodeFrame(FrameType.DATA, "before"),
    encodeFrame(FrameType.END, "bye"),
    encodeFrame(FrameType.DATA, "ghost"),
  ]);
  assert.deepEqual(outcome, { reason: "ended", received: ["before"] });
});

Deno.test("a malformed control frame ends the connection before the frames that follow it", async () => {
  const outcome = await afterOneWrite([
    encodeFeatures(["ack"]),
    encodeFrame(FrameType.ACK, Uint8Array.of(1)),
    encodeFrame(FrameType.DATA, "after"),
  ]);
  assert.deepEqual(outcome, { reason: "protocol", received: [] });
});
