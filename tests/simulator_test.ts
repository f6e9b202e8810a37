import assert from "node:assert/strict";
import {
  answer,
  commandLines,
  FakeLight,
  FakeLock,
  parseCommand,
} from "../simulator/fake_devices.ts";
import { type DesiredFigures, judge, type RunFigures } from "../simulator/judge.ts";
import { judgeMemory, type MemorySample } from "../simulator/memory.ts";
import { defaultOptions, parseCli, UsageError } from "../simulator/options.ts";
import { renderHtmlReport } from "../simulator/html_report.ts";
import { type Expectation, renderReport, type SimulationReport } from "../simulator/report.ts";
import { measureReturn } from "../simulator/restart.ts";
import { runSimulation } from "../simulator/scenario.ts";
import { distribution, LatencyHistogram, summarize } from "../simulator/stats.ts";
import { TimelineRecorder } from "../simulator/timeline.ts";
import { startManager, tlsFiles, waitFor } from "./_helpers.ts";
import { assertSelfContained, chartBoxes, embeddedData } from "./_report_page.ts";

/** Asserts that a run met every expectation, showing the failed ones if not. */
function assertPassed(report: SimulationReport): void {
  const failed = report.expectations.filter((expectation) => !expectation.ok);
  assert.deepEqual(failed, [], renderReport(report));
  assert.equal(report.ok, true);
}

Deno.test("simulator: mode 2 fleet, embedded manager: every expectation holds", async () => {
  const report = await runSimulation({
    lights: 20,
    locks: 10,
    heartbeat: 0.2,
    heartbeatTimeout: 1,
  });
  assertPassed(report);
  assert.equal(report.target, "embedded");
  assert.deepEqual(
    [report.devices.connected, report.devices.expected, report.devices.mode2],
    [30, 30, 30],
  );
  // 2 broadcasts to all, 2 to lights, 1 to locks.
  assert.equal(report.broadcasts.expected, 2 * 30 + 2 * 20 + 10);
  assert.equal(report.broadcasts.delivered, report.broadcasts.expected);
  assert.ok(report.broadcasts.latency.max >= report.broadcasts.latency.p50);
  assert.equal(report.requests.answered, report.requests.sent);
  assert.equal(
    report.requests.sent,
    30 + 2,
    "status to every device, plus one unknown command per type",
  );
  assert.equal(report.messages.toDevices.delivered, report.messages.toDevices.sent);
  assert.equal(report.messages.toManager.received, report.messages.toManager.sent);
  assert.ok(report.heartbeats.rounds >= 3, `${report.heartbeats.rounds} heartbeat rounds`);
  assert.ok(report.heartbeats.answered >= 3 * 30);
  assert.equal(report.heartbeats.missed, 0);
  assert.deepEqual(report.disconnects.manager, { "manager-closed": 30 });
  assert.deepEqual(report.disconnects.devices, { "manager-closed": 30 });
  assert.equal(report.disconnects.unexpected, 0);
  assert.equal(report.handshake.count, 30);
  assert.ok(report.peakRss > 0);
  assert.equal("plots" in report, false, "plots are kept only when asked for");
});

Deno.test("simulator: mode 1 fleet: messages without boundaries still all arrive", async () => {
  const report = await runSimulation({
    lights: 10,
    locks: 10,
    mode1Share: 1,
    heartbeat: 0.2,
    heartbeatTimeout: 1,
  });
  assertPassed(report);
  assert.equal(report.devices.mode1, 20);
  assert.equal(report.broadcasts.delivered, report.broadcasts.expected);
  assert.deepEqual(report.disconnects.devices, { ended: 20 });
});

Deno.test("simulator: mixed modes over TLS", async () => {
  const report = await runSimulation({
    lights: 10,
    locks: 6,
    mode1Share: 0.5,
    heartbeat: 0.2,
    heartbeatTimeout: 1,
    tls: { caCerts: [tlsFiles.ca] },
    managerTls: { cert: tlsFiles.cert, key: tlsFiles.key },
  });
  assertPassed(report);
  assert.equal(report.tls, true);
  assert.deepEqual([report.devices.mode1, report.devices.mode2], [8, 8]);
});

Deno.test("simulator: chaos knobs do what they say and the run still passes", async () => {
  const report = await runSimulation({
    lights: 20,
    locks: 20,
    heartbeat: 0.2,
    heartbeatTimeout: 0.4,
    telemetry: 0.2,
    chaos: { silent: 0.1, churn: 600, slow: 0.1, slowDelay: 20, malformed: 0.1 },
  });
  assertPassed(report);
  assert.equal(report.chaos.malformed, 4);
  assert.equal(report.chaos.malformedRejected, 4);
  assert.equal(report.devices.expected, 36);
  assert.equal(report.chaos.silent, 4);
  assert.equal(report.chaos.silentDropped, 4);
  assert.equal(report.disconnects.manager.heartbeat, 4);
  assert.ok(report.heartbeats.ignored >= 4);
  assert.equal(report.chaos.slow, 4);
  assert.ok(report.chaos.churnCycles >= 1, "churn happened");
  assert.equal(report.chaos.churnReconnected, report.chaos.churnCycles);
  assert.ok(report.messages.toManager.sent > report.messages.toDevices.sent, "telemetry was sent");
});

