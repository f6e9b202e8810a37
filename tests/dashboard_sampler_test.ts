/**
 * The dashboard's chart figures (examples/dashboard/sampler.ts): rates per
 * second, reasons counted per sample, and heartbeat round-trip percentiles over
 * the last two rounds, from hand-made stats snapshots.
 */
import assert from "node:assert/strict";
import type { HistogramSnapshot, ManagerStats } from "../mod.ts";
import { StatsSampler } from "../examples/dashboard/sampler.ts";

const BOUNDS = [1, 5, 10];

/** A manager's stats as far as the sampler reads them; the rest is empty. */
function stats(figures: {
  connected?: number;
  received?: number;
  sent?: number;
  rounds?: number;
  rtt?: number[];
  disconnects?: Record<string, number>;
  refused?: Record<string, number>;
}): ManagerStats {
  const counts = figures.rtt ?? [0, 0, 0, 0];
  const rttMs: HistogramSnapshot = {
    bounds: BOUNDS,
    counts,
    count: counts.reduce((sum, count) => sum + count, 0),
    sum: 0,
  };
  const empty: HistogramSnapshot = { bounds: [1], counts: [0, 0], count: 0, sum: 0 };
  return {
    devices: {
      connected: figures.connected ?? 0,
      byType: { light: figures.connected ?? 0 },
      byMode: { 1: 0, 2: figures.connected ?? 0 },
    },
    handshakes: { accepted: 0, refused: figures.refused ?? {}, pending: 0 },
    disconnects: figures.disconnects ?? {},
    messages: {
      received: figures.received ?? 0,
      receivedBytes: 0,
      sent: figures.sent ?? 0,
      sentBytes: 0,
    },
    fanOut: { sends: 0, deliveries: empty },
    heartbeat: { rounds: figures.rounds ?? 0, rttMs },
    sendBuffer: { maxBytes: 0, totalBytes: 0 },
    handlers: { running: 0, waiting: 0, failed: 0, slow: 0 },
    kept: { kept: 0, delivered: 0, expired: 0, dropped: 0 },
  };
}

Deno.test("sampler: message rates per second and disconnects and refusals per sample", () => {
  let now = stats({ connected: 3 });
  const sampler = new StatsSampler({ stats: () => now });
  const first = sampler.sample(10_000);
  assert.equal(first.time, 10);
  assert.equal(first.connected, 3);
  assert.equal(first.receivedPerSecond, null, "no rate before a second sample");

  now = stats({ connected: 2, received: 40, sent: 10, disconnects: { timeout: 1 } });
  const second = sampler.sample(12_000);
  assert.equal(second.receivedPerSecond, 20);
  assert.equal(second.sentPerSecond, 5);
  assert.deepEqual(second.disconnects, { timeout: 1 });

  now = stats({
    connected: 2,
    received: 40,
    sent: 10,
    disconnects: { timeout: 1, closed: 2 },
    refused: { type: 1 },
  });
  const third = sampler.sample(13_000);
  assert.equal(third.receivedPerSecond, 0);
  assert.deepEqual(third.disconnects, { closed: 2 }, "only what happened since the last sample");
  assert.deepEqual(third.refused, { type: 1 });
  assert.deepEqual(sampler.totals.disconnects, { timeout: 1, closed: 2 });
});

Deno.test("sampler: round-trip percentiles cover the last two heartbeat rounds", () => {
  let now = stats({});
  const sampler = new StatsSampler({ stats: () => now });
  assert.deepEqual(sampler.sample(0).rttMs, { p50: null, p90: null, p99: null });
  // Round 1: slow beats, between 5 and 10 ms.
  now = stats({ rounds: 1, rtt: [0, 0, 10, 0] });
  assert.ok(sampler.sample(1000).rttMs.p50! > 5);
  // Rounds 2 and 3: fast beats, under 1 ms. Round 1 drops out of the window once round 3 began.
  now = stats({ rounds: 2, rtt: [10, 0, 10, 0] });
  sampler.sample(2000);
  now = stats({ rounds: 3, rtt: [20, 0, 10, 0] });
  const sample = sampler.sample(3000);
  assert.ok(sample.rttMs.p99! <= 1, `p99 ${sample.rttMs.p99} ms from the last two rounds only`);
  // No beats for two rounds: no figure rather than an old one.
  now = stats({ rounds: 5, rtt: [20, 0, 10, 0] });
  sampler.sample(4000);
  assert.deepEqual(sampler.sample(5000).rttMs, { p50: null, p90: null, p99: null });
});

Deno.test("sampler: the history is bounded, the oldest sample dropped first", () => {
  const sampler = new StatsSampler({ stats: () => stats({}) }, { capacity: 3 });
  for (let i = 0; i < 5; i++) sampler.sample(i * 1000);
  assert.deepEqual(sampler.history.map((sample) => sample.time), [2, 3, 4]);
});
