import assert from "node:assert/strict";
import { Registry } from "../lib/registry.ts";

Deno.test("Registry indexes by UUID and type; add replaces; remove only removes the same entry", () => {
  const registry = new Registry<{ uuid: string; type: string; n: number }>();
  const a = { uuid: "u1", type: "light", n: 1 };
  const b = { uuid: "u2", type: "lock", n: 2 };
  assert.equal(registry.add(a), undefined);
  registry.add(b);
  assert.equal(registry.size, 2);
  assert.deepEqual([...registry.ofType("light")], [a]);
  const newer = { uuid: "u1", type: "lock", n: 3 };
  assert.equal(registry.add(newer), a);
  assert.equal(registry.countOfType("light"), 0);
  assert.equal(registry.countOfType("lock"), 2);
  assert.equal(registry.remove(a), false, "the replaced entry is gone already");
  assert.equal(registry.get("u1"), newer);
  assert.equal(registry.remove(newer), true);
  assert.deepEqual([...registry.all()], [b]);
  assert.deepEqual([...registry.ofType("fridge")], []);
});