Deno.test("simulator: a short soak: steady traffic under churn, memory timeline, nothing unhandled", async () => {
  const report = await runSimulation({
    lights: 28,
    locks: 12,
    heartbeat: 0.2,
    heartbeatTimeout: 0.6,
    telemetry: 1,
    duration: 3,
    steadyBroadcast: 0.25,
    steadyRequests: 20,
    memoryEvery: 0.5,
    warmUp: 1,
    plots: true,
    chaos: { silent: 0.05, churn: 120, slow: 0, slowDelay: 0, malformed: 0 },
  });
  assertPassed(report);
  assertPlots(report);
  const { broadcasts, requests } = report.steady!;
  assert.ok(broadcasts.sent >= 3, `${broadcasts.sent} steady broadcasts`);
  assert.ok(broadcasts.due > 0);
  assert.equal(broadcasts.missed, 0);
  assert.equal(broadcasts.delivered, broadcasts.due - broadcasts.excused);
  assert.equal(broadcasts.latency.count, broadcasts.delivered);
  assert.ok(requests.sent >= 10, `${requests.sent} steady requests`);
  assert.equal(requests.failed, 0);
  assert.equal(requests.answered, requests.sent - requests.excused);
  assert.ok(requests.answered > 0);
  assert.ok(report.chaos.churnCycles >= 1, "churn happened");
  assert.equal(report.chaos.silentDropped, 2);
  assert.deepEqual(report.process, { unhandledRejections: 0, uncaughtErrors: 0 });
  const memory = report.memory!;
  const steady = memory.samples.filter((sample) => sample.phase === "steady");
  assert.ok(steady.length >= 3, `${steady.length} samples in the steady phase`);
  assert.ok(
    steady.every((sample) => sample.rss > 0 && sample.heapUsed > 0 && sample.connected > 0),
  );
  assert.equal(memory.samples.at(-1)?.phase, "done");
  // `deno test` runs without --expose-gc: the figures are there, the verdict is left to the soak.
  assert.equal(memory.verdict.judged, memory.forcedGc);
  assert.ok(memory.verdict.baseline > 0);
});

/** The plots agree with the report's own figures. */
function assertPlots(report: SimulationReport): void {
  const { timeline, latency } = report.plots!;
  const { samples, phases } = timeline;
  assert.ok(samples.length >= 4 * report.seconds * 0.5, `${samples.length} samples`);
  assert.ok(samples.every((sample, i) => i === 0 || sample.elapsed > samples[i - 1].elapsed));
  const expected = report.devices.expected;
  assert.ok(samples.some((sample) => sample.connected === expected), "the whole fleet connected");
  assert.ok(samples.every((sample) => sample.connected <= expected && sample.rss > 0));
  const last = samples.at(-1)!;
  assert.equal(last.toDevices, report.messages.toDevices.delivered);
  assert.equal(last.toManager, report.messages.toManager.received);
  assert.equal(last.heartbeatRounds, report.heartbeats.rounds);
  assert.equal(last.heartbeatsAnswered, report.heartbeats.answered);
  const managerEnds = Object.values(report.disconnects.manager).reduce((sum, n) => sum + n, 0);
  assert.equal(last.disconnects, managerEnds);
  assert.deepEqual(
    phases.map((phase) => phase.name),
    ["starting", "connecting", "broadcasts", "unicasts", "requests", "steady", "settling"]
      .concat(["shutdown", "done"]),
  );
  assert.ok(phases.every((phase, i) => i === 0 || phase.at >= phases[i - 1].at));
  const total = (counts: readonly number[]) => counts.reduce((sum, n) => sum + n, 0);
  assert.equal(total(latency.handshake.counts), report.handshake.count);
  assert.equal(total(latency.broadcasts.counts), report.broadcasts.delivered);
  assert.equal(total(latency.requests.counts), report.requests.latency.count);
  assert.equal(total(latency.steadyBroadcasts!.counts), report.steady!.broadcasts.latency.count);
  assert.equal(total(latency.steadyRequests!.counts), report.steady!.requests.latency.count);
  const { upTo } = latency.handshake;
  assert.ok(upTo.at(-1)! >= report.handshake.max, "the last bucket holds the slowest handshake");
  assert.ok(upTo.every((edge, i) => i === 0 || edge > upTo[i - 1]));
}

Deno.test("simulator: a restart: the manager closes, a new one takes the port, every device comes back", async () => {
  const report = await runSimulation({
    lights: 100,
    locks: 50,
    heartbeat: 0.2,
    heartbeatTimeout: 1,
    requests: 5,
    restart: 0.2,
    restartDown: 0.5,
  });
  const restart = report.restart!;
  assert.ok(restart, renderReport(report));
  // The fleet came back by itself with the library's default backoff.
  assert.deepEqual(restart.reconnect, { initialDelay: 1, maxDelay: 10, jitter: 1 });
  assert.deepEqual([restart.expected, restart.back], [150, 150]);
  assert.equal(restart.perWindow.reduce((sum, n) => sum + n, 0), 150);
  assert.ok(restart.upAfter >= 0.5, `new manager up ${restart.upAfter} s after the loss`);
  const { p50, p90, last } = restart.backAfter;
  assert.ok(restart.upAfter <= p50 && p50 <= p90 && p90 <= last, JSON.stringify(restart));
  assert.ok(restart.busiest.count >= 1 && restart.busiest.count <= 150);
  assert.equal(restart.busiest.share, restart.busiest.count / 150);
  assert.equal(restart.linesLost, 0);
  // The restart's expectations are judged; their timing verdicts are left to the real run.
  const judged = new Map<string, Expectation>(
    report.expectations.map((e: Expectation) => [e.name, e]),
  );
  assert.equal(judged.get("every device back after the restart")?.ok, true);
  for (
    const name of [
      "busiest 100 ms of the return at most 5 % of the fleet",
      "every device back within 15 s of losing the manager",
    ]
  ) {
    assert.equal(typeof judged.get(name)?.ok, "boolean", `${name} is judged`);
  }
  const timing = new Set([
    "busiest 100 ms of the return at most 5 % of the fleet",
    "every device back within 15 s of losing the manager",
  ]);
  const failed = report.expectations.filter((e: Expectation) => !e.ok && !timing.has(e.name));
  assert.deepEqual(failed, [], renderReport(report));
  // The restart's goodbyes are expected, and the devices answered the new manager's heartbeats.
  assert.equal(report.disconnects.unexpected, 0);
  assert.deepEqual(report.disconnects.manager, { "manager-closed": 300 });
  assert.deepEqual(report.disconnects.devices, { "manager-closed": 300 });
  assert.equal(report.heartbeats.missed, 0);
  const table = renderReport(report);
  for (
    const label of [
      "restart: manager closed at",
      "devices back / expected              150 / 150",
      "back after the loss p50 / p90 / all",
      "busiest 100 ms",
      "handshakes per 100 ms",
    ]
  ) {
    assert.ok(table.includes(label), `the table shows ${label}:\n${table}`);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(report)).restart, restart);
});

