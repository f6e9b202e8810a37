import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConnectionEnd,
  InvalidInfo,
  IotManagerError,
  ProtocolError,
  TimeoutError,
} from "../mod.ts";
import {
  encodeAck,
  encodeAckedMessage,
  encodeDelta,
  encodeEnd,
  encodeFeatures,
  encodeFrame,
  encodeHandshake,
  encodeMessage,
  encodeReport,
  FrameDecoder,
  FrameType,
  type FrameTypeValue,
  Mode1Reader,
  MODE2_PREAMBLE,
  parseEnd,
  parseHandshake,
  readHandshake,
  splitMode1Chunk,
} from "../lib/protocol/mod.ts";
import { bytes, splitAt, text } from "./_helpers.ts";

const hex = (value: Uint8Array): string =>
  [...value].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
const UUID = "1862cfe1-5dab-4d8e-a946-50d6728f830f";
const TYPES = ["light", "lock"];
const NUM_RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 2000);

Deno.test("test vectors from docs/PROTOCOL.md", () => {
  assert.equal(hex(MODE2_PREAMBLE), "00 49 4d 02");
  assert.equal(hex(encodeFrame(FrameType.HEARTBEAT)), "02 00 00 00 00");
  assert.equal(hex(encodeFrame(FrameType.BEAT)), "03 00 00 00 00");
  assert.equal(hex(encodeFrame(FrameType.GETINFO)), "01 00 00 00 00");
  assert.equal(hex(encodeFrame(FrameType.DATA, "on")), "10 00 00 00 02 6f 6e");
  assert.equal(hex(encodeFrame(FrameType.DATA, Uint8Array.of(0, 255))), "10 00 00 00 02 00 ff");
  assert.equal(hex(encodeFrame(FrameType.END, "bye")), "04 00 00 00 03 62 79 65");
  assert.equal(hex(encodeEnd("type", "no")), "04 00 00 00 08 74 79 70 65 3a 20 6e 6f");
  assert.deepEqual(parseEnd(bytes("type: no")), { reason: "type", message: "no" });
  assert.deepEqual(parseEnd(bytes("just words: here")), { message: "just words: here" });
  assert.equal(hex(encodeMessage("on", 1)), "6f 6e");
  assert.equal(hex(encodeMessage("on", 2)), "10 00 00 00 02 6f 6e");
  const info = { uuid: "00000000-0000-4000-8000-000000000000", type: "light", data: {} };
  const answer = encodeHandshake(info, 2);
  assert.equal(hex(answer.subarray(0, 11)), "00 49 4d 02 05 00 00 00 2f 30 30");
  assert.equal(answer.length, 4 + 5 + 47);
  assert.equal(
    hex(encodeFrame(FrameType.DATA, new Uint8Array(1 << 20)).subarray(0, 5)),
    "10 00 10 00 00",
  );
  assert.equal(hex(encodeAckedMessage(7, "on")), "11 00 00 00 06 00 00 00 07 6f 6e");
  assert.equal(hex(encodeAck(7)), "12 00 00 00 04 00 00 00 07");
  assert.equal(hex(encodeFeatures(["ack"]).subarray(0, 8)), "09 00 00 00 14 7b 22 66");
  assert.equal(hex(encodeDelta(1, { locked: true }).subarray(0, 8)), "13 00 00 00 25 7b 22 76");
  assert.equal(hex(encodeReport({ locked: true }).subarray(0, 8)), "14 00 00 00 0f 7b 22 6c");
});

Deno.test("the seed's example answer parses", () => {
  const info = parseHandshake(
    `${UUID}##light##{ "key_1": "data_1", "key_2": "data_2" }`,
    ["light", "lock", "thermostat"],
  );
  assert.deepEqual(info, {
    uuid: UUID,
    type: "light",
    data: { key_1: "data_1", key_2: "data_2" },
  });
});

const rejections: [string, string, string][] = [
  ["not a UUID", "hello##light##{}", "uuid"],
  ["a UUID of the wrong length", "1862cfe1-5dab-4d8e-a946-50d6728f83##light##{}", "uuid"],
  ["an unknown type", `${UUID}##fridge##{}`, "type"],
  ["a JSON array", `${UUID}##light##[1,2]`, "data"],
  ["broken JSON", `${UUID}##light##{"on":fals}`, "data"],
  ["a fourth field", `${UUID}##light##{}##extra`, "fields"],
  ["a missing type", `${UUID}##{}`, "fields"],
  ["a single # after the UUID", `${UUID}#light#{}`, "fields"],
];
for (const [what, answer, reason] of rejections) {
  Deno.test(`a handshake with ${what} is rejected at once with reason ${reason}`, () => {
    assert.throws(
      () => readHandshake(bytes(answer), TYPES),
      (error) => error instanceof InvalidInfo && error.reason === reason,
    );
  });
}

