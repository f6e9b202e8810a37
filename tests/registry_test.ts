import assert from "node:assert/strict";
import fc from "fast-check";
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

/** One device in the plain model: the type it has now. */
type Model = Map<string, { id: number; type: string }>;
type Entry = { uuid: string; type: string; id: number };
type Real = { registry: Registry<Entry>; live: Map<number, Entry> };

const UUIDS = ["u1", "u2", "u3"];
const TYPES = ["light", "lock", "thermostat"];
let nextId = 0;

/** A new connection with this UUID is admitted (replacing any live one). */
class Connect implements fc.Command<Model, Real> {
  constructor(readonly uuid: string, readonly type: string) {}
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    const entry = { uuid: this.uuid, type: this.type, id: nextId++ };
    const displaced = real.registry.add(entry);
    assert.equal(displaced?.id, model.get(this.uuid)?.id);
    if (displaced) real.live.delete(displaced.id);
    real.live.set(entry.id, entry);
    model.set(this.uuid, { id: entry.id, type: this.type });
  }
  toString(): string {
    return `connect(${this.uuid}, ${this.type})`;
  }
}

/** The live device answers `getData()` with another type. */
class Reidentify implements fc.Command<Model, Real> {
  constructor(readonly uuid: string, readonly type: string) {}
  check(model: Readonly<Model>): boolean {
    return model.has(this.uuid);
  }
  run(model: Model, real: Real): void {
    const entry = real.live.get(model.get(this.uuid)!.id)!;
    entry.type = this.type;
    assert.equal(real.registry.retype(entry), true);
    model.get(this.uuid)!.type = this.type;
  }
  toString(): string {
    return `reidentify(${this.uuid} as ${this.type})`;
  }
}

/** A connection that was replaced re-identifies late: the registry must ignore it. */
class StaleReidentify implements fc.Command<Model, Real> {
  constructor(readonly type: string) {}
  check(): boolean {
    return true;
  }
  run(_model: Model, real: Real): void {
    const stale = { uuid: "u1", type: this.type, id: -1 };
    assert.equal(real.registry.retype(stale), false);
    assert.equal(real.registry.remove(stale), false);
  }
  toString(): string {
    return `staleReidentify(${this.type})`;
  }
}

/** The live device with this UUID disconnects. */
class Disconnect implements fc.Command<Model, Real> {
  constructor(readonly uuid: string) {}
  check(model: Readonly<Model>): boolean {
    return model.has(this.uuid);
  }
  run(model: Model, real: Real): void {
    const entry = real.live.get(model.get(this.uuid)!.id)!;
    assert.equal(real.registry.remove(entry), true);
    assert.equal(real.registry.remove(entry), false, "a second remove finds nothing");
    real.live.delete(entry.id);
    model.delete(this.uuid);
  }
  toString(): string {
    return `disconnect(${this.uuid})`;
  }
}

/** Every view of the registry agrees with the model. */
function checkViews(model: Model, registry: Registry<Entry>): void {
  assert.equal(registry.size, model.size);
  assert.deepEqual(
    [...registry.all()].map((entry) => entry.id).sort(),
    [...model.values()].map((device) => device.id).sort(),
  );
  for (const uuid of UUIDS) assert.equal(registry.get(uuid)?.id, model.get(uuid)?.id);
  for (const type of TYPES) {
    const expected = [...model.values()].filter((device) => device.type === type);
    assert.equal(registry.countOfType(type), expected.length, `countOfType(${type})`);
    assert.deepEqual(
      [...registry.ofType(type)].map((entry) => `${entry.id}:${entry.type}`).sort(),
      expected.map((device) => `${device.id}:${type}`).sort(),
    );
  }
}

Deno.test("Registry property: any sequence of connect / re-identify / replace / disconnect matches a plain model", () => {
  const uuid = fc.constantFrom(...UUIDS);
  const type = fc.constantFrom(...TYPES);
  const commands = [
    fc.tuple(uuid, type).map(([u, t]) => new Connect(u, t)),
    fc.tuple(uuid, type).map(([u, t]) => new Reidentify(u, t)),
    type.map((t) => new StaleReidentify(t)),
    uuid.map((u) => new Disconnect(u)),
  ];
  fc.assert(
    fc.property(fc.commands(commands, { maxCommands: 60 }), (sequence) => {
      const model: Model = new Map();
      const real: Real = { registry: new Registry<Entry>(), live: new Map() };
      fc.modelRun(
        () => ({ model, real }),
        [...sequence].flatMap((command) => [command, {
          check: () => true,
          run: (m: Model, r: Real) => checkViews(m, r.registry),
          toString: () => "check",
        }]),
      );
      // Once every device has gone, nothing is left under any type.
      for (const entry of [...real.live.values()]) real.registry.remove(entry);
      assert.equal(real.registry.size, 0);
      for (const t of TYPES) assert.equal(real.registry.countOfType(t), 0);
    }),
    { numRuns: Number(Deno.env.get("FUZZ_RUNS") ?? 500) },
  );
});