Deno.test("simulator --desired --json: the fleet converges under churn and every ttl message is accounted for", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      new URL("../simulator/main.ts", import.meta.url).pathname,
      "--json",
      "--no-status",
      ...["--lights", "12", "--locks", "8", "--requests", "5"],
      ...["--heartbeat", "0.2", "--heartbeat-timeout", "1", "--duration", "2"],
      ...["--churn", "600", "--desired", "--desired-every", "0.3"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  // With --json, stdout is the JSON report and the table goes to stderr.
  // deno-lint-ignore no-explicit-any
  const report: any = JSON.parse(new TextDecoder().decode(stdout));
  const table = new TextDecoder().decode(stderr);
  // Reconnecting within 1 s is a timing verdict: judged, but left to the real run.
  const timing = "every device in step within 1 s of reconnecting";
  const failed = report.expectations.filter((e: Expectation) => !e.ok && e.name !== timing);
  assert.deepEqual(failed, [], table);
  assert.equal(code, report.ok ? 0 : 1);
  const judged = new Map<string, Expectation>(
    report.expectations.map((e: Expectation) => [e.name, e]),
  );
  for (
    const name of [
      "every connected device in step with its desired state",
      timing,
      "every ttl message delivered or counted as expired",
    ]
  ) assert.equal(typeof judged.get(name)?.ok, "boolean", `${name} is judged`);

  const desired = report.desired!;
  assert.ok(desired, table);
  assert.equal(desired.settled, true, table);
  // Churn had every device back by the end: the whole fleet connected, and all of it in step.
  assert.deepEqual(desired.devices, { connected: 20, inStep: 20, mode1: 0 }, table);
  assert.deepEqual(desired.outOfStepSamples, []);
  assert.ok(desired.changes >= 2, `${desired.changes} changes`);
  assert.ok(desired.afterChange.count > 0, table);
  assert.ok(report.chaos.churnCycles >= 1, "churn happened");
  // Every device churn took away was changed while away, so it came back out of step and caught up.
  assert.ok(desired.awayChanges >= 1, table);
  assert.ok(desired.reconnects.outOfStep >= 1, table);
  assert.equal(desired.afterReconnect.count, desired.reconnects.outOfStep, table);
  assert.equal(
    desired.worstMs,
    Math.max(desired.afterChange.maxMs, desired.afterReconnect.maxMs),
  );

  // The ttl books: each send kept, acknowledged at once or failed; each kept one delivered,
  // expired, dropped or still kept; each delivered one received by its device.
  const { ttl } = desired;
  assert.equal(ttl.sent, 2 * desired.awayChanges, "two messages per device away");
  const failedSends = Object.values<number>(ttl.failed).reduce((sum, n) => sum + n, 0);
  assert.equal(ttl.kept + ttl.direct + failedSends, ttl.sent, table);
  assert.deepEqual(Object.keys(ttl.failed).filter((reason) => reason !== "disconnected"), []);
  const books = ttl.manager;
  assert.equal(books.kept, ttl.kept, table);
  assert.equal(
    books.kept,
    books.delivered + books.expired + books.dropped + books.stillKept,
    table,
  );
  assert.equal(books.stillKept, 0, "every device was back to take its messages");
  assert.equal(ttl.received.kept, books.delivered, table);
  assert.equal(ttl.received.direct, ttl.direct, table);
  assert.ok(books.delivered + ttl.direct > 0, "some ttl messages reached their devices");

  for (
    const label of [
      "desired state: ",
      "devices in step / connected                 20 / 20",
      "in step after reconnecting p50 / p99 / max",
      "kept messages (manager)",
    ]
  ) assert.ok(table.includes(label), `the table shows ${label}:\n${table}`);
});

