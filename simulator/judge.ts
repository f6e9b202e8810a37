/**
 * The judge: turns the figures a run collected into its
 * {@linkcode SimulationReport}: the report's sections, each expectation with
 * the figures behind it, and the verdict. Pure functions over plain data (no
 * sockets, timers or clock), so what a run is held to reads in one place and
 * a test can judge figures it made up.
 *
 * @module
 */

import type { ConnectionEnd, JsonObject, ProtocolMode } from "@iot-manager/core";
import { type DesiredReport, IN_STEP_AFTER_RECONNECT_LIMIT_MS } from "./desired.ts";
import type { FakeType } from "./fake_devices.ts";
import type { Role } from "./fleet.ts";
import { MIB, mib, ms, msOf, percent, seconds, signed } from "./format.ts";
import { HEAP_GROWTH_LIMIT, judgeMemory, type MemoryReport } from "./memory.ts";
import type { Expectation, SimulationReport } from "./report.ts";
import {
  measureReturn,
  type RestartReport,
  RETURN_ALL_BACK_LIMIT,
  RETURN_BUSIEST_LIMIT,
  RETURN_WINDOW_MS,
  type ReturnFigures,
} from "./restart.ts";
import { distribution, type LatencyDistribution, summarize } from "./stats.ts";
import type { SteadyReport } from "./steady.ts";
import type { Timeline } from "./timeline.ts";

/** One device as the verdicts look at it, in its state at the end of the run (a `SimDevice` is one). */
export interface DeviceFigures {
  readonly uuid: string;
  readonly type: FakeType;
  readonly mode: ProtocolMode;
  readonly role: Role;
  /** Behaved and was never churned: held to every expectation. */
  readonly stable: boolean;
  /** Tag of each scripted command it received, with when (`performance.now()`). */
  readonly received: ReadonlyMap<string, number>;
  /** How its last connection ended, as the device saw it; null while connected. */
  readonly lastEnd: Pick<ConnectionEnd, "reason" | "message"> | null;
}

/** A scripted broadcast of the embedded scenario. */
export interface BroadcastFigures {
  /** The tag its command carried. */
  readonly tag: string;
  /** Whom it was sent to. */
  readonly target: "all" | FakeType;
  /** `performance.now()` just before the send. */
  readonly sentAt: number;
}

/** The memory timeline (`--memory-every`), before its verdict. */
export type MemoryFigures = Omit<MemoryReport, "verdict">;

/** The restart (`--restart`), before the fleet's return is measured. */
export type RestartFigures = Omit<RestartReport, keyof ReturnFigures> & {
  /** Devices registered at the close: the fleet that should come back. */
  readonly expected: number;
  /** Seconds from the loss to each returning device's registration. */
  readonly backAfter: readonly number[];
};

/** The desired-state scenario (`--desired`), before the fleet's end state is counted. */
export type DesiredFigures = Omit<DesiredReport, "devices" | "outOfStepSamples" | "worst"> & {
  /** Mode-1 devices, left out (mode 1 has no desired state). */
  readonly mode1: number;
  /** Every mode-2 device connected after settling, with its delta then (`{}` when in step). */
  readonly connected: readonly {
    readonly uuid: string;
    readonly type: FakeType;
    readonly delta: JsonObject;
  }[];
};

/** What a run kept for plots (`plots`): its timeline and the steady traffic's latencies. */
export interface PlotFigures {
  readonly timeline: Timeline;
  /** The steady broadcasts' and requests' latencies; null without steady traffic. */
  readonly steady: {
    readonly broadcasts: LatencyDistribution;
    readonly requests: LatencyDistribution;
  } | null;
}

