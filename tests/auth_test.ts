import assert from "node:assert/strict";
import { type AuthRequest, computeProof, hmacAuthenticator } from "../mod.ts";
import { encodeFrame, encodeHandshake, FrameType, parseEnd } from "../lib/protocol/mod.ts";
import { connectDevice, LogCapture, RawDevice, startManager, text, waitFor } from "./_helpers.ts";

const secrets = new Map<string, string>();
const authenticate = hmacAuthenticator((uuid) => secrets.get(uuid));

/** Connects in mode 2, answers the challenge with `prove(challenge)`, returns the device and the challenge. */
async function connectWithProof(
  port: number,
  uuid: string,
  prove: (challenge: Uint8Array) => Promise<Uint8Array | null>,
): Promise<{ device: RawDevice; challenge: Uint8Array }> {
  const device = await RawDevice.connect(port);
  await device.readBytes(1);
  await device.write(encodeHandshake({ uuid, type: "light", data: {} }, 2));
  const frame = await device.readFrame();
  assert.equal(frame.type, FrameType.CHALLENGE);
  assert.equal(frame.payload.length, 32);
  const proof = await prove(frame.payload);
  await device.write(
    proof ? encodeFrame(FrameType.PROOF, proof) : encodeFrame(FrameType.DATA, "hello?"),
  );
  return { device, challenge: frame.payload };
}

/** Reads to the end and returns the END frame's reason. */
async function refusal(device: RawDevice): Promise<string> {
  const rest = await device.readToEnd();
  assert.equal(rest[0], FrameType.END, "the device is told why");
  return text(rest.subarray(5));
}

Deno.test("auth: the right proof is accepted and the device is served", async () => {
  const uuid = crypto.randomUUID();
  secrets.set(uuid, "right secret");
  await using manager = await startManager({ authenticate });
  const { device } = await connectWithProof(
    manager.port,
    uuid,
    (challenge) => computeProof("right secret", challenge, uuid),
  );
  await using _ = device;
  await device.readFrameOf(FrameType.WELCOME);
  await waitFor(() => manager.get(uuid) !== undefined, "registered");
  assert.equal(await manager.send(uuid, "on"), 1);
  assert.equal(text(await device.readFrameOf(FrameType.DATA)), "on");
});

for (
  const [what, prove, expected] of [
    ["a wrong secret", (c: Uint8Array, u: string) => computeProof("guess", c, u), /wrong proof/],
    ["a missing proof", () => Promise.resolve(null), /expected a PROOF frame/],
    ["an empty proof", () => Promise.resolve(new Uint8Array(0)), /no proof/],
  ] as const
) {
  Deno.test(`auth: ${what} is refused with a logged reason`, async () => {
    await using logs = await LogCapture.start();
    const uuid = crypto.randomUUID();
    secrets.set(uuid, "right secret");
    await using manager = await startManager({ authenticate });
    const { device } = await connectWithProof(manager.port, uuid, (c) => prove(c, uuid));
    await using _ = device;
    if (what !== "a missing proof") assert.match(await refusal(device), expected);
    else await device.readToEnd();
    const record = await logs.waitFor({ reason: "auth" });
    assert.match(LogCapture.text(record), expected);
    assert.equal(manager.size, 0);
  });
}

Deno.test("auth: a replayed proof cannot take over a live device", async () => {
  const uuid = crypto.randomUUID();
  secrets.set(uuid, "right secret");
  await using manager = await startManager({ authenticate });
  let recorded: Uint8Array | undefined;
  const { device: owner } = await connectWithProof(manager.port, uuid, async (challenge) => {
    recorded = await computeProof("right secret", challenge, uuid);
    return recorded;
  });
  await using _owner = owner;
  await owner.readFrameOf(FrameType.WELCOME);
  await waitFor(() => manager.get(uuid) !== undefined, "owner registered");
  const original = manager.get(uuid);
  // An attacker who captured the owner's proof replays it on a new connection.
  const { device: attacker, challenge } = await connectWithProof(
    manager.port,
    uuid,
    () => Promise.resolve(recorded!),
  );
  await using _attacker = attacker;
  assert.match(await refusal(attacker), /wrong proof/);
  assert.ok(challenge.some((byte, i) => byte !== recorded![i]), "fresh nonce per connection");
  assert.equal(manager.get(uuid), original, "the owner is still the live device");
  assert.equal(await manager.send(uuid, "still yours"), 1);
  assert.equal(text(await owner.readFrameOf(FrameType.DATA)), "still yours");
});

Deno.test("auth: hmacAuthenticator refuses mode-1 devices and unknown UUIDs", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({ authenticate });
  await using mode1 = await RawDevice.connect(manager.port);
  await mode1.readBytes(1);
  await mode1.write(`${crypto.randomUUID()}##light##{}`);
  await mode1.readToEnd();
  await logs.waitFor({ reason: "auth" });
  assert.match(LogCapture.text(logs.matching({ reason: "auth" })[0]), /mode 1 cannot answer/);
  const stranger = crypto.randomUUID();
  const { device } = await connectWithProof(
    manager.port,
    stranger,
    (c) => computeProof("anything", c, stranger),
  );
  await using _ = device;
  assert.match(await refusal(device), /no secret is known/);
});

Deno.test("auth: a custom hook sees address, mode and replacing, and can refuse takeovers", async () => {
  const requests: AuthRequest[] = [];
  await using manager = await startManager({
    authenticate: (request) => {
      requests.push(request);
      if (request.address.hostname !== "127.0.0.1") return "not from here";
      return request.replacing ? "takeover refused" : true;
    },
  });
  await using first = await connectDevice(manager, { mode: 1 });
  await using second = await RawDevice.connect(manager.port);
  await second.readBytes(1);
  await second.write(`${first.uuid}##lock##{}`);
  assert.equal((await second.readToEnd()).length, 0, "mode 1: closed without a word");
  assert.deepEqual(requests.map((r) => [r.mode, r.replacing, r.proof]), [
    [1, false, undefined],
    [1, true, undefined],
  ]);
  assert.equal(manager.get(first.uuid)?.type, "light", "the first connection stays");
});

Deno.test("auth: a hook that throws refuses the device, logs the error and tells the device nothing of it", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({
    authenticate: () => {
      throw new Error("database down");
    },
  });
  await using device = await RawDevice.connect(manager.port);
  await device.readBytes(1);
  await device.write(encodeHandshake({ uuid: crypto.randomUUID(), type: "light", data: {} }, 2));
  assert.equal((await device.readFrame()).type, FrameType.CHALLENGE);
  await device.write(encodeFrame(FrameType.PROOF, new Uint8Array(32)));
  const end = parseEnd(await device.readFrameOf(FrameType.END));
  assert.equal(end.reason, "auth");
  assert.doesNotMatch(end.message, /database down/);
  await device.readToEnd();
  const refusal = await logs.waitFor({ reason: "auth" });
  assert.doesNotMatch(LogCapture.text(refusal), /database down/);
  const failure = logs.records.find((record) => record.level === "error")!;
  assert.match(LogCapture.text(failure), /database down/);
  assert.equal(manager.size, 0);
});
