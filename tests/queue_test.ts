import assert from "node:assert/strict";
import { AsyncQueue } from "../lib/queue.ts";

Deno.test("AsyncQueue yields pushed items in order and ends after stop()", async () => {
  const queue = new AsyncQueue<number>();
  for (let i = 0; i < 5; i++) queue.push(i);
  queue.stop();
  const seen: number[] = [];
  for await (const item of queue) seen.push(item);
  assert.deepEqual(seen, [0, 1, 2, 3, 4]);
  await queue.closed;
});

Deno.test("AsyncQueue reports its high-water mark and releases writers as the consumer drains", async () => {
  const queue = new AsyncQueue<number>({ highWaterMark: 2 });
  assert.equal(queue.push(1), true);
  assert.equal(queue.push(2), false);
  let released = false;
  const writable = queue.writable().then(() => released = true);
  await Promise.resolve();
  assert.equal(released, false);
  const iterator = queue[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value, 1);
  await writable;
  assert.equal(released, true);
  await iterator.return();
});

Deno.test("AsyncQueue: break calls onStop once and later pushes are ignored", async () => {
  let stops = 0;
  const queue = new AsyncQueue<string>({ onStop: () => stops++ });
  queue.push("a");
  queue.push("b");
  for await (const _ of queue) break;
  assert.equal(stops, 1);
  assert.equal(queue.stopped, true);
  queue.push("c");
  assert.equal(queue.size, 0);
  queue.stop();
  assert.equal(stops, 1);
  await queue.closed;
});

Deno.test("AsyncQueue: stop(error) delivers what is pending, then throws the error", async () => {
  const queue = new AsyncQueue<number>();
  queue.push(1);
  queue.stop(new Error("source failed"));
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const item of queue) seen.push(item);
  }, /source failed/);
  assert.deepEqual(seen, [1]);
});

Deno.test("AsyncQueue wakes a waiting consumer on push and has a single consumer", async () => {
  const queue = new AsyncQueue<number>();
  const iterator = queue[Symbol.asyncIterator]();
  const next = iterator.next();
  queue.push(42);
  assert.deepEqual(await next, { value: 42, done: false });
  const second = queue[Symbol.asyncIterator]();
  await assert.rejects(second.next(), /single consumer/);
  queue.stop();
  assert.equal((await iterator.next()).done, true);
});
