import assert from "node:assert/strict";
import { HandlerPool } from "../lib/pool.ts";

Deno.test("HandlerPool runs sync tasks at once and queues async ones past the limit", async () => {
  const errors: unknown[] = [];
  const pool = new HandlerPool({ concurrency: 2, onError: (error) => errors.push(error) });
  const order: string[] = [];
  const gates: (() => void)[] = [];
  const slow = (name: string) => () =>
    new Promise<void>((resolve) => gates.push(() => (order.push(name), resolve())));
  pool.run(slow("a"));
  pool.run(slow("b"));
  pool.run(slow("c"));
  pool.run(() => order.push("sync"));
  assert.equal(pool.running, 2);
  assert.equal(pool.waiting, 2);
  gates.shift()!();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(pool.running, 2, "c started when a finished");
  while (gates.length) gates.shift()!();
  await pool.idle();
  assert.deepEqual(order, ["a", "b", "c", "sync"], "queued calls start in arrival order");
  assert.deepEqual(errors, []);
});

Deno.test("HandlerPool reports throws and rejections with their context and keeps going", async () => {
  const errors: [unknown, Record<string, unknown>][] = [];
  const pool = new HandlerPool({
    concurrency: 1,
    onError: (e, context) => errors.push([e, context]),
  });
  pool.run(() => {
    throw new Error("sync");
  }, { id: 1 });
  pool.run(() => Promise.reject(new Error("async")), { id: 2 });
  let ran = false;
  pool.run(() => ran = true);
  await pool.idle();
  assert.equal(ran, true);
  assert.deepEqual(errors.map(([e, c]) => [(e as Error).message, c.id]), [["sync", 1], [
    "async",
    2,
  ]]);
});

Deno.test("HandlerPool: a long run of queued sync tasks does not grow the stack", async () => {
  const pool = new HandlerPool({ concurrency: 1, onError: (error) => assert.fail(String(error)) });
  let release!: () => void;
  pool.run(() => new Promise<void>((resolve) => release = resolve));
  let count = 0;
  for (let i = 0; i < 100_000; i++) pool.run(() => count++, {});
  assert.equal(pool.run(() => count++), false, "past the high-water mark");
  release();
  await pool.idle();
  assert.equal(count, 100_001);
});
