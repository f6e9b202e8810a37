/**
 * The hostile-input suite. Every case asserts three things: a clear reason is
 * logged, the offending connection is closed, and an honest device connected
 * alongside is still served in both directions.
 */
import assert from "node:assert/strict";
import type { Manager, ManagerOptions } from "../mod.ts";
import { encodeFrame, encodeHandshake, FrameType } from "../lib/protocol/mod.ts";
import { AsyncQueue } from "../lib/queue.ts";
import {
  bytes,
  connectDevice,
  LogCapture,
  RawDevice,
  startManager,
  text,
  tlsFiles,
} from "./_helpers.ts";

const UUID = "1862cfe1-5dab-4d8e-a946-50d6728f830f";

interface HostileCase {
  readonly name: string;
  readonly options?: Partial<ManagerOptions>;
  /** Misbehaves on a fresh connection (getinfo already read). */
  readonly act: (device: RawDevice, manager: Manager) => Promise<void>;
  /** The `reason` property of the log record that explains it. */
  readonly reason: string;
  /** What that record's message must say. */
  readonly log: RegExp;
}

/** Completes a valid handshake on `device` in `mode`. */
async function handshake(device: RawDevice, mode: 1 | 2, uuid = UUID): Promise<void> {
  await device.write(encodeHandshake({ uuid, type: "light", data: {} }, mode));
  if (mode === 2) await device.readFrameOf(FrameType.WELCOME);
}