/** Everything a run collected, as the judge takes it. Latencies in milliseconds, sizes in bytes. */
export interface RunFigures {
  readonly target: SimulationReport["target"];
  readonly address: string;
  readonly tls: boolean;
  /** Wall time of the whole run, in seconds. */
  readonly seconds: number;
  readonly aborted: boolean;
  /** What the run was asked for, as far as the expectations depend on it. */
  readonly asked: {
    readonly requests: number;
    readonly steadyBroadcast: number;
    readonly steadyRequests: number;
  };
  /** The fleet (malformed handshakes excluded). */
  readonly devices: readonly DeviceFigures[];
  /** Devices that connected at least once (embedded: registered by the manager). */
  readonly connected: number;
  /** Most devices registered (embedded) or connected (external) at once. */
  readonly peakConnected: number;
  /** Devices still connected when shutdown began: each should have read the manager's goodbye. */
  readonly aliveAtShutdown: readonly DeviceFigures[];
  /** Malformed handshakes sent, and rejected by the manager. */
  readonly malformed: { readonly sent: number; readonly rejected: number };
  readonly handshakeMs: readonly number[];
  readonly broadcasts: readonly BroadcastFigures[];
  /** Scripted `send(uuid)`s: the device and the tag of its command. */
  readonly unicasts: readonly { readonly device: DeviceFigures; readonly tag: string }[];
  readonly requests: {
    readonly sent: number;
    readonly answered: number;
    readonly latencies: readonly number[];
  };
  /** Lines the undisturbed devices sent, and those of them the manager had once all was quiet. */
  readonly answers: { readonly sent: number; readonly received: number };
  readonly messages: SimulationReport["messages"];
  readonly heartbeats: SimulationReport["heartbeats"];
  readonly disconnects: SimulationReport["disconnects"];
  /** Silent devices dropped for heartbeat, slow readers dropped. */
  readonly dropped: { readonly silent: number; readonly slow: number };
  /** Churn cycles run, and devices that came back from one. */
  readonly churn: { readonly cycles: number; readonly reconnected: number };
  readonly steady: SteadyReport | null;
  readonly memory: MemoryFigures | null;
  readonly restart: RestartFigures | null;
  readonly desired: DesiredFigures | null;
  /** Kept for plots when asked for (`plots`); null otherwise. */
  readonly plots: PlotFigures | null;
  readonly peakRss: number;
  readonly process: SimulationReport["process"];
  readonly errors: SimulationReport["errors"];
}

/**
 * Judges a run: the report, with every expectation and `ok` when all held.
 *
 * @example
 * ```ts ignore
 * import { judge } from "./judge.ts";
 * const report = judge(figures);
 * console.log(report.ok, report.expectations.length);
 * ```
 */
