/**
 * examples/devices/python_device.py, a light written in Python from
 * docs/PROTOCOL.md alone, run against a real manager in both protocol modes:
 * proof that the documented protocol is enough to write a device in another
 * language.
 */
import assert from "node:assert/strict";
import { type DeviceMessage, hmacAuthenticator, type Manager, type ProtocolMode } from "../mod.ts";
import { startManager, tlsFiles, waitFor } from "./_helpers.ts";
import { PythonDevice } from "./_python_device.ts";

const CA_FILE = new URL("./fixtures/tls/ca.pem", import.meta.url).pathname;
const FAST_HEARTBEATS = { heartbeatRate: 0.2, heartbeatTimeout: 2 };
const encoder = new TextEncoder();

/** Collects `manager.messages()` until the manager closes. */
function collectMessages(manager: Manager): { received: DeviceMessage[]; done: Promise<void> } {
  const received: DeviceMessage[] = [];
  const done = (async () => {
    for await (const message of manager.messages()) received.push(message);
  })();
  return { received, done };
}

/** Waits for the device's handshake and its registration; returns its uuid. */
async function connected(
  manager: Manager,
  device: PythonDevice,
  mode: ProtocolMode,
): Promise<string> {
  const line = await device.waitForLine(new RegExp(`^connected \\S+ mode ${mode}$`));
  const uuid = line.split(" ")[1];
  await waitFor(() => manager.get(uuid)?.connected === true, `device ${uuid} registered`);
  return uuid;
}

const state = (text: string): unknown => JSON.parse(text);

/**
 * Heartbeats for tests that exchange messages. In mode 1 the manager reads a "beat" that TCP
 * glued behind one of the device's answers as part of that answer, misses the heartbeat and
 * drops the device, so those tests keep fleet heartbeats out of the way (the default rate of
 * 60 s); mode 2 has frames and gets the fast ones.
 */
const messageHeartbeats = (mode: ProtocolMode) => mode === 1 ? {} : FAST_HEARTBEATS;

