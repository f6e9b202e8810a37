/**
 * The Python device printed in docs/PROTOCOL.md, run as written (only the port
 * changed) against a manager: proof that a device written from the reference
 * alone works unchanged in protocol mode 1.
 */
import assert from "node:assert/strict";
import { startManager, waitFor } from "./_helpers.ts";

const doc = Deno.readTextFileSync(new URL("../docs/PROTOCOL.md", import.meta.url));
const pythonDevice = doc.split("### A mode-1 device in Python")[1].split("```python\n")[1]
  .split("```")[0];

Deno.test("the Python device from docs/PROTOCOL.md connects, beats and talks (mode 1)", async () => {
  await using manager = await startManager({ heartbeatRate: 0.1, heartbeatTimeout: 3 });
  const code = pythonDevice.replace(`"127.0.0.1", 8595`, `"127.0.0.1", ${manager.port}`);
  assert.notEqual(code, pythonDevice, "the doc's device connects to port 8595");
  const child = new Deno.Command("python3", {
    args: ["-u", "-c", code],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const clients = manager.clients();
    const { value: client } = await clients.next();
    await clients.return?.();
    assert.ok(client);
    assert.equal(client.type, "light");
    assert.deepEqual(client.data, { on: false });
    assert.equal(client.mode, 1);

    const replies = manager.messages();
    const reply = async () => (await replies.next()).value?.text;
    assert.equal(await manager.sendAll("hello"), 1);
    assert.equal(await reply(), "ok hello");
    assert.equal(await manager.sendType("light", "dim 40"), 1);
    assert.equal(await reply(), "ok dim 40");
    assert.equal(await manager.send(client.uuid, "just you"), 1);
    assert.equal(await reply(), "ok just you");
    assert.equal(await client.requestString("status", { timeout: 5 }), "ok status");
    await replies.return?.();

    const rounds = manager.heartbeatRounds;
    await waitFor(() => manager.heartbeatRounds >= rounds + 5, "five more heartbeat rounds");
    assert.equal(client.connected, true, "the device answered every heartbeat");

    // Unbuffered print() may write a line in pieces: read until the line is whole.
    let printed = "";
    while (!printed.includes("\n")) {
      const { value, done } = await output.read();
      if (done) break;
      printed += value;
    }
    assert.match(printed, /command: hello\n/);
  } finally {
    await manager.close();
    await output.cancel();
    await child.stderr.cancel();
    const status = await child.status;
    assert.equal(status.code, 0, "the device exits cleanly when the manager ends it");
  }
});