Deno.test("incomplete answers wait for more and say what is missing", () => {
  for (
    const [partial, missing] of [
      ["", "nothing received yet"],
      ["1862cfe1-5d", "the rest of the UUID"],
      [`${UUID}#`, "the type field"],
      [`${UUID}##lig`, "the JSON data field"],
      [`${UUID}##light##`, "the JSON data field"],
      [`${UUID}##light##{"a":{"b":1}`, "the end of the JSON data"],
      [`${UUID}##light##{"a":"}`, "the end of the JSON data"],
    ]
  ) {
    const scan = readHandshake(bytes(partial), TYPES);
    assert.equal(scan.status, "incomplete", partial);
    assert.equal(scan.status === "incomplete" && scan.missing, missing, partial);
  }
});

Deno.test("## inside JSON strings, trailing newlines and upper-case UUIDs are accepted", () => {
  const scan = readHandshake(bytes(`${UUID.toUpperCase()}##lock##{"note":"a##b"}\r\n`), TYPES);
  assert.equal(scan.status, "complete");
  if (scan.status !== "complete") return;
  assert.equal(scan.info.uuid, UUID);
  assert.deepEqual(scan.info.data, { note: "a##b" });
  assert.equal(scan.mode, 1);
});

Deno.test("invalid UTF-8 is rejected; a character split by a read boundary is not", () => {
  assert.throws(
    () => readHandshake(Uint8Array.of(0x31, 0xff, 0xfe), TYPES),
    (error) => error instanceof InvalidInfo && error.reason === "encoding",
  );
  const full = bytes(`${UUID}##light##{"name":"été"}`);
  const cut = full.indexOf(0xc3) + 1; // in the middle of "é"
  assert.equal(readHandshake(full.subarray(0, cut), TYPES).status, "incomplete");
  assert.equal(readHandshake(full, TYPES).status, "complete");
});

Deno.test("mode 2: preamble errors and size limits", () => {
  assert.throws(
    () => readHandshake(Uint8Array.of(0, 0x49, 0x4d, 3), TYPES),
    (error) => error instanceof InvalidInfo && /version 3/.test(error.message),
  );
  assert.throws(
    () => readHandshake(Uint8Array.of(0, 0x41), TYPES),
    (error) => error instanceof InvalidInfo && error.reason === "preamble",
  );
  assert.throws(
    () => readHandshake(Uint8Array.of(0, 0x49, 0x4d, 2, 0x10, 0, 0, 0, 0), TYPES),
    (error) => error instanceof InvalidInfo && error.reason === "preamble",
  );
  assert.throws(
    () => readHandshake(Uint8Array.of(0, 0x49, 0x4d, 2, 0x05, 0, 1, 0, 0), TYPES, 1024),
    (error) => error instanceof InvalidInfo && error.reason === "size",
  );
  assert.throws(
    () => readHandshake(bytes(`${UUID}##light##{"a":"${"x".repeat(100)}`), TYPES, 64),
    (error) => error instanceof InvalidInfo && error.reason === "size",
  );
});

Deno.test("mode 2: bytes after the INFO frame are left for the frame decoder", () => {
  const answer = encodeHandshake({ uuid: UUID, type: "light", data: { on: true } }, 2);
  const stream = new Uint8Array([...answer, ...encodeFrame(FrameType.DATA, "hi")]);
  const scan = readHandshake(stream, TYPES);
  assert.equal(scan.status, "complete");
  if (scan.status !== "complete") return;
  assert.equal(scan.mode, 2);
  assert.deepEqual(scan.info.data, { on: true });
  assert.equal(hex(stream.subarray(scan.consumed)), "10 00 00 00 02 68 69");
});

