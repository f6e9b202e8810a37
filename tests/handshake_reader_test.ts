import assert from "node:assert/strict";
import fc from "fast-check";
import { InvalidInfo } from "../mod.ts";
import { encodeHandshake } from "../lib/protocol/mod.ts";
import { HandshakeReader, type HandshakeScan } from "../lib/protocol/mod.ts";
import { bytes, splitAt } from "./_helpers.ts";

const TYPES = ["light", "lock"];
const NUM_RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 1000);

/** Feeds `parts` one by one; returns the final scan or the error's reason. */
function feed(parts: Uint8Array[], maxSize = 4096): HandshakeScan | string {
  const reader = new HandshakeReader({ validTypes: TYPES, maxSize });
  let scan: HandshakeScan = { status: "incomplete", missing: "" };
  try {
    for (const [index, part] of parts.entries()) {
      scan = reader.push(part);
      if (scan.status === "complete") {
        // What follows the answer reaches the connection as the next bytes, whatever the split.
        const after = new Uint8Array([
          ...scan.leftover,
          ...parts.slice(index + 1).flatMap((p) => [...p]),
        ]);
        return { ...scan, consumed: scan.consumed, leftover: after };
      }
    }
    return scan;
  } catch (error) {
    assert.ok(error instanceof InvalidInfo, String(error));
    return error.reason;
  }
}

/** A scan with the whitespace a split may leave after a mode-1 answer removed from its leftover. */
function normalized(scan: HandshakeScan | string): unknown {
  if (typeof scan === "string" || scan.status !== "complete") return scan;
  let skip = 0;
  while (scan.mode === 1 && [0x20, 0x0a, 0x0d, 0x09].includes(scan.leftover[skip])) skip++;
  return { ...scan, consumed: undefined, leftover: scan.leftover.subarray(skip) };
}

const infoArb = fc.record({
  uuid: fc.uuid(),
  type: fc.constantFrom(...TYPES),
  data: fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 6 }),
});

Deno.test("property: a valid answer and what follows it read the same whatever the split", () => {
  fc.assert(
    fc.property(
      infoArb,
      fc.constantFrom(1, 2) as fc.Arbitrary<1 | 2>,
      fc.constantFrom("", "\n", "\r\n", "  "),
      fc.uint8Array({ maxLength: 40 }).filter((rest) =>
        ![0x23, 0x20, 0x09, 0x0a, 0x0d].includes(rest[0])
      ),
      fc.array(fc.nat(), { maxLength: 12 }),
      (info, mode, space, rest, points) => {
        const answer = encodeHandshake(info, mode);
        const stream = new Uint8Array([...answer, ...(mode === 1 ? bytes(space) : []), ...rest]);
        const whole = feed([stream], Infinity);
        const parts = feed(splitAt(stream, points), Infinity);
        assert.equal(typeof whole, "object");
        assert.deepEqual(normalized(parts), normalized(whole));
        if (typeof whole === "string" || whole.status !== "complete") return;
        assert.equal(whole.mode, mode);
        assert.deepEqual(whole.leftover, rest.length > 0 || mode === 2 ? rest : new Uint8Array(0));
        assert.equal(whole.consumed, stream.length - whole.leftover.length);
        assert.deepEqual(normalized(parts), normalized(whole));
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("property: garbage gives InvalidInfo or incomplete, and a split never turns a refusal into an admission", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.string({ maxLength: 200 }).map(bytes),
        fc.tuple(fc.uuid(), fc.string(), fc.string()).map(([u, t, d]) => bytes(`${u}##${t}##${d}`)),
        fc.tuple(fc.uuid(), fc.constantFrom(...TYPES), fc.string()).map(([u, t, d]) =>
          bytes(`${u}##${t}##{${d}`)
        ),
      ),
      fc.array(fc.nat(), { maxLength: 12 }),
      (garbage, points) => {
        const whole = feed([garbage], 128);
        const parts = feed(splitAt(garbage, points), 128);
        const admitted = (scan: HandshakeScan | string) =>
          typeof scan === "object" && scan.status === "complete";
        assert.equal(admitted(parts), admitted(whole));
        if (admitted(whole)) assert.deepEqual(normalized(parts), normalized(whole));
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("the reader refuses as early as it can tell, in both modes", () => {
  const reader = new HandshakeReader({ validTypes: TYPES, maxSize: 4096 });
  assert.equal(reader.push(bytes("1862cfe1-5dab-4d8e-a946-50d6728f830f##li")).status, "incomplete");
  assert.throws(
    () => reader.push(bytes("x##")),
    (e) => e instanceof InvalidInfo && e.reason === "type",
  );
  const json = new HandshakeReader({ validTypes: TYPES });
  assert.equal(
    json.push(bytes("1862cfe1-5dab-4d8e-a946-50d6728f830f##light##  ")).status,
    "incomplete",
  );
  assert.throws(
    () => json.push(bytes("[1]")),
    (e) => e instanceof InvalidInfo && e.reason === "data",
  );
  const mode1Only = new HandshakeReader({ validTypes: TYPES, mode: 1 });
  assert.throws(
    () =>
      mode1Only.push(encodeHandshake({ uuid: crypto.randomUUID(), type: "light", data: {} }, 2)),
    (e) => e instanceof InvalidInfo && e.reason === "uuid",
  );
});

Deno.test("property: the reader's UTF-8 check agrees with a fatal TextDecoder, whatever the split", () => {
  const strict = new TextDecoder("utf-8", { fatal: true });
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 40 }).map((b) => b.filter((x) => x !== 0x22 && x !== 0x5c)),
      fc.array(fc.nat(), { maxLength: 8 }),
      (inside, points) => {
        const head = bytes(`${crypto.randomUUID()}##light##{"a":"`);
        const answer = new Uint8Array([...head, ...inside, ...bytes('"}')]);
        let valid = true;
        try {
          strict.decode(inside);
        } catch {
          valid = false;
        }
        const scan = feed(splitAt(answer, points), Infinity);
        assert.equal(scan === "encoding", !valid, `${[...inside]}`);
      },
    ),
    { numRuns: NUM_RUNS },
  );
});