export function judge(figures: RunFigures): SimulationReport {
  const { devices } = figures;
  const stableAtEnd = devices.filter((device) => device.stable);
  const broadcastSamples: number[] = [];
  let broadcastExpected = 0;
  for (const broadcast of figures.broadcasts) {
    for (const device of stableAtEnd) {
      if (broadcast.target !== "all" && device.type !== broadcast.target) continue;
      broadcastExpected++;
      const at = device.received.get(broadcast.tag);
      if (at !== undefined) broadcastSamples.push(at - broadcast.sentAt);
    }
  }
  const unicastsDue = figures.unicasts.filter(({ device }) => device.stable);
  const unicastsDelivered = unicastsDue.filter(({ device, tag }) => device.received.has(tag));
  const silent = devices.filter((device) => device.role === "silent").length;
  const slow = devices.filter((device) => device.role === "slow").length;
  const mode1 = devices.filter((device) => device.mode === 1).length;
  const restart = figures.restart ? restartSection(figures.restart) : null;
  const memory = figures.memory ? memorySection(figures.memory) : null;
  const desired = figures.desired ? desiredSection(figures.desired) : null;

  const expectations: Expectation[] = [];
  const expect = (name: string, ok: boolean, detail: string) =>
    expectations.push({ name, ok, detail });
  if (figures.aborted) expect("the run completed", false, "aborted");
  expect(
    "every device connected",
    figures.connected === devices.length,
    `${figures.connected} / ${devices.length}`,
  );
  const malformed = figures.malformed;
  if (malformed.sent > 0) {
    expect(
      "every malformed handshake rejected",
      malformed.rejected === malformed.sent,
      `${malformed.rejected} / ${malformed.sent}`,
    );
  }
  if (figures.target === "embedded") {
    expect(
      "every broadcast reached every undisturbed device",
      broadcastExpected > 0 && broadcastSamples.length === broadcastExpected,
      `${broadcastSamples.length} / ${broadcastExpected}`,
    );
    expect(
      "every unicast delivered",
      unicastsDelivered.length === unicastsDue.length,
      `${unicastsDelivered.length} / ${unicastsDue.length}`,
    );
    const requests = figures.requests;
    if (figures.asked.requests > 0) {
      expect(
        "every request answered",
        requests.sent > 0 && requests.answered === requests.sent,
        `${requests.answered} / ${requests.sent}`,
      );
    }
    const answers = figures.answers;
    expect(
      "every answer reached the manager",
      answers.received === answers.sent,
      `${answers.received} / ${answers.sent}`,
    );
    const { rounds, answered, missed } = figures.heartbeats;
    expect(
      "heartbeat rounds ran and none was missed",
      rounds > 0 && answered > 0 && missed === 0,
      `${rounds} rounds, ${answered} answered, ${missed} missed`,
    );
    if (silent > 0) {
      expect(
        "every silent device dropped for heartbeat",
        figures.dropped.silent === silent,
        `${figures.dropped.silent} / ${silent}`,
      );
    }
    expectGoodbyes(figures.aliveAtShutdown, expect);
  }
  if (restart) expectReturn(restart, expect);
  if (desired) expectDesired(desired, expect);
  expectSteady(figures.steady, figures.asked, expect);
  // Too few samples after the warm-up is no verdict either way: the report says "not judged".
  if (memory?.forcedGc && memory.verdict.samplesAfterWarmUp >= 2) expectFlatHeap(memory, expect);
  const unexpected = figures.disconnects.unexpected;
  expect("no unexpected disconnects", unexpected === 0, String(unexpected));
  const { unhandledRejections, uncaughtErrors } = figures.process;
  expect(
    "no unhandled promise rejections",
    unhandledRejections === 0,
    String(unhandledRejections),
  );
  expect("no uncaught errors", uncaughtErrors === 0, String(uncaughtErrors));
  expect("no errors", figures.errors.count === 0, String(figures.errors.count));

  const plots: SimulationReport["plots"] = figures.plots
    ? {
      timeline: figures.plots.timeline,
      latency: {
        handshake: distribution(figures.handshakeMs),
        broadcasts: distribution(broadcastSamples),
        requests: distribution(figures.requests.latencies),
        steadyBroadcasts: figures.plots.steady?.broadcasts ?? null,
        steadyRequests: figures.plots.steady?.requests ?? null,
      },
    }
    : undefined;

  return {
    ok: expectations.every((expectation) => expectation.ok),
    target: figures.target,
    address: figures.address,
    tls: figures.tls,
    seconds: figures.seconds,
    aborted: figures.aborted,
    devices: {
      expected: devices.length,
      connected: figures.connected,
      peak: figures.peakConnected,
      lights: devices.filter((device) => device.type === "light").length,
      locks: devices.filter((device) => device.type === "lock").length,
      mode1,
      mode2: devices.length - mode1,
    },
    handshake: summarize(figures.handshakeMs),
    broadcasts: {
      sent: figures.broadcasts.length,
      delivered: broadcastSamples.length,
      expected: broadcastExpected,
      latency: summarize(broadcastSamples),
    },
    unicasts: { sent: unicastsDue.length, delivered: unicastsDelivered.length },
    requests: {
      sent: figures.requests.sent,
      answered: figures.requests.answered,
      latency: summarize(figures.requests.latencies),
    },
    messages: figures.messages,
    heartbeats: figures.heartbeats,
    disconnects: figures.disconnects,
    chaos: {
      silent,
      silentDropped: figures.dropped.silent,
      slow,
      slowDropped: figures.dropped.slow,
      churnCycles: figures.churn.cycles,
      churnReconnected: figures.churn.reconnected,
      malformed: malformed.sent,
      malformedRejected: malformed.rejected,
    },
    steady: figures.steady,
    memory,
    restart,
    desired,
    peakRss: figures.peakRss,
    process: figures.process,
    errors: figures.errors,
    expectations,
    // Only when kept: a report without plots prints as it always has.
    ...(plots ? { plots } : {}),
  };
}

type Expect = (name: string, ok: boolean, detail: string) => void;