Deno.test("the frame decoder rejects unknown types and oversize frames", () => {
  assert.throws(
    () => new FrameDecoder(16).push(Uint8Array.of(0x7f, 0, 0, 0, 0), () => {}),
    (error) => error instanceof ProtocolError && error.reason === "frame-type",
  );
  assert.throws(
    () => new FrameDecoder(16).push(Uint8Array.of(0x10, 0, 0, 0, 17), () => {}),
    (error) => error instanceof ProtocolError && error.reason === "frame-size",
  );
  const decoder = new FrameDecoder(16);
  decoder.push(Uint8Array.of(0x10, 0, 0), () => {});
  assert.equal(decoder.partial, true);
});

Deno.test("the frame decoder takes only the first `end` bytes of a reused buffer, and a receiver object", () => {
  // A read buffer holds this read's frames followed by stale bytes of an earlier, longer read.
  const buffer = new Uint8Array(64).fill(0x7f); // 0x7f is no frame type: reading past `end` throws
  const frames = [...encodeFrame(FrameType.DATA, "hi"), ...encodeFrame(FrameType.BEAT)];
  buffer.set(frames);
  const seen: string[] = [];
  const decoder = new FrameDecoder(16);
  decoder.push(buffer, {
    frame: (type, payload) => seen.push(`${type}:${new TextDecoder().decode(payload)}`),
  }, frames.length);
  assert.deepEqual(seen, [`${FrameType.DATA}:hi`, `${FrameType.BEAT}:`]);
  assert.equal(decoder.partial, false);
  // An `end` past the bytes would invent zeros; a fraction would drop bytes: both refused.
  for (const end of [frames.length + 7, 65, 6.5, -1, Number.NaN]) {
    assert.throws(
      () => new FrameDecoder(16).push(Uint8Array.from(frames), () => {}, end),
      RangeError,
      String(end),
    );
  }
});

// ---- properties ----

const frameArb = fc.record({
  type: fc.constantFrom(...Object.values(FrameType)) as fc.Arbitrary<FrameTypeValue>,
  payload: fc.uint8Array({ maxLength: 300 }),
});

Deno.test("property: frames round-trip through any split of the stream into reads", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (frames, cuts) => {
        const stream = new Uint8Array(
          frames.flatMap((frame) => [...encodeFrame(frame.type, frame.payload)]),
        );
        const decoded: { type: number; payload: Uint8Array }[] = [];
        const decoder = new FrameDecoder(1024);
        for (const part of splitAt(stream, cuts)) {
          decoder.push(part, (type, payload) => decoded.push({ type, payload }));
        }
        assert.equal(decoder.partial, false);
        assert.deepEqual(decoded, frames.map(({ type, payload }) => ({ type, payload })));
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("property: the decoder never throws anything but ProtocolError on garbage", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => {
      try {
        new FrameDecoder(64).push(garbage, () => {});
      } catch (error) {
        assert.ok(error instanceof ProtocolError);
      }
    }),
    { numRuns: NUM_RUNS },
  );
});

const infoArb = fc.record({
  uuid: fc.uuid(),
  type: fc.constantFrom(...TYPES),
  data: fc.dictionary(fc.string(), fc.jsonValue()),
});