Deno.test("simulator --restart --desired --json: the state crosses the restart, the fleet converges, every ttl message is accounted for", async () => {
  // The manager's SQLite file goes in a temporary directory: write permission there only.
  const temporary = Deno.env.get("TMPDIR") ?? "/tmp";
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      `--allow-write=${temporary}`,
      new URL("../simulator/main.ts", import.meta.url).pathname,
      "--json",
      "--no-status",
      ...["--lights", "12", "--locks", "8", "--requests", "5"],
      ...["--heartbeat", "0.2", "--heartbeat-timeout", "1", "--duration", "1"],
      ...["--restart", "0.2", "--restart-down", "0.5", "--reconnect-max-delay", "1"],
      ...["--desired", "--desired-every", "0.3"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  // deno-lint-ignore no-explicit-any
  const report: any = JSON.parse(new TextDecoder().decode(stdout));
  const table = new TextDecoder().decode(stderr);
  // Timing verdicts are judged, but left to the real run.
  const timing = new Set([
    "busiest 100 ms of the return at most 5 % of the fleet",
    "every device back within 15 s of losing the manager",
    "every device in step within 1 s of reconnecting after the restart",
  ]);
  const failed = report.expectations.filter((e: Expectation) => !e.ok && !timing.has(e.name));
  assert.deepEqual(failed, [], table);
  assert.equal(code, report.ok ? 0 : 1);
  const judged = new Map<string, Expectation>(
    report.expectations.map((e: Expectation) => [e.name, e]),
  );
  for (
    const name of [
      ...timing,
      "every device back after the restart",
      "every connected device in step with its desired state",
      "the new manager read the desired state set before the restart",
      "every ttl message delivered or counted as expired",
    ]
  ) assert.equal(typeof judged.get(name)?.ok, "boolean", `${name} is judged`);

  // One lock and one light (a tenth of each, at least one) were away when the fleet was changed.
  const desired = report.desired!;
  assert.ok(desired, table);
  assert.deepEqual(desired.restart, { away: 2, awayBackOutOfStep: 2, devices: 20, known: 20 });
  const restart = report.restart!;
  assert.ok(restart, table);
  assert.deepEqual([restart.expected, restart.back], [18, 18], "the rest came back by itself");
  // Every device back, all of it in step once the changes went on after the restart.
  assert.equal(desired.settled, true, table);
  assert.deepEqual(desired.devices, { connected: 20, inStep: 20, mode1: 0 }, table);
  assert.ok(desired.changes >= 2, `${desired.changes} changes`);
  assert.ok(desired.reconnects.outOfStep >= 2, table);
  assert.equal(desired.afterReconnect.count, desired.reconnects.outOfStep, table);

  // Kept by the closed manager, in the file; delivered or expired by the new one.
  const { ttl } = desired;
  assert.deepEqual([ttl.sent, ttl.kept, ttl.direct, ttl.failed], [4, 4, 0, {}], table);
  const books = ttl.manager;
  assert.deepEqual(
    books,
    { kept: 4, delivered: 2, expired: 2, dropped: 0, stillKept: 0 },
    "the 60 s messages outlived the restart, the 10 ms ones could not",
  );
  assert.equal(ttl.received.kept, books.delivered, table);
  assert.equal(report.disconnects.unexpected, 0, table);
  for (
    const label of [
      "desired state: ",
      "one just before the restart",
      "across the restart                          2 devices away",
      "devices back / expected              18 / 18",
    ]
  ) assert.ok(table.includes(label), `the table shows ${label}:\n${table}`);
});

Deno.test("the desired expectations fail on a device out of step, a slow return and a lost message", () => {
  const desired: DesiredFigures = {
    every: 1,
    changes: 3,
    awayChanges: 2,
    settled: true,
    mode1: 1,
    connected: [
      { uuid: "a", type: "lock", delta: {} },
      { uuid: "b", type: "light", delta: {} },
    ],
    afterChange: { count: 6, p50: 3, p99: 9, max: 9 },
    afterReconnect: { count: 2, p50: 4, p99: 5, max: 5 },
    reconnects: { total: 3, outOfStep: 2 },
    ttl: {
      sent: 4,
      kept: 4,
      direct: 0,
      failed: {},
      received: { kept: 2, direct: 0, failed: 0 },
      manager: { kept: 4, delivered: 2, expired: 2, dropped: 0, stillKept: 0 },
    },
    restart: null,
  };
  const names = {
    inStep: "every connected device in step with its desired state",
    reconnect: "every device in step within 1 s of reconnecting",
    ttl: "every ttl message delivered or counted as expired",
  };
  const verdicts = (figures: DesiredFigures) => {
    const report = judge(runFigures(figures));
    const byName = new Map(report.expectations.map((e) => [e.name, e]));
    return {
      report,
      inStep: byName.get(names.inStep)!,
      reconnect: byName.get(names.reconnect)!,
      ttl: byName.get(names.ttl)!,
    };
  };
  const good = verdicts(desired);
  assert.deepEqual([good.inStep.ok, good.reconnect.ok, good.ttl.ok], [true, true, true]);
  assert.equal(good.report.ok, true);
  assert.deepEqual(good.report.desired?.devices, { connected: 2, inStep: 2, mode1: 1 });
  assert.equal(good.report.desired?.worst, 9);
  assert.match(good.ttl.detail, /4 kept = 2 delivered \+ 2 expired \+ 0 dropped \+ 0 still kept/);

  const behind = verdicts({
    ...desired,
    connected: [desired.connected[0], { uuid: "b", type: "light", delta: { on: true } }],
  });
  assert.equal(behind.inStep.ok, false);
  assert.match(behind.inStep.detail, /^1 \/ 2 .*; light b still to do \{"on":true\}$/);
  assert.equal(behind.report.ok, false);

  const slow = verdicts({ ...desired, afterReconnect: { count: 2, p50: 4, p99: 1500, max: 1500 } });
  assert.deepEqual([slow.inStep.ok, slow.reconnect.ok], [true, false]);
  assert.match(slow.reconnect.detail, /max 1500\.0 ms/);

  const ttl = desired.ttl;
  const lost = verdicts({ ...desired, ttl: { ...ttl, manager: { ...ttl.manager, delivered: 1 } } });
  assert.equal(lost.ttl.ok, false);
  assert.match(lost.ttl.detail, /1 kept and neither delivered nor expired/);
  const unseen = verdicts({ ...desired, ttl: { ...ttl, received: { ...ttl.received, kept: 1 } } });
  assert.equal(unseen.ttl.ok, false);
  assert.match(unseen.ttl.detail, /the devices received 1 of the 2 delivered/);
  const churned = verdicts({ ...desired, ttl: { ...ttl, sent: 5, failed: { disconnected: 1 } } });
  assert.equal(churned.ttl.ok, true, "the send said it failed: the device left before its ack");
  assert.match(churned.ttl.detail, /1 excused/);
  const timedOut = verdicts({ ...desired, ttl: { ...ttl, sent: 5, failed: { timeout: 1 } } });
  assert.equal(timedOut.ttl.ok, false);
  assert.match(timedOut.ttl.detail, /1 failed: timeout/);
  const none = verdicts({ ...desired, changes: 0 });
  assert.equal(none.inStep.ok, false, "no change made: nothing was shown");
});

Deno.test("across a restart, the desired expectations fail on state the new manager lost and on a device back in step by accident", () => {
  const desired: DesiredFigures = {
    every: 1,
    changes: 3,
    awayChanges: 0,
    settled: true,
    mode1: 0,
    connected: [
      { uuid: "a", type: "lock", delta: {} },
      { uuid: "b", type: "light", delta: {} },
    ],
    afterChange: { count: 4, p50: 3, p99: 9, max: 9 },
    afterReconnect: { count: 1, p50: 4, p99: 4, max: 4 },
    reconnects: { total: 2, outOfStep: 1 },
    ttl: {
      sent: 2,
      kept: 2,
      direct: 0,
      failed: {},
      received: { kept: 1, direct: 0, failed: 0 },
      manager: { kept: 2, delivered: 1, expired: 1, dropped: 0, stillKept: 0 },
    },
    restart: { away: 1, awayBackOutOfStep: 1, devices: 2, known: 2 },
  };
  const names = {
    known: "the new manager read the desired state set before the restart",
    reconnect: "every device in step within 1 s of reconnecting after the restart",
  };
  const verdicts = (figures: DesiredFigures) => {
    const report = judge(runFigures(figures));
    const byName = new Map(report.expectations.map((e) => [e.name, e]));
    return { report, known: byName.get(names.known)!, reconnect: byName.get(names.reconnect)! };
  };
  const good = verdicts(desired);
  assert.deepEqual([good.known.ok, good.reconnect.ok, good.report.ok], [true, true, true]);
  assert.equal(good.known.detail, "2 / 2 devices, from the store the closed manager wrote");
  assert.match(good.reconnect.detail, /; 1 of the 1 away at the restart's change came back/);
  assert.ok(renderReport(good.report).includes("across the restart"));

  const restart = desired.restart!;
  const forgotten = verdicts({ ...desired, restart: { ...restart, known: 1 } });
  assert.equal(forgotten.known.ok, false, "a device whose desired state did not cross");
  // Back in step without being told: the change did not reach it through the new manager.
  const unshown = verdicts({ ...desired, restart: { ...restart, awayBackOutOfStep: 0 } });
  assert.equal(unshown.reconnect.ok, false);
  const slow = verdicts({
    ...desired,
    afterReconnect: { count: 1, p50: 1200, p99: 1200, max: 1200 },
  });
  assert.equal(slow.reconnect.ok, false);
  assert.match(slow.reconnect.detail, /max 1200\.0 ms/);
});

/** The figures of an external run that did nothing but the desired scenario. */
function runFigures(desired: DesiredFigures): RunFigures {
  return {
    target: "external",
    address: "127.0.0.1:1",
    tls: false,
    seconds: 1,
    aborted: false,
    asked: { requests: 0, steadyBroadcast: 0, steadyRequests: 0 },
    devices: [],
    connected: 0,
    peakConnected: 0,
    aliveAtShutdown: [],
    malformed: { sent: 0, rejected: 0 },
    handshakeMs: [],
    broadcasts: [],
    unicasts: [],
    requests: { sent: 0, answered: 0, latencies: [] },
    answers: { sent: 0, received: 0 },
    messages: { toDevices: { sent: 0, delivered: 0 }, toManager: { sent: 0, received: 0 } },
    heartbeats: { rounds: 0, answered: 0, ignored: 0, missed: 0 },
    disconnects: { manager: {}, devices: {}, unexpected: 0, unexpectedSamples: [] },
    dropped: { silent: 0, slow: 0 },
    churn: { cycles: 0, reconnected: 0 },
    steady: null,
    memory: null,
    restart: null,
    desired,
    plots: null,
    peakRss: 0,
    process: { unhandledRejections: 0, uncaughtErrors: 0 },
    errors: { count: 0, samples: [] },
  };
}

Deno.test("the return is counted in sliding 100 ms windows", () => {
  const figures = measureReturn([3.0, 3.07, 3.12, 3.15, 3.35, 4.8], 8);
  // 3.07 to 3.15 is the busiest 100 ms although no fixed window holds all three.
  assert.deepEqual(figures.busiest, { count: 3, share: 3 / 8, from: 3.07 });
  assert.equal(figures.perWindow.length, 49);
  assert.deepEqual(figures.perWindow.slice(29, 34), [0, 2, 2, 0, 1]);
  assert.equal(figures.perWindow[48], 1);
  assert.deepEqual(figures.backAfter, { p50: 3.12, p90: 4.8, last: 4.8 });
  assert.deepEqual([figures.back, figures.expected], [6, 8]);
  const none = measureReturn([], 10);
  assert.deepEqual([none.back, none.busiest.count, none.perWindow.length], [0, 0, 0]);
});

Deno.test("simulator: unhandled rejections and uncaught errors are counted and fail the run", async () => {
  let thrown = false;
  const report = await runSimulation({
    lights: 2,
    locks: 1,
    heartbeat: 0.1,
    requests: 1,
    onStatus: (status) => {
      if (status.phase !== "steady" || thrown) return;
      thrown = true;
      Promise.reject(new Error("nobody catches this"));
      setTimeout(() => {
        throw new Error("thrown in a timer");
      });
    },
  });
  assert.deepEqual(report.process, { unhandledRejections: 1, uncaughtErrors: 1 });
  assert.equal(report.ok, false);
  const failed = report.expectations.filter((expectation) => !expectation.ok).map((e) => e.name);
  assert.deepEqual(failed, ["no unhandled promise rejections", "no uncaught errors", "no errors"]);
  assert.ok(report.errors.samples.some((sample) => sample.includes("nobody catches this")));
  assert.ok(report.errors.samples.some((sample) => sample.includes("thrown in a timer")));
});

Deno.test("simulator: against an external manager it only runs the devices", async () => {
  await using manager = await startManager({ heartbeatRate: 0.1, heartbeatTimeout: 1 });
  let most = 0;
  manager.on("connect", () => void (most = Math.max(most, manager.size)));
  const report = await runSimulation({
    lights: 6,
    locks: 4,
    connect: { hostname: "127.0.0.1", port: manager.port },
    duration: 0.5,
  });
  assertPassed(report);
  assert.equal(report.target, "external");
  assert.equal(most, 10);
  assert.equal(report.broadcasts.sent, 0);
  assert.ok(report.heartbeats.answered >= 10, "the devices answered the external manager");
  assert.deepEqual(report.disconnects.devices, { kicked: 10 });
  await waitFor(() => manager.size === 0, "the devices gone");
});

Deno.test("simulator: an aborted run stops early and says so", async () => {
  const controller = new AbortController();
  const report = await runSimulation({
    lights: 5,
    locks: 5,
    heartbeat: 60,
    signal: controller.signal,
    onStatus: (status) => {
      if (status.phase === "steady") controller.abort();
    },
  });
  assert.equal(report.aborted, true);
  assert.equal(report.ok, false);
  assert.equal(report.devices.connected, 10);
});

Deno.test("fake devices obey their commands and answer unknown ones with an error", () => {
  const light = new FakeLight();
  assert.equal(answer(light, "on"), '{"on":true,"brightness":100}');
  assert.equal(answer(light, "brightness 40 #b3"), '{"on":true,"brightness":40,"id":"b3"}');
  assert.equal(answer(light, "toggle"), '{"on":false,"brightness":40}');
  assert.equal(answer(light, "off"), '{"on":false,"brightness":40}');
  assert.equal(answer(light, "status"), '{"on":false,"brightness":40}');
  assert.match(answer(light, "brightness 400"), /"error"/);
  assert.equal(answer(light, "fly"), '{"error":"unknown command \\"fly\\""}');
  const lock = new FakeLock();
  assert.equal(answer(lock, "unlock"), '{"locked":false}');
  assert.equal(answer(lock, "lock #x"), '{"locked":true,"id":"x"}');
  assert.equal(answer(lock, "status"), '{"locked":true}');
  assert.equal(answer(lock, ""), '{"error":"unknown command \\"\\""}');
  assert.deepEqual(parseCommand("  brightness   40  #t1 "), {
    name: "brightness",
    args: ["40"],
    tag: "t1",
  });
  assert.deepEqual(commandLines("on #1\n\nstatus\r\n"), ["on #1", "status"]);
});

Deno.test("fake devices apply the desired keys they understand and leave the rest", () => {
  const light = new FakeLight();
  // Each key is its own part of the state: a desired brightness does not switch the light.
  assert.deepEqual(light.applyDelta({ brightness: 40 }), { on: false, brightness: 40 });
  assert.deepEqual(light.applyDelta({ on: true }), { on: true, brightness: 40 });
  assert.deepEqual(light.applyDelta({ brightness: 0 }), { on: true, brightness: 0 });
  for (const bad of [{ on: "yes" }, { brightness: 101 }, { brightness: 2.5 }, { color: "red" }]) {
    assert.deepEqual(light.applyDelta(bad), { on: true, brightness: 0 }, JSON.stringify(bad));
  }
  const lock = new FakeLock();
  assert.deepEqual(lock.applyDelta({ locked: false, battery: 10 }), { locked: false });
  assert.deepEqual(lock.applyDelta({ locked: null }), { locked: false });
  assert.deepEqual(lock.applyDelta({}), { locked: false });
  assert.equal(answer(lock, "status"), '{"locked":false}', "commands see the same state");
});

Deno.test("the CLI parses every flag and refuses bad ones", () => {
  const files: Record<string, string> = { "ca.pem": "CA", "c.pem": "CERT", "k.pem": "KEY" };
  const read = (path: string) => {
    if (!(path in files)) throw new Deno.errors.NotFound(`no such file: ${path}`);
    return files[path];
  };
  const request = parseCli([
    "--lights=12",
    "--locks",
    "8",
    "--mode",
    "mixed",
    "--duration",
    "2",
    "--heartbeat",
    "0.5",
    "--rate",
    "300",
    "--silent",
    "0.1",
    "--churn",
    "30",
    "--slow",
    "0.2",
    "--malformed",
    "0.05",
    "--tls",
    "--ca",
    "ca.pem",
    "--cert",
    "c.pem",
    "--key",
    "k.pem",
    "--json",
    "--log-level",
    "info",
    "--steady-broadcast",
    "2",
    "--steady-requests",
    "20",
    "--memory-every",
    "0.2",
    "--warm-up",
    "1",
  ], read);
  assert.equal(request.help, false);
  if (request.help) return;
  const { options } = request;
  assert.deepEqual(
    [options.lights, options.locks, options.mode1Share, options.duration, options.heartbeat],
    [12, 8, 0.5, 2, 0.5],
  );
  assert.deepEqual(options.chaos, {
    silent: 0.1,
    churn: 30,
    slow: 0.2,
    slowDelay: 100,
    malformed: 0.05,
  });
  assert.deepEqual(
    [options.steadyBroadcast, options.steadyRequests, options.memoryEvery, options.warmUp],
    [2, 20, 0.2, 1],
  );
  assert.deepEqual(options.tls, { caCerts: ["CA"] });
  assert.deepEqual(options.managerTls, { cert: "CERT", key: "KEY" });
  assert.equal(request.json, true);
  assert.equal(request.logLevel, "info");
  const external = parseCli(["--connect", "devices.example:8595", "--mode", "1"], read);
  assert.ok(!external.help && external.options.connect?.port === 8595);
  assert.ok(!external.help && external.options.mode1Share === 1);
  assert.deepEqual(parseCli(["--help"]), { help: true });
  for (
    const bad of [
      ["--mode", "3"],
      ["--silent", "2"],
      ["--lights", "-1"],
      ["--connect", "nope"],
      ["--tls"],
      ["--ca", "ca.pem"],
      ["--frobnicate"],
      ["--log-level", "loud"],
      ["--lights", "0", "--locks", "0"],
      ["--memory-every", "-1"],
      ["--connect", "devices.example:8595", "--steady-requests", "5"],
      ["--tls", "--ca", "missing.pem", "--cert", "c.pem", "--key", "k.pem"],
      ["--restart", "-1"],
      ["--restart-down", "5"],
      ["--reconnect-jitter", "0.5"],
      ["--restart", "1", "--reconnect-jitter", "2"],
      ["--restart", "1", "--reconnect-delay", "0"],
      ["--restart", "1", "--churn", "60"],
      ["--restart", "1", "--silent", "0.1"],
      ["--restart", "1", "--steady-requests", "5"],
      ["--restart", "1", "--connect", "devices.example:8595"],
      ["--desired-every", "2"],
      ["--desired", "--desired-every", "0"],
      ["--desired", "--connect", "devices.example:8595"],
      ["--desired", "--mode", "1"],
    ]
  ) {
    assert.throws(() => parseCli(bad, read), UsageError, bad.join(" "));
  }
});

Deno.test("the CLI's --html: a file to write, and plots kept for it", () => {
  const asked = parseCli(["--html", "report.html"]);
  assert.equal(asked.help, false);
  if (asked.help) return;
  assert.equal(asked.html, "report.html");
  assert.equal(asked.options.plots, true);
  assert.equal(asked.json, false);
  const plain = parseCli([]);
  if (plain.help) return;
  assert.deepEqual([plain.html, plain.options.plots], [undefined, false]);
  assert.throws(() => parseCli(["--html", ""]), UsageError);
  assert.throws(() => parseCli(["--html"]), UsageError);
});

const embeddedReport = (html: string) => embeddedData<SimulationReport>(html);

Deno.test("the HTML report is one self-contained page with the figures, the verdicts and the plots' data", async () => {
  const report = await runSimulation({
    lights: 4,
    locks: 2,
    heartbeat: 0.1,
    requests: 2,
    duration: 1,
    steadyBroadcast: 0.2,
    steadyRequests: 10,
    plots: true,
  });
  assertPassed(report);
  const html = renderHtmlReport(report, { generatedAt: new Date("2026-01-02T03:04:05Z") });
  assertSelfContained(html);
  // The figures and the verdicts, readable without JavaScript.
  assert.match(html, /<title>iot-manager simulator: PASS, 6 devices, /);
  assert.ok(html.includes(">6 / 6<"), "the devices card");
  assert.ok(html.includes("made 2026-01-02 03:04:05 UTC"));
  for (const expectation of report.expectations) {
    assert.ok(
      html.includes(`<td class="verdict">PASS</td><td>${expectation.name.replace("'", "&#39;")}`),
      `PASS ${expectation.name}`,
    );
  }
  assert.ok(html.includes("result: PASS"));
  for (const label of ["handshake latency p50 / p99", "steady broadcasts", "manager-closed"]) {
    assert.ok(html.includes(label), label);
  }
  // A box for each plot, and the data behind them: the report itself.
  assert.deepEqual(chartBoxes(html), [
    "connected",
    "messages",
    "heartbeats",
    "memory",
    "handshake",
    "broadcasts",
    "requests",
  ]);
  const embedded = embeddedReport(html);
  assert.deepEqual(embedded, JSON.parse(JSON.stringify(report)));
  assertPlots(embedded);
});

Deno.test("the HTML report shows a failed run's FAIL lines and escapes what it quotes", () => {
  const failed = runFigures(null as unknown as DesiredFigures);
  const report = judge({
    ...failed,
    desired: null,
    errors: { count: 1, samples: ["a device sent <script>alert(1)</script>"] },
  });
  assert.equal(report.ok, false);
  const html = renderHtmlReport(report);
  assert.match(html, /<title>iot-manager simulator: FAIL/);
  assert.ok(html.includes('<td class="verdict">FAIL</td><td>no errors</td><td>1</td>'));
  assert.ok(html.includes("result: FAIL"));
  assert.ok(html.includes("a device sent &#60;script&#62;alert(1)&#60;/script&#62;"));
  assertSelfContained(html);
  assert.ok(html.includes("kept no time series"), "no plots without plots: true");
  assert.doesNotMatch(html, /class="plot" data-chart=/);
  assert.equal(embeddedReport(html).errors.samples[0], report.errors.samples[0]);
});

Deno.test("the CLI's desired flags: off by default, a change every second when on", async () => {
  const off = parseCli([]);
  assert.ok(!off.help);
  assert.deepEqual([off.options.desired, off.options.desiredEvery], [false, 1]);
  const on = parseCli(["--desired", "--desired-every", "0.5", "--churn", "20", "--mode", "mixed"]);
  assert.ok(!on.help);
  assert.deepEqual([on.options.desired, on.options.desiredEvery], [true, 0.5]);
  await assert.rejects(
    () =>
      runSimulation({
        lights: 1,
        locks: 1,
        desired: true,
        connect: { hostname: "127.0.0.1", port: 1 },
      }),
    TypeError,
  );
});

Deno.test("the CLI's restart flags: the library's backoff unless one is given", async () => {
  const plain = parseCli(["--restart", "2"]);
  assert.ok(!plain.help);
  assert.deepEqual(
    [plain.options.restart, plain.options.restartDown, plain.options.reconnect],
    [2, 3, undefined],
  );
  const tuned = parseCli([
    "--restart",
    "0",
    "--restart-down",
    "1.5",
    "--reconnect-delay",
    "0.5",
    "--reconnect-max-delay",
    "30",
    "--reconnect-jitter",
    "0.2",
  ]);
  assert.ok(!tuned.help);
  assert.deepEqual([tuned.options.restart, tuned.options.restartDown], [0, 1.5]);
  assert.deepEqual(tuned.options.reconnect, { initialDelay: 0.5, maxDelay: 30, jitter: 0.2 });
  const none = parseCli([]);
  assert.ok(!none.help && none.options.restart === undefined);
  await assert.rejects(
    () =>
      runSimulation({
        lights: 1,
        locks: 1,
        restart: 1,
        chaos: { ...defaultOptions.chaos, churn: 60 },
      }),
    TypeError,
  );
});

Deno.test("the report renders as a table with every figure and the verdict", async () => {
  const report = await runSimulation({
    lights: 3,
    locks: 2,
    heartbeat: 0.1,
    requests: 2,
    duration: 0.5,
    steadyBroadcast: 0.1,
    steadyRequests: 10,
    memoryEvery: 0.1,
    warmUp: 0.1,
  });
  const table = renderReport(report);
  for (
    const label of [
      "devices connected / expected",
      "handshake latency p50 / p99",
      "broadcast latency p50 / p99 / max",
      "messages delivered / sent",
      "heartbeats",
      "disconnects (manager view)",
      "peak memory (RSS)",
      "steady broadcasts",
      "steady requests",
      "unhandled rejections / uncaught",
      "memory: the whole process (manager and 5 devices)",
      "heapUsed",
      "verdict: ",
      "result: PASS",
    ]
  ) {
    assert.ok(table.includes(label), `the table shows ${label}:\n${table}`);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(report)).devices, report.devices);
  assert.deepEqual(JSON.parse(JSON.stringify(report)).memory, report.memory);
});

Deno.test("the memory verdict compares the heap after warm-up with the end", () => {
  const mib = 1048576;
  const timeline = (heap: (elapsed: number) => number): MemorySample[] =>
    Array.from({ length: 13 }, (_, i) => ({
      elapsed: i * 10,
      phase: "steady",
      connected: 2000,
      rss: 200 * mib,
      heapUsed: heap(i * 10),
      external: 30 * mib,
    }));
  const window = { steadyStart: 0, steadyEnd: 120, warmUp: 30, forcedGc: true };
  // Warm-up growth does not count; a 5 % wobble after it is flat.
  const flat = judgeMemory(
    timeline((t) => (t < 30 ? 20 + t : 50 + (t % 20 === 0 ? 2.5 : 0)) * mib),
    window,
  );
  assert.equal(flat.judged, true);
  assert.equal(flat.ok, true);
  assert.equal(flat.baseline, 50 * mib, "median of the samples at 30, 40 and 50 s");
  assert.equal(flat.baselineAt, 50);
  assert.equal(flat.endAt, 120);
  // 0.1 MiB a second leaks 9 MiB over the window: more than 10 % of 50 MiB.
  const leaking = judgeMemory(timeline((t) => (50 + t / 10) * mib), window);
  assert.equal(leaking.ok, false);
  assert.ok(leaking.growth > leaking.limit);
  assert.ok(Math.abs(leaking.trendPerMinute - 6 * mib) < 1, "0.1 MiB/s is 6 MiB/min");
  const noGc = judgeMemory(timeline(() => 50 * mib), { ...window, forcedGc: false });
  assert.deepEqual([noGc.judged, noGc.ok], [false, false]);
  assert.match(noGc.reason, /expose-gc/);
  const short = judgeMemory(timeline(() => 50 * mib), { ...window, warmUp: 115 });
  assert.equal(short.judged, false);
  assert.match(short.reason, /1 sample\(s\) after the warm-up/);
});

Deno.test("the latency histogram keeps percentiles within 2 % in fixed memory", () => {
  const histogram = new LatencyHistogram();
  assert.deepEqual(histogram.summary(), { count: 0, p50: 0, p99: 0, max: 0 });
  for (let ms = 1; ms <= 1000; ms++) histogram.add(ms);
  const { count, p50, p99, max } = histogram.summary();
  assert.deepEqual([count, max], [1000, 1000]);
  assert.ok(p50 >= 500 && p50 <= 510, `p50 ${p50}`);
  assert.ok(p99 >= 990 && p99 <= 1000, `p99 ${p99}`);
  histogram.add(0);
  histogram.add(1e9);
  assert.equal(histogram.summary().max, 1e9);
});

Deno.test("the timeline stays bounded: full, it keeps every other sample and the last", () => {
  const recorder = new TimelineRecorder(0.25, 100);
  const sample = (elapsed: number) => ({
    elapsed,
    connected: 1,
    toDevices: elapsed,
    toManager: 0,
    heartbeatsAnswered: 0,
    heartbeatRounds: 0,
    disconnects: 0,
    errors: 0,
    rss: 1,
    heapUsed: 1,
    external: 0,
  });
  for (let tick = 0; tick < 10_000; tick++) recorder.add(sample(tick / 4));
  recorder.add(sample(2500), true);
  for (let i = 0; i < 200; i++) recorder.phase(i % 2 === 0 ? "steady" : "settling", i);
  recorder.phase("settling", 300);
  const { every, samples, phases } = recorder.timeline();
  assert.ok(samples.length <= 100, `${samples.length} samples`);
  assert.equal(every, 32, "0.25 s doubled seven times: 10000 ticks in under 100 samples");
  assert.deepEqual(samples.slice(0, 3).map((s) => s.elapsed), [0, 32, 64]);
  assert.equal(samples.at(-1)!.elapsed, 2500, "the last figures are kept");
  assert.equal(phases.length, 100, "phase changes are capped too");
});

Deno.test("latency distributions count ten log buckets per decade", () => {
  assert.deepEqual(distribution([]), { upTo: [], counts: [] });
  assert.deepEqual(distribution([1, 1, 1.1, 1.9]), {
    upTo: [1, 1.26, 1.58, 2],
    counts: [2, 1, 0, 1],
  });
  const samples = Array.from({ length: 1000 }, (_, i) => 0.5 + i * 0.7);
  const histogram = new LatencyHistogram();
  for (const ms of samples) histogram.add(ms);
  const exact = distribution(samples);
  const approximate = histogram.distribution();
  const total = (counts: readonly number[]) => counts.reduce((sum, n) => sum + n, 0);
  assert.equal(total(exact.counts), 1000);
  assert.equal(total(approximate.counts), 1000);
  assert.equal(approximate.upTo.at(-1), exact.upTo.at(-1));
  // A fine bucket lands where its upper edge falls: at most one plot bucket high.
  let moved = 0;
  for (let i = 0; i < exact.counts.length; i++) {
    const at = approximate.upTo.indexOf(exact.upTo[i]);
    moved += Math.abs(exact.counts[i] - (approximate.counts[at] ?? 0));
  }
  assert.ok(moved < 100, `${moved} of 1000 samples counted one bucket high`);
});

Deno.test("summarize uses nearest-rank percentiles", () => {
  assert.deepEqual(summarize([]), { count: 0, p50: 0, p99: 0, max: 0 });
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.deepEqual(summarize(hundred), { count: 100, p50: 50, p99: 99, max: 100 });
});