const send = (value: string | Uint8Array) => (device: RawDevice) => device.write(value);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const cases: HostileCase[] = [
  // --- before or during the handshake ---
  {
    name: "an HTTP request instead of a handshake",
    act: send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    reason: "uuid",
    log: /36-character UUID/,
  },
  {
    name: "binary noise",
    act: send(Uint8Array.of(0x8f, 0x00, 0xff, 0x13, 0x37)),
    reason: "encoding",
    log: /not valid UTF-8/,
  },
  {
    name: "NUL then garbage",
    act: send(Uint8Array.of(0, 1, 2, 3)),
    reason: "preamble",
    log: /not the mode-2 preamble/,
  },
  {
    name: "a UUID with non-hex characters",
    act: send("zz62cfe1-5dab-4d8e-a946-50d6728f830f##light##{}"),
    reason: "uuid",
    log: /UUID/,
  },
  {
    name: "a 32-character UUID without dashes",
    act: send("1862cfe15dab4d8ea94650d6728f830f##light##{}"),
    reason: "uuid",
    log: /UUID/,
  },
  { name: "an empty type", act: send(`${UUID}####{}`), reason: "type", log: /"" is not one of/ },
  {
    name: "a type in the wrong case",
    act: send(`${UUID}##Light##{}`),
    reason: "type",
    log: /"Light" is not one of/,
  },
  {
    name: "a JSON string as data",
    act: send(`${UUID}##light##"on"`),
    reason: "data",
    log: /must be a JSON object/,
  },
  {
    name: "JSON with a trailing comma",
    act: send(`${UUID}##light##{"a":1,}`),
    reason: "data",
    log: /not valid JSON/,
  },
  {
    name: "an overlong UTF-8 encoding inside the JSON",
    act: send(new Uint8Array([...bytes(`${UUID}##light##{"a":"`), 0xc0, 0xaf, ...bytes(`"}`)])),
    reason: "encoding",
    log: /UTF-8/,
  },
  {
    name: "a fourth field",
    act: send(`${UUID}##light##{}##admin`),
    reason: "fields",
    log: /exactly uuid##type##\{json\}/,
  },
  {
    name: "a handshake dribbled past the time limit",
    options: { handshakeTimeout: 0.3 },
    act: async (device) => {
      // Five bytes, 30 ms apart, then nothing more: the clock runs out mid-UUID.
      for (const byte of bytes(UUID).subarray(0, 5)) {
        await device.write(Uint8Array.of(byte));
        await pause(30);
      }
    },
    reason: "timeout",
    log: /no complete handshake within 0.3 s .*waiting for/,
  },
  {
    name: "an oversize mode-1 handshake",
    options: { maxHandshakeSize: 1024 },
    act: send(`${UUID}##light##{"pad":"${"x".repeat(2000)}"}`),
    reason: "size",
    log: /over the 1024-byte limit/,
  },
  {
    name: "a mode-2 INFO frame declaring 16 MiB",
    act: send(Uint8Array.of(0, 0x49, 0x4d, 2, FrameType.INFO, 1, 0, 0, 0)),
    reason: "size",
    log: /16777216 bytes is over/,
  },
  {
    name: "an INFO header promising more than arrives",
    options: { handshakeTimeout: 0.3 },
    act: send(Uint8Array.of(0, 0x49, 0x4d, 2, FrameType.INFO, 0, 0, 0, 200, 0x31, 0x32)),
    reason: "timeout",
    log: /waiting for 198 more bytes/,
  },
  {
    name: "a disconnect in the middle of the handshake",
    act: async (device) => {
      await device.write(`${UUID}##li`);
      device.close();
    },
    reason: "closed",
    log: /ended before its handshake.*waiting for the JSON data field/,
  },
  {
    name: "a JSON bomb of 20,000 nested arrays",
    act: send(`${UUID}##light##{"a":${"[".repeat(20_000)}${"]".repeat(20_000)}}`),
    reason: "size",
    log: /over the 32768-byte limit/,
    options: { maxHandshakeSize: 32768 },
  },
  // --- after the handshake (mode 2) ---
  {
    name: "a frame over maxFrameSize",
    options: { maxFrameSize: 1024 },
    act: async (device) => {
      await handshake(device, 2);
      await device.write(Uint8Array.of(FrameType.DATA, 0, 0, 4, 1));
    },
    reason: "frame-size",
    log: /frame of 1025 bytes is over the 1024-byte limit/,
  },
  {
    name: "an unknown frame type",
    act: async (device) => {
      await handshake(device, 2);
      await device.write(Uint8Array.of(0x42, 0, 0, 0, 0));
    },
    reason: "frame-type",
    log: /unknown frame type 0x42/,
  },
  {
    name: "a device sending a manager-only HEARTBEAT frame",
    act: async (device) => {
      await handshake(device, 2);
      await device.write(encodeFrame(FrameType.HEARTBEAT));
    },
    reason: "protocol",
    log: /frame type 0x2 is not allowed/,
  },
  {
    name: "a PROOF frame after the handshake",
    act: async (device) => {
      await handshake(device, 2);
      await device.write(encodeFrame(FrameType.PROOF, new Uint8Array(32)));
    },
    reason: "protocol",
    log: /frame type 0x8 is not allowed/,
  },
  {
    name: "a frame header promising more than arrives, then a disconnect",
    act: async (device) => {
      await handshake(device, 2);
      await device.write(Uint8Array.of(FrameType.DATA, 0, 0, 1, 0, 1, 2, 3));
      await pause(20);
      device.close();
    },
    reason: "closed",
    log: /closed the connection in the middle of a frame/,
  },
  {
    name: "a mode-1 device that stops answering heartbeats",
    options: { heartbeatRate: 0.05, heartbeatTimeout: 0.5 },
    act: (device) => handshake(device, 1),
    reason: "heartbeat",
    log: /disconnected: heartbeat: no beat within 0.5 s/,
  },
];

/** A well-behaved mode-2 device: answers heartbeats in the background and queues its messages. */
class HonestDevice {
  readonly messages = new AsyncQueue<string>();
  readonly loop: Promise<void>;
  constructor(readonly raw: RawDevice & { uuid: string }) {
    this.loop = this.#run();
  }
  get uuid(): string {
    return this.raw.uuid;
  }
  async #run(): Promise<void> {
    try {
      while (true) {
        const frame = await this.raw.readFrame(60_000);
        if (frame.type === FrameType.HEARTBEAT) await this.raw.write(encodeFrame(FrameType.BEAT));
        else if (frame.type === FrameType.DATA) this.messages.push(text(frame.payload));
        else if (frame.type === FrameType.END) break;
      }
    } catch {
      /* the connection closed */
    } finally {
      this.messages.stop();
    }
  }
}