Deno.test("property: any valid handshake in either mode parses, whatever the read split", () => {
  fc.assert(
    fc.property(infoArb, fc.constantFrom(1, 2) as fc.Arbitrary<1 | 2>, fc.array(fc.nat()), (
      info,
      mode,
      cuts,
    ) => {
      const answer = encodeHandshake(info, mode);
      let received = new Uint8Array(0);
      const parts = splitAt(answer, cuts);
      for (const [index, part] of parts.entries()) {
        received = new Uint8Array([...received, ...part]);
        const scan = readHandshake(received, TYPES);
        if (index < parts.length - 1 && received.length < answer.length) {
          assert.equal(scan.status, "incomplete");
        } else {
          assert.equal(scan.status, "complete");
          if (scan.status !== "complete") return;
          assert.equal(scan.mode, mode);
          assert.equal(scan.info.uuid, info.uuid.toLowerCase());
          assert.deepEqual(scan.info.data, JSON.parse(JSON.stringify(info.data)));
        }
      }
    }),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("property: garbage handshakes are incomplete or InvalidInfo, never anything else", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 120 }),
        fc.string({ maxLength: 120 }).map(bytes),
        fc.tuple(fc.uuid(), fc.string(), fc.string()).map(([u, t, d]) => bytes(`${u}##${t}##${d}`)),
      ),
      (garbage) => {
        try {
          const scan = readHandshake(garbage, TYPES, 4096);
          if (scan.status === "complete") {
            assert.ok(TYPES.includes(scan.info.type));
            assert.equal(typeof scan.info.data, "object");
          }
        } catch (error) {
          assert.ok(error instanceof InvalidInfo, String(error));
        }
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("mode-1 chunks: beat answers are separated from messages", () => {
  const split = (chunk: string, pending: boolean) => {
    const result = splitMode1Chunk(bytes(chunk), pending);
    return [result.beat, text(result.message)];
  };
  assert.deepEqual(split("beat", false), [true, ""]);
  assert.deepEqual(split("beat\r\nbeat\n", false), [true, ""]);
  assert.deepEqual(split("beattemp 21", true), [true, "temp 21"]);
  assert.deepEqual(split("beat\ntemp 21", true), [true, "temp 21"]);
  assert.deepEqual(split("beats per minute", false), [false, "beats per minute"]);
  assert.deepEqual(split("temp 21beat", true), [true, "temp 21"]);
  assert.deepEqual(split('{"on":1}beat\n{"on":0}', true), [true, '{"on":1}{"on":0}']);
  assert.deepEqual(split("temp 21beat", false), [false, "temp 21beat"]);
  assert.deepEqual(split("bea", true), [false, "bea"]);
});

Deno.test("property: mode-1 chunk handling never loses or invents message bytes", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.string().map(bytes)),
      fc.boolean(),
      fc.constantFrom("", "beat", "beat\n", "beat\r\n", "beatbeat"),
      (payload, pending, prefix) => {
        const chunk = new Uint8Array([...bytes(prefix), ...payload]);
        const { beat, message } = splitMode1Chunk(chunk, pending);
        const removed = chunk.length - message.length;
        // Only a heartbeat answer is ever removed, and only one unless the chunk is all beats ...
        assert.equal(beat, removed > 0 || (chunk.length > 0 && message.length === 0));
        if (message.length > 0) assert.ok(removed <= 6, "at most one beat with its newline");
        // ... what is left is the chunk with that answer cut out, order kept ...
        const at = [...Array(chunk.length + 1).keys()].find((i) =>
          message.every((byte, j) => byte === chunk[j < i ? j : j + removed])
        );
        assert.notEqual(at, undefined, "the message is the chunk minus one contiguous cut");
        // ... and without a pending heartbeat, only an all-beat chunk is swallowed.
        if (!pending && removed > 0) assert.equal(message.length, 0);
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("property: Mode1Reader finds a heartbeat answer however reads cut it, and keeps the message", () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1 }).filter((m) => !/[\r\nbeat]/.test(m)),
      fc.array(fc.nat(), { maxLength: 4 }),
      (message, points) => {
        const reader = new Mode1Reader(false);
        let beats = 0;
        const received: string[] = [];
        for (const read of splitAt(bytes(`beat${message}`), points)) {
          const step = reader.push(read, beats === 0);
          if (step.beat) beats++;
          if (step.message.length > 0) received.push(text(step.message));
        }
        assert.equal(beats, 1);
        assert.equal(received.join(""), message);
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("Mode1Reader drops the newline after a getinfo answer even in the next read", () => {
  const reader = new Mode1Reader();
  reader.answered();
  assert.equal(reader.push(bytes("\n"), false).message.length, 0);
  assert.equal(text(reader.push(bytes("\nhello"), false).message), "hello");
  assert.equal(text(reader.push(bytes("\nagain"), false).message), "\nagain");
});

Deno.test("encodeMessage copies bytes so a later change by the caller cannot alter a queued message", () => {
  const data = bytes("abc");
  const encoded = encodeMessage(data, 1);
  data[0] = 0x7a;
  assert.equal(text(encoded), "abc");
});

Deno.test("every error the library throws shares one base with a reason and a cause", () => {
  const cause = new Error("underneath");
  const errors = [
    new ConnectionEnd("heartbeat", "no beat", { cause }),
    new InvalidInfo("type", "bad type", { cause }),
    new ProtocolError("frame-size", "too big", { cause }),
    new TimeoutError("too slow", { cause }),
  ];
  for (const error of errors) {
    assert.ok(error instanceof IotManagerError, error.name);
    assert.ok(error instanceof Error);
    assert.equal(typeof error.reason, "string");
    assert.equal(error.cause, cause);
  }
  assert.deepEqual(errors.map((e) => e.reason), ["heartbeat", "type", "frame-size", "timeout"]);
});