for (const mode of [1, 2] as const) {
  Deno.test(`python device, mode ${mode}: registers as itself and answers heartbeats`, async () => {
    await using manager = await startManager(FAST_HEARTBEATS);
    const uuid = crypto.randomUUID();
    await using device = new PythonDevice(manager, mode, [
      "--uuid",
      uuid.toUpperCase(),
      "--data",
      '{"room":"hall"}',
      "--verbose",
    ]);
    assert.equal(await connected(manager, device, mode), uuid.toUpperCase());
    const client = manager.get(uuid)!;
    assert.equal(client.mode, mode);
    const data = { room: "hall", on: false, brightness: 100 };
    assert.deepEqual(manager.getClientData(), [{ uuid, type: "light", data }]);

    const rounds = manager.heartbeatRounds;
    const beats = device.count("heartbeat");
    await waitFor(
      () => manager.heartbeatRounds >= rounds + 3 && device.count("heartbeat") >= beats + 3,
      "three heartbeat rounds, each answered",
    );
    // The manager pings only devices that answered the previous ping, so three pings received
    // mean the earlier ones were answered; the on-demand one below must be answered too.
    assert.equal(manager.get(uuid), client, "still the same connection");
    assert.equal(client.connected, true);
    assert.equal(typeof await client.heartbeat({ timeout: 2 }), "number");
    assert.equal(manager.size, 1);
  });

  Deno.test(`python device, mode ${mode}: obeys send, sendType, sendAll and request`, async () => {
    await using manager = await startManager(messageHeartbeats(mode));
    const { received, done } = collectMessages(manager);
    await using device = new PythonDevice(manager, mode); // a random uuid of its own
    const uuid = await connected(manager, device, mode);
    const client = manager.get(uuid)!;

    // One command at a time: in mode 1 two commands in flight may arrive as one read.
    const commands: [(text: string) => Promise<number>, string, unknown][] = [
      [(text) => manager.send(uuid, text), "on", { on: true, brightness: 100 }],
      [(text) => manager.sendType("light", text), "brightness 40", { on: true, brightness: 40 }],
      [(text) => manager.sendAll(text), "toggle", { on: false, brightness: 40 }],
      [(text) => manager.send(uuid, text), "brightness 400", {
        error: "brightness takes a whole number from 0 to 100",
      }],
      [(text) => manager.send(uuid, text), "fly", { error: "unknown command: fly" }],
    ];
    for (const [send, command, answer] of commands) {
      const before = received.length;
      assert.equal(await send(command), 1);
      await device.waitForLine(`message: ${command}`);
      await waitFor(() => received.length > before, `the answer to ${command}`);
      assert.equal(received.length, before + 1);
      assert.equal(received[before].client, client);
      assert.deepEqual(state(received[before].text), answer);
    }
    assert.equal(await manager.sendType("lock", "open"), 0);

    assert.deepEqual(state(await client.requestString("status", { timeout: 5 })), {
      on: false,
      brightness: 40,
    });
    assert.equal(received.length, commands.length, "a request's answer skips messages()");
    // getinfo again: the device reports its current state.
    const info = await client.getData({ timeout: 5 });
    assert.deepEqual(info, { uuid, type: "light", data: { on: false, brightness: 40 } });
    assert.deepEqual(manager.get(uuid)!.data, { on: false, brightness: 40 });

    await manager.close();
    await done;
  });

  Deno.test(`python device, mode ${mode}: reconnects after the manager ends its connection`, async () => {
    await using manager = await startManager(messageHeartbeats(mode));
    const uuid = crypto.randomUUID();
    await using device = new PythonDevice(manager, mode, ["--uuid", uuid]);
    await connected(manager, device, mode);
    const first = manager.get(uuid)!;
    assert.equal(await manager.send(uuid, "on"), 1);
    await device.waitForLine("message: on");

    await first.end({ reason: "maintenance" });
    assert.equal(first.connected, false);
    await device.waitForLine(
      mode === 2 ? "end: maintenance (kicked)" : "end: the manager is closing the connection",
    );
    await device.waitForLine(/^reconnecting in \d+\.\d+ s$/);
    await device.waitForLine(`connected ${uuid} mode ${mode}`, 2);
    await waitFor(() => manager.get(uuid)?.connected === true, "the device back");
    const second = manager.get(uuid)!;
    assert.notEqual(second, first);
    // Same process, so the light kept its state across the reconnect.
    assert.deepEqual(second.data, { on: true, brightness: 100 });
    assert.deepEqual(state(await second.requestString("status", { timeout: 5 })), {
      on: true,
      brightness: 100,
    });
  });

  Deno.test(`python device, mode ${mode}: --no-reconnect exits when its connection ends`, async () => {
    await using manager = await startManager(FAST_HEARTBEATS);
    await using device = new PythonDevice(manager, mode, ["--no-reconnect"]);
    const uuid = await connected(manager, device, mode);
    await manager.get(uuid)!.end();
    assert.equal((await device.status).code, 0);
    assert.equal(device.count(/^reconnecting/), 0);
  });
}

Deno.test("python device, mode 1: answers a heartbeat that arrives glued to a message", async () => {
  await using manager = await startManager(); // no fleet heartbeats: the only one is ours
  const { received, done } = collectMessages(manager);
  await using device = new PythonDevice(manager, 1, ["--verbose"]);
  const uuid = await connected(manager, device, 1);
  const client = manager.get(uuid)!;

  // Queued in one tick: the blank message (which the device does not answer) is written at
  // once; "on" and the heartbeat byte, queued while that write is in flight, leave in one write
  // as "on\x02". A device comparing whole reads with 0x02 would miss the heartbeat.
  const sent = [manager.send(uuid, "\n"), manager.send(uuid, "on")];
  const beat = client.heartbeat({ timeout: 5 });
  assert.deepEqual(await Promise.all(sent), [1, 1]);
  assert.equal(typeof await beat, "number");
  assert.equal(client.connected, true);
  await waitFor(() => received.length === 1, "the answer to on");
  assert.deepEqual(state(received[0].text), { on: true, brightness: 100 });
  assert.ok(
    device.lines.some((line) => /^read: [3-9] bytes, 1 control bytes$/.test(line)),
    `no read held a message and the heartbeat:\n${device.lines.join("\n")}`,
  );

  await manager.close();
  await done;
});