/** Every device connected at shutdown read the manager's goodbye; the detail names up to three that did not. */
function expectGoodbyes(alive: readonly DeviceFigures[], expect: Expect): void {
  const goodbyes = alive.filter((device) => saidGoodbye(device.lastEnd)).length;
  const missing = alive.filter((device) => !saidGoodbye(device.lastEnd))
    .slice(0, 3)
    .map((device) =>
      `; ${device.type} ${device.uuid} (mode ${device.mode}, ${device.role}) ended with ` +
      `${device.lastEnd?.reason}: ${device.lastEnd?.message}`
    );
  expect(
    "every device saw the manager's goodbye at shutdown",
    goodbyes === alive.length,
    `${goodbyes} / ${alive.length}${missing.join("")}`,
  );
}

/** The fleet came back after the restart: all of it, spread out, and in time. */
function expectReturn(restart: RestartReport, expect: Expect): void {
  const { expected, back, busiest, backAfter } = restart;
  const missing = expected - back;
  expect(
    "every device back after the restart",
    expected > 0 && missing === 0,
    `${back} / ${expected}`,
  );
  expect(
    `busiest ${RETURN_WINDOW_MS} ms of the return at most ${
      RETURN_BUSIEST_LIMIT * 100
    } % of the fleet`,
    back > 0 && busiest.share <= RETURN_BUSIEST_LIMIT,
    `${busiest.count} handshakes, ${percent(busiest.share)} of ${expected}` +
      ` (limit ${Math.floor(expected * RETURN_BUSIEST_LIMIT)})`,
  );
  expect(
    `every device back within ${RETURN_ALL_BACK_LIMIT} s of losing the manager`,
    expected > 0 && missing === 0 && backAfter.last <= RETURN_ALL_BACK_LIMIT,
    missing === 0 ? `last back at ${seconds(backAfter.last)}` : `${missing} never came back`,
  );
}

/**
 * The desired-state scenario: every connected device in step, every device in
 * step soon after coming back, every ttl message accounted for; across a
 * restart, the desired state read back by the new manager and every device
 * taken away coming back with the change to make.
 */
function expectDesired(desired: DesiredReport, expect: Expect): void {
  const { devices, reconnects, afterReconnect, ttl, restart } = desired;
  const outOfStep = devices.connected - devices.inStep;
  expect(
    "every connected device in step with its desired state",
    desired.changes > 0 && devices.connected > 0 && outOfStep === 0,
    `${devices.inStep} / ${devices.connected} after the last change` +
      ` (worst ${ms(desired.worst)} from a change or a reconnect to in step)` +
      desired.outOfStepSamples.map((sample) => `; ${sample}`).join(""),
  );
  if (restart) {
    expect(
      "the new manager read the desired state set before the restart",
      restart.devices > 0 && restart.known === restart.devices,
      `${restart.known} / ${restart.devices} devices, from the store the closed manager wrote`,
    );
  }
  // Across a restart, the devices away at its change must all have come back with it to make.
  const awayShown = !restart || (restart.away > 0 && restart.awayBackOutOfStep === restart.away);
  expect(
    `every device in step within ${IN_STEP_AFTER_RECONNECT_LIMIT_MS / 1000} s of reconnecting` +
      (restart ? " after the restart" : ""),
    afterReconnect.max <= IN_STEP_AFTER_RECONNECT_LIMIT_MS && awayShown,
    (reconnects.outOfStep === 0
      ? `none of ${reconnects.total} came back out of step`
      : `${afterReconnect.count} of ${reconnects.outOfStep} out of step got in step, ` +
        `p99 ${msOf(afterReconnect, "p99")}, max ${msOf(afterReconnect, "max")}`) +
      (restart
        ? `; ${restart.awayBackOutOfStep} of the ${restart.away} away at the restart's change ` +
          `came back out of step`
        : ""),
  );
  const books = ttl.manager;
  const accounted = books.delivered + books.expired + books.dropped + books.stillKept;
  const failed = Object.entries(ttl.failed);
  const problems = [
    books.kept !== ttl.kept && `the manager counts ${books.kept} kept, the sends said ${ttl.kept}`,
    books.kept !== accounted && `${books.kept - accounted} kept and neither delivered nor expired`,
    ttl.received.kept !== books.delivered &&
    `the devices received ${ttl.received.kept} of the ${books.delivered} delivered`,
    ttl.received.direct !== ttl.direct &&
    `the devices received ${ttl.received.direct} of the ${ttl.direct} acknowledged`,
    ...failed.filter(([reason]) => reason !== "disconnected")
      .map(([reason, n]) => `${n} failed: ${reason}`),
  ].filter((problem): problem is string => typeof problem === "string");
  const excused = ttl.failed.disconnected ?? 0;
  expect(
    "every ttl message delivered or counted as expired",
    problems.length === 0,
    `${ttl.sent} sent: ${books.kept} kept = ${books.delivered} delivered + ${books.expired} expired` +
      ` + ${books.dropped} dropped + ${books.stillKept} still kept; ${ttl.direct} delivered at once` +
      (excused > 0 ? `; ${excused} excused: churned before acknowledging` : "") +
      problems.map((problem) => `; ${problem}`).join(""),
  );
}

