import assert from "node:assert/strict";
import { Outbox } from "../lib/outbox.ts";

/** A connected pair of real loopback sockets. */
async function socketPair(): Promise<{ writer: Deno.Conn; reader: Deno.Conn; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [writer, reader] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
    listener.accept(),
  ]);
  listener.close();
  return {
    writer,
    reader,
    close() {
      for (const conn of [writer, reader]) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    },
  };
}

Deno.test("Outbox writes every queued byte, in order, over a real socket", async () => {
  const pair = await socketPair();
  try {
    const outbox = new Outbox(pair.writer, { maxBufferedBytes: 1 << 20, onError: assert.fail });
    const expected: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const chunk = new TextEncoder().encode(`${i},`);
      expected.push(...chunk);
      assert.equal(outbox.enqueue(chunk), true);
    }
    await outbox.flushed();
    assert.equal(outbox.buffered, 0);
    const received: number[] = [];
    const buffer = new Uint8Array(65536);
    while (received.length < expected.length) {
      const n = await pair.reader.read(buffer);
      if (n === null) break;
      received.push(...buffer.subarray(0, n));
    }
    assert.deepEqual(received, expected);
  } finally {
    pair.close();
  }
});

Deno.test("Outbox reports a peer that stops reading once its buffer limit is reached", async () => {
  const pair = await socketPair();
  try {
    const failures: [string, boolean][] = [];
    const outbox = new Outbox(pair.writer, {
      maxBufferedBytes: 256 * 1024,
      onError: (error, overflow) => failures.push([error.message, overflow]),
    });
    const chunk = new Uint8Array(64 * 1024);
    let accepted = 0;
    // The reader never reads: the kernel buffers fill, then ours, then the outbox gives up.
    for (let i = 0; i < 1000 && outbox.enqueue(chunk); i++) {
      accepted++;
      if (i % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    assert.ok(accepted < 1000);
    assert.equal(failures.length, 1);
    assert.equal(failures[0][1], true);
    assert.match(failures[0][0], /send buffer full/);
    assert.equal(outbox.enqueue(chunk), false, "stays failed");
    await assert.rejects(outbox.flushed(), /send buffer full/);
  } finally {
    pair.close();
  }
});

Deno.test("Outbox limit counts unsent bytes exactly: up to the limit is accepted, one more is not", async () => {
  const writes: { bytes: number; done: PromiseWithResolvers<number> }[] = [];
  const sink = {
    write(bytes: Uint8Array): Promise<number> {
      const done = Promise.withResolvers<number>();
      writes.push({ bytes: bytes.length, done });
      return done.promise;
    },
  };
  const failures: boolean[] = [];
  const outbox = new Outbox(sink, {
    maxBufferedBytes: 100,
    onError: (_error, overflow) => failures.push(overflow),
  });
  assert.equal(outbox.enqueue(new Uint8Array(60)), true);
  assert.equal(outbox.enqueue(new Uint8Array(40)), true, "exactly at the limit");
  assert.equal(outbox.buffered, 100);
  // The sink takes 30 of the first 60 bytes: those no longer count.
  writes[0].done.resolve(30);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(outbox.buffered, 70);
  assert.equal(outbox.enqueue(new Uint8Array(30)), true, "back at the limit after a partial write");
  assert.deepEqual(failures, []);
  assert.equal(outbox.enqueue(new Uint8Array(1)), false, "one byte over");
  assert.deepEqual(failures, [true]);
  for (const write of writes) write.done.resolve(write.bytes);
  await assert.rejects(outbox.flushed(), /send buffer full/);
});