Deno.test("python device, mode 2: echoes every byte value unchanged", async () => {
  await using manager = await startManager(FAST_HEARTBEATS);
  const { received, done } = collectMessages(manager);
  await using device = new PythonDevice(manager, 2);
  const uuid = await connected(manager, device, 2);
  const client = manager.get(uuid)!;
  const payload = new Uint8Array([
    ...encoder.encode("echo "),
    ...Array.from({ length: 256 }, (_, i) => i),
  ]);

  assert.deepEqual(await client.request(payload, { timeout: 5 }), payload);
  await device.waitForLine(/^message: <261 bytes: 6563686f2000010203/);

  // The same through send and messages(), with the bytes that mean something in mode 1.
  const controls = new Uint8Array([
    ...encoder.encode("echo "),
    0x01,
    0x02,
    ...encoder.encode("beat"),
    ...encoder.encode("end\n"),
  ]);
  assert.equal(await manager.send(uuid, controls), 1);
  await waitFor(() => received.length === 1, "the echo");
  assert.deepEqual(received[0].data, controls);

  // Larger than any one read on either side: the frame is reassembled from many.
  const large = new Uint8Array(300_000);
  for (let i = 0; i < large.length; i++) large[i] = (i * 7919) & 0xff;
  large.set(encoder.encode("echo "));
  assert.deepEqual(await client.request(large, { timeout: 10 }), large);
  assert.equal(client.connected, true);

  await manager.close();
  await done;
});

Deno.test("python device, mode 2: two messages in one TCP write arrive as two", async () => {
  await using manager = await startManager(FAST_HEARTBEATS);
  const { received, done } = collectMessages(manager);
  await using device = new PythonDevice(manager, 2, ["--verbose"]);
  const uuid = await connected(manager, device, 2);

  // The first send is written at once; the ones queued while that write is in flight are
  // coalesced by the manager's send buffer into a single write holding several DATA frames.
  const texts = ["echo 1", "echo 2", "echo 3", "echo 4"];
  const reached = await Promise.all(texts.map((text) => manager.send(uuid, text)));
  assert.deepEqual(reached, [1, 1, 1, 1]);
  await waitFor(() => received.length === texts.length, "four echoes");
  assert.deepEqual(received.map((message) => message.text), texts);
  assert.deepEqual(
    device.lines.filter((line) => line.startsWith("message: ")),
    texts.map((text) => `message: ${text}`),
  );
  assert.ok(
    device.lines.some((line) => /^read: \d+ bytes, \d+ frames, ([2-9]|\d\d+) messages$/.test(line)),
    `no read held two messages, so the coalesced case was not exercised:\n${
      device.lines.join("\n")
    }`,
  );

  await manager.close();
  await done;
});

Deno.test("python device, mode 2: leaves with END when stopped", async () => {
  await using manager = await startManager(FAST_HEARTBEATS);
  const device = new PythonDevice(manager, 2);
  try {
    const uuid = await connected(manager, device, 2);
    const client = manager.get(uuid)!;
    await device.stop();
    const end = await client.closed;
    assert.equal(end.reason, "ended");
    assert.match(end.message, /device shutting down/);
  } finally {
    await device.stop();
  }
});

Deno.test("python device, mode 2: connects over TLS, checking the manager's certificate", async () => {
  await using manager = await startManager({
    ...FAST_HEARTBEATS,
    tls: { cert: tlsFiles.cert, key: tlsFiles.key },
  });
  await using device = new PythonDevice(manager, 2, ["--tls", "--cafile", CA_FILE]);
  const uuid = await connected(manager, device, 2);
  assert.deepEqual(state(await manager.get(uuid)!.requestString("on", { timeout: 5 })), {
    on: true,
    brightness: 100,
  });
});