/** Steady broadcasts and requests, each when the run sent them. */
function expectSteady(
  steady: SteadyReport | null,
  asked: RunFigures["asked"],
  expect: Expect,
): void {
  if (steady && asked.steadyBroadcast > 0) {
    const { sent, due, delivered, excused, missed } = steady.broadcasts;
    expect(
      "every steady broadcast reached every live device",
      sent > 0 && due > 0 && missed === 0 && delivered === due - excused,
      `${delivered} / ${due - excused}  (${sent} broadcasts; ${excused} excused: churned first)`,
    );
  }
  if (steady && asked.steadyRequests > 0) {
    const { sent, answered, excused } = steady.requests;
    expect(
      "every steady request answered",
      answered > 0 && answered === sent - excused,
      `${answered} / ${sent - excused}  (${excused} excused: churned mid-request)`,
    );
  }
}

/** The heap stayed flat after the warm-up (judged only after forced GCs). */
function expectFlatHeap(memory: MemoryReport, expect: Expect): void {
  const { verdict } = memory;
  expect(
    `heap flat after warm-up (growth at most ${HEAP_GROWTH_LIMIT * 100} %)`,
    verdict.ok,
    verdict.judged
      ? `${mib(verdict.baseline)} -> ${mib(verdict.end)} MiB  (${
        signed(verdict.growth / MIB)
      } MiB, ${signed((verdict.growth / verdict.baseline) * 100)} %; limit ${
        mib(verdict.limit)
      } MiB)`
      : verdict.reason,
  );
}

/** The restart section: its figures and how the fleet came back. */
function restartSection(restart: RestartFigures): RestartReport {
  return {
    closedAt: restart.closedAt,
    closeSeconds: restart.closeSeconds,
    upAfter: restart.upAfter,
    reconnect: restart.reconnect,
    linesLost: restart.linesLost,
    ...measureReturn(restart.backAfter, restart.expected),
  };
}

/** The desired-state section: the fleet's end state counted, the worst time out of step. */
function desiredSection(desired: DesiredFigures): DesiredReport {
  const { connected, mode1, ...rest } = desired;
  const outOfStep = connected.filter((device) => Object.keys(device.delta).length > 0);
  return {
    ...rest,
    devices: { connected: connected.length, inStep: connected.length - outOfStep.length, mode1 },
    outOfStepSamples: outOfStep.slice(0, 3).map((device) =>
      `${device.type} ${device.uuid} still to do ${JSON.stringify(device.delta)}`
    ),
    worst: Math.max(desired.afterChange.max, desired.afterReconnect.max),
  };
}

/** The memory section: the timeline and its verdict. */
function memorySection(memory: MemoryFigures): MemoryReport {
  const window = {
    steadyStart: memory.steadyStart,
    steadyEnd: memory.steadyEnd,
    warmUp: memory.warmUp,
    forcedGc: memory.forcedGc,
  };
  return {
    every: memory.every,
    ...window,
    samples: memory.samples,
    verdict: judgeMemory(memory.samples, window),
  };
}

/** Whether a device's last end was the manager's goodbye (mode 2 names it, mode 1 cannot). */
function saidGoodbye(end: DeviceFigures["lastEnd"] | undefined): boolean {
  return end?.reason === "manager-closed" || end?.reason === "ended";
}
