/**
 * lib/protocol/state.ts and lib/protocol/delivery.ts: merge patches, deltas,
 * and the frames of acknowledged delivery and device state, by property.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../mod.ts";
import {
  encodeAck,
  encodeAckedMessage,
  encodeDelta,
  encodeFeatures,
  encodeReport,
  jsonEqual,
  type JsonObject,
  mergePatch,
  parseAck,
  parseAckedMessage,
  parseDelta,
  parseFeatures,
  parseReport,
  stateDelta,
} from "../lib/protocol/mod.ts";
import { bytes } from "./_helpers.ts";

const NUM_RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 500);
const HEADER = 5;

const jsonObject = fc.dictionary(
  fc.string({ maxLength: 4 }),
  fc.jsonValue({ maxDepth: 3 }),
  { maxKeys: 5 },
) as fc.Arbitrary<JsonObject>;

Deno.test("property: a merge patch leaves its inputs alone and applying it twice changes nothing", () => {
  fc.assert(
    fc.property(jsonObject, jsonObject, (target, patch) => {
      const before = JSON.stringify([target, patch]);
      const once = mergePatch(target, patch);
      assert.equal(JSON.stringify([target, patch]), before);
      assert.ok(jsonEqual(mergePatch(once, patch), once));
    }),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("property: a device that applies its desired state has an empty delta", () => {
  fc.assert(
    fc.property(jsonObject, jsonObject, (patch, reported) => {
      const desired = mergePatch({}, patch); // stored desired state: patches applied to nothing
      assert.deepEqual(stateDelta(desired, mergePatch(reported, desired)), {});
    }),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("property: the delta holds exactly the desired keys the reported state differs on", () => {
  fc.assert(
    fc.property(jsonObject, jsonObject, (patch, reported) => {
      const desired = mergePatch({}, patch);
      const delta = stateDelta(desired, reported);
      for (const key of Object.keys(delta)) assert.ok(key in desired);
      for (const [key, value] of Object.entries(desired)) {
        if (jsonEqual(value, reported[key])) assert.ok(!(key in delta), `${key} is already so`);
      }
    }),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("a __proto__ key in a patch or a report is a key like any other", () => {
  const patch = JSON.parse('{"__proto__": {"polluted": true}, "on": true}');
  const merged = mergePatch({}, patch);
  assert.equal(Object.getPrototypeOf(merged), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(JSON.stringify(merged), '{"__proto__":{"polluted":true},"on":true}');
  assert.equal(JSON.stringify(stateDelta(merged, {})), JSON.stringify(merged));
  assert.deepEqual(stateDelta(merged, merged), {});
});

Deno.test("RFC 7386 examples: null removes, objects merge, arrays replace", () => {
  assert.deepEqual(
    mergePatch({ a: "b", c: { d: "e", f: "g" } }, { a: "z", c: { f: null } }),
    { a: "z", c: { d: "e" } },
  );
  assert.deepEqual(mergePatch({ a: [1, 2] }, { a: [3] }), { a: [3] });
  assert.deepEqual(mergePatch({ a: 1 }, { a: { b: null } }), { a: {} });
  assert.deepEqual(stateDelta({ locked: true, mode: "away" }, { locked: false, mode: "away" }), {
    locked: true,
  });
});

Deno.test("property: DELTA, REPORT, MESSAGE, ACK and FEATURES round-trip", () => {
  fc.assert(
    fc.property(
      jsonObject,
      fc.nat(),
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.uint8Array({ maxLength: 64 }),
      (state, version, id, data) => {
        assert.deepEqual(parseDelta(encodeDelta(version, state).subarray(HEADER)), {
          version,
          state: JSON.parse(JSON.stringify(state)),
        });
        assert.deepEqual(
          parseReport(encodeReport(state).subarray(HEADER)),
          JSON.parse(JSON.stringify(state)),
        );
        const message = parseAckedMessage(encodeAckedMessage(id, data).subarray(HEADER));
        assert.equal(message.id, id);
        assert.deepEqual(message.data, data);
        assert.equal(parseAck(encodeAck(id).subarray(HEADER)), id);
      },
    ),
    { numRuns: NUM_RUNS },
  );
  assert.deepEqual(parseFeatures(encodeFeatures(["ack", "state"]).subarray(HEADER)), [
    "ack",
    "state",
  ]);
  assert.deepEqual(parseFeatures(bytes('{"features":["ack","teleport"]}')), ["ack"]);
});

Deno.test("bad payloads of the new frames are ProtocolErrors with reason payload", () => {
  const bad = [
    () => parseDelta(bytes('{"version":"1","state":{}}')),
    () => parseDelta(bytes("not json")),
    () => parseReport(bytes("[1,2]")),
    () => parseAck(bytes("abc")),
    () => parseAckedMessage(bytes("ab")),
    () => parseFeatures(bytes('{"features":"ack"}')),
    () => parseReport(Uint8Array.of(0xff, 0xfe)),
  ];
  for (const parse of bad) {
    assert.throws(parse, (error) => error instanceof ProtocolError && error.reason === "payload");
  }
});