Deno.test("python device, mode 2: proves its secret to an authenticating manager", async () => {
  const uuid = crypto.randomUUID();
  await using manager = await startManager({
    ...FAST_HEARTBEATS,
    authenticate: hmacAuthenticator((id) => id === uuid ? "s3cret ünïcode" : undefined),
  });
  await using device = new PythonDevice(manager, 2, ["--uuid", uuid, "--secret", "s3cret ünïcode"]);
  assert.equal(await connected(manager, device, 2), uuid);
  assert.deepEqual(state(await manager.get(uuid)!.requestString("status", { timeout: 5 })), {
    on: false,
    brightness: 100,
  });

  await using impostor = new PythonDevice(manager, 2, [
    "--uuid",
    uuid,
    "--secret",
    "guess",
    "--no-reconnect",
  ]);
  assert.equal((await impostor.status).code, 1, "a refused device exits with 1");
  assert.ok(
    impostor.lines.some((line) => /^refused: .*wrong proof.* \(auth\)$/.test(line)),
    impostor.lines.join("\n"),
  );
  assert.equal(manager.get(uuid)?.connected, true, "the real device kept its connection");
});

Deno.test("python device: shutting the manager down ends the device's connection with a reason", async () => {
  await using manager = await startManager(FAST_HEARTBEATS);
  await using device = new PythonDevice(manager, 2);
  await connected(manager, device, 2);
  await manager.close();
  await device.waitForLine("end: the manager is shutting down (manager-closed)");
  await device.waitForLine(/^disconnected: /);
});

Deno.test("python device, mode 2: a refusal it cannot fix prints the manager's reason and stops with 3", async () => {
  await using manager = await startManager({ validTypes: ["lock"] });
  await using device = new PythonDevice(manager, 2, ["--type", "light"]);
  assert.equal((await device.status).code, 3, "no reconnect loop after a type refusal");
  assert.ok(
    device.lines.some((line) => /^refused: type "light" is not one of "lock" \(type\)$/.test(line)),
    device.lines.join("\n"),
  );
  assert.equal(device.count(/^reconnecting/), 0);
});

Deno.test("python device, mode 2: --keepalive overrides WELCOME's promise", async () => {
  await using manager = await startManager(); // promises a heartbeat every 60 s
  const uuid = crypto.randomUUID();
  await using device = new PythonDevice(manager, 2, ["--uuid", uuid, "--keepalive", "0.5"]);
  await connected(manager, device, 2);
  const first = manager.get(uuid)!;
  await device.waitForLine(
    /^disconnected: the manager sent nothing for 0\.[5-9] s \(--keepalive 0\.5\)$/,
  );
  await device.waitForLine(/^reconnecting in \d+\.\d+ s$/);
  assert.equal((await first.closed).reason, "closed");
  await device.waitForLine(`connected ${uuid} mode 2`, 2);
});

Deno.test("python device: --keepalive takes a number of seconds", async () => {
  await using manager = await startManager();
  await using device = new PythonDevice(manager, 1, ["--keepalive", "soon"]);
  assert.equal((await device.status).code, 2);
});

Deno.test("python device, mode 2: acknowledges a message sent with ack: true", async () => {
  await using manager = await startManager(FAST_HEARTBEATS);
  await using device = new PythonDevice(manager, 2);
  const uuid = await connected(manager, device, 2);
  const report = await manager.send(uuid, "toggle", { ack: true, timeout: 5 });
  assert.deepEqual(report, { targets: 1, acknowledged: 1, failed: [], remote: 0, kept: 0 });
  await device.waitForLine("message: toggle");
});

Deno.test("python device, mode 1: an acknowledged send reports it unsupported", async () => {
  await using manager = await startManager(FAST_HEARTBEATS);
  await using device = new PythonDevice(manager, 1);
  const uuid = await connected(manager, device, 1);
  const report = await manager.send(uuid, "toggle", { ack: true, timeout: 5 });
  assert.deepEqual(report.failed, [{ uuid, reason: "unsupported" }]);
});

Deno.test("python device, mode 2: applies the desired state it is sent and reports it", async () => {
  await using manager = await startManager(FAST_HEARTBEATS);
  await using device = new PythonDevice(manager, 2);
  const uuid = await connected(manager, device, 2);
  await manager.state.setDesired(uuid, { on: true, brightness: 40 });
  await device.waitForLine('delta: {"brightness": 40, "on": true}');
  await waitFor(
    () => Object.keys(manager.state.get(uuid)?.delta ?? { x: 1 }).length === 0,
    "the light to report the desired state",
  );
  assert.deepEqual(manager.state.get(uuid)?.reported, { on: true, brightness: 40 });
});
