/** lib/deadlines.ts: many deadlines of one length under one timer. */
import assert from "node:assert/strict";
import { DeadlineQueue } from "../lib/deadlines.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("deadlines: each runs once, in order, no sooner than its length; cancelled ones never", async () => {
  const deadlines = new DeadlineQueue(40);
  const fired: number[] = [];
  const started = performance.now();
  const firedAt: number[] = [];
  const entries = Array.from({ length: 6 }, (_, i) =>
    deadlines.add(() => {
      fired.push(i);
      firedAt.push(performance.now() - started);
    }));
  deadlines.cancel(entries[1]);
  deadlines.cancel(entries[4]);
  deadlines.cancel(entries[4]); // twice: no effect
  assert.equal(deadlines.pending, 4);
  await sleep(200);
  assert.deepEqual(fired, [0, 2, 3, 5]);
  for (const at of firedAt) assert.ok(at >= 39, `ran after ${at} ms`);
  assert.equal(deadlines.pending, 0);
  deadlines.cancel(entries[0]); // already run: no effect
  deadlines.close();
});

Deno.test("deadlines: a flood of cancelled ones is compacted, and later deadlines still run", async () => {
  const deadlines = new DeadlineQueue(30);
  const fired: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const deadline = deadlines.add(() => fired.push(i));
    if (i % 1000 !== 999) deadlines.cancel(deadline);
  }
  assert.equal(deadlines.pending, 5);
  await sleep(150);
  assert.deepEqual(fired, [999, 1999, 2999, 3999, 4999]);
  deadlines.close();
});

Deno.test("deadlines: one that throws does not strand the others; close stops the rest", async () => {
  const deadlines = new DeadlineQueue(20);
  const fired: string[] = [];
  const thrown: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    thrown.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    deadlines.add(() => {
      throw new Error("boom");
    });
    deadlines.add(() => fired.push("after the throw"));
    await sleep(120);
    assert.deepEqual(fired, ["after the throw"]);
    assert.match(String(thrown[0]), /boom/);
    deadlines.add(() => fired.push("closed before due"));
    deadlines.close();
    await sleep(60);
    assert.deepEqual(fired, ["after the throw"]);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