async function connectHonest(manager: Manager): Promise<HonestDevice> {
  return new HonestDevice(await connectDevice(manager, { mode: 2 }));
}

/** The honest device is served both ways: it gets a broadcast and its reply reaches the manager. */
async function assertStillServed(manager: Manager, honest: HonestDevice): Promise<void> {
  const client = manager.get(honest.uuid);
  assert.ok(client?.connected, "the honest device is still connected");
  const reply = client.recvString({ timeout: 10 });
  assert.ok((await manager.sendAll("ping")) >= 1);
  const iterator = honest.messages[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value, "ping");
  await honest.raw.write(encodeFrame(FrameType.DATA, "pong"));
  assert.equal(await reply, "pong");
}

/** Closes the manager, then waits for the honest device's loop to notice. */
async function finish(manager: Manager, honest: HonestDevice): Promise<void> {
  await manager.close();
  await honest.loop;
  honest.raw.close();
}

for (const hostile of cases) {
  Deno.test(`hostile: ${hostile.name}`, async () => {
    await using logs = await LogCapture.start();
    await using manager = await startManager(hostile.options);
    const honest = await connectHonest(manager);
    await using device = await RawDevice.connect(manager.port);
    assert.equal((await device.readBytes(1))[0], 0x01);
    await hostile.act(device, manager);
    await device.readToEnd().catch(() => {}); // closed by the manager (or by the test itself)
    const record = await logs.waitFor({ reason: hostile.reason });
    assert.match(LogCapture.text(record), hostile.log);
    assert.equal(manager.get(UUID), undefined, "the offender is not registered");
    await assertStillServed(manager, honest);
    await finish(manager, honest);
  });
}

Deno.test("hostile: an unprompted `beat` (mode 1) is ignored, never delivered, and logged", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager();
  const messages: string[] = [];
  manager.on("message", (_client, data) => void messages.push(text(data)));
  await using device = await connectDevice(manager, { mode: 1 });
  await device.write("beat");
  const record = await logs.waitFor({ uuid: device.uuid, reason: "unprompted-beat" });
  assert.match(LogCapture.text(record), /unprompted beat; ignored/);
  await device.write("real message");
  const client = manager.get(device.uuid)!;
  assert.equal(client.connected, true);
  const started = Date.now();
  while (messages.length === 0 && Date.now() - started < 10_000) await pause(5);
  assert.deepEqual(messages, ["real message"]);
});

Deno.test("hostile: two connections racing with the same UUID leave exactly one", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager();
  const uuid = crypto.randomUUID();
  const [a, b] = await Promise.all([
    RawDevice.connect(manager.port),
    RawDevice.connect(manager.port),
  ]);
  await using _a = a;
  await using _b = b;
  await Promise.all([a.readBytes(1), b.readBytes(1)]);
  await Promise.all([
    a.write(encodeHandshake({ uuid, type: "light", data: { who: "a" } }, 2)),
    b.write(encodeHandshake({ uuid, type: "light", data: { who: "b" } }, 2)),
  ]);
  const record = await logs.waitFor({ uuid, reason: "replaced" });
  assert.match(LogCapture.text(record), /replaced by a new connection/);
  assert.equal(manager.size, 1);
  const winner = manager.get(uuid)!.data.who as string;
  const loser = winner === "a" ? b : a;
  const rest = await loser.readToEnd();
  assert.ok(rest.includes(FrameType.END), "the replaced connection is told and closed");
  assert.equal(await manager.send(uuid, "you won"), 1);
  const survivor = winner === "a" ? a : b;
  assert.equal(text(await survivor.readFrameOf(FrameType.DATA)), "you won");
});

Deno.test("hostile: 1,500 connections that never speak; honest devices stay served", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ handshakeTimeout: 1, maxPendingHandshakes: 1000 });
  const honest = await connectHonest(manager);
  const silent: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 1500; i++) {
      silent.push(await Deno.connect({ hostname: "127.0.0.1", port: manager.port }));
    }
    await logs.waitFor({ reason: "limit" });
    await logs.waitFor({ reason: "timeout" });
    const refused = () => logs.matching({ reason: "limit" }).length;
    const timedOut = () => logs.matching({ reason: "timeout" }).length;
    const deadline = Date.now() + 20_000;
    while (refused() + timedOut() < 1500 && Date.now() < deadline) await pause(20);
    assert.equal(refused() + timedOut(), 1500, "every silent connection is refused or timed out");
    assert.ok(refused() >= 1 && timedOut() >= 1);
    assert.equal(manager.pendingHandshakes, 0);
    await assertStillServed(manager, honest);
    // A device arriving after the flood is accepted.
    await using late = await connectDevice(manager, { mode: 1 });
    assert.equal(manager.size, 2);
    late.close();
    await finish(manager, honest);
  } finally {
    for (const conn of silent) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }
});

Deno.test("hostile: a TLS client on a plain manager is rejected; the reverse is covered in handshake_test", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager();
  const honest = await connectHonest(manager);
  const attempt = Deno.connectTls({
    hostname: "127.0.0.1",
    port: manager.port,
    caCerts: [tlsFiles.ca],
  }).then(async (conn) => {
    try {
      await conn.handshake();
    } finally {
      conn.close();
    }
  });
  await assert.rejects(attempt);
  const record = await logs.waitFor({ reason: "encoding" }); // a TLS ClientHello is binary
  assert.match(LogCapture.text(record), /TLS ClientHello, but this manager listens without TLS/);
  await assertStillServed(manager, honest);
  await finish(manager, honest);
});

Deno.test("hostile: a device that never reads while broadcasts flood is cut off; the others get everything", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ maxBufferedBytes: 256 * 1024 });
  await using reader = await connectDevice(manager, { mode: 2 });
  await using stuck = await connectDevice(manager, { mode: 2 });
  const payload = "x".repeat(16 * 1024);
  const total = 400; // 6.4 MB: far past the socket buffers and the 256 KiB limit
  let received = 0;
  const reading = (async () => {
    while (received < total) {
      const data = await reader.readFrameOf(FrameType.DATA, 20_000);
      assert.equal(data.length, payload.length);
      received++;
    }
  })();
  for (let i = 0; i < total; i++) {
    await manager.sendAll(payload);
    if (i % 16 === 0) await pause(1);
  }
  await reading;
  assert.equal(received, total, "the reading device got every broadcast");
  const record = await logs.waitFor({ uuid: stuck.uuid, reason: "buffer-full" });
  assert.match(LogCapture.text(record), /send buffer full/);
  assert.equal(manager.get(stuck.uuid), undefined);
  assert.equal(manager.size, 1);
});

Deno.test("hostile: handlers that throw or hang do not stop other devices being served", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ maxConcurrentHandlers: 2, handlerTimeout: 0.2 });
  const hung: (() => void)[] = [];
  const handled: string[] = [];
  manager.on("message", async (client, data) => {
    const message = text(data);
    if (message === "hang") await new Promise<void>((resolve) => hung.push(resolve));
    if (message === "throw") throw new Error("handler exploded");
    handled.push(`${client.uuid}:${message}`);
  });
  await using bad = await connectDevice(manager, { mode: 2 });
  const good = await connectHonest(manager);
  for (const message of ["hang", "hang", "throw"]) {
    await bad.write(encodeFrame(FrameType.DATA, message));
  }
  await good.raw.write(encodeFrame(FrameType.DATA, "hello"));
  const slow = await logs.waitFor({ reason: "handler-timeout" });
  assert.match(LogCapture.text(slow), /still running after 0.2 s; its slot is freed/);
  await logs.waitFor({ message: "Error: handler exploded" });
  const deadline = Date.now() + 10_000;
  while (!handled.includes(`${good.uuid}:hello`) && Date.now() < deadline) await pause(10);
  assert.ok(handled.includes(`${good.uuid}:hello`), "the good device's message was handled");
  await assertStillServed(manager, good);
  for (const release of hung) release();
  await finish(manager, good);
});
