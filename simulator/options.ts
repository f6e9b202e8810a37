/**
 * What a simulation run does, and the command line that sets it. The defaults
 * live here, once: the CLI and the tests both start from them.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { ReconnectOptions } from "@iot-manager/core";

/** The chaos knobs; each is off (0) by default. */
export interface ChaosOptions {
  /** Share of devices (0 to 1) that never answer heartbeats; the manager should drop them. */
  readonly silent: number;
  /** Disconnect-and-reconnect cycles per minute across the fleet. */
  readonly churn: number;
  /** Share of devices that read slowly (one message per `slowDelay` ms, one held at a time). */
  readonly slow: number;
  /** Milliseconds a slow device spends on each message. */
  readonly slowDelay: number;
  /** Share of connections that send a malformed handshake; the manager should reject each. */
  readonly malformed: number;
}

/** One simulation run. */
export interface SimulationOptions {
  /** Number of lights. */
  readonly lights: number;
  /** Number of locks. */
  readonly locks: number;
  /** An external manager to connect to; without it an embedded manager is started. */
  readonly connect?: { readonly hostname: string; readonly port: number };
  /**
   * Seconds each device's first connection keeps trying to reach the manager
   * (the device's `waitForManager`). Against an external manager the first
   * device goes alone: when it cannot join (unreachable in this time,
   * refused, or not a manager) the run stops with `FirstConnectFailed`
   * (`dialer.ts`) instead of dialing the rest.
   */
  readonly connectWait: number;
  /** Devices connect with TLS; `caCerts`, when given, are the roots they trust. */
  readonly tls?: { readonly caCerts?: readonly string[] };
  /** PEM certificate and key for the embedded manager (with `tls`). */
  readonly managerTls?: { readonly cert: string; readonly key: string };
  /**
   * Seconds of steady running after the scenario's messages: devices answer
   * heartbeats, churn and send telemetry. Embedded: by default three heartbeat
   * rounds (longer when silent devices must be seen dropped). External: the
   * whole run.
   */
  readonly duration?: number;
  /** Embedded manager's heartbeatRate, in seconds. */
  readonly heartbeat: number;
  /** Embedded manager's heartbeatTimeout, in seconds. */
  readonly heartbeatTimeout: number;
  /** New connections per second while the fleet connects. */
  readonly rate: number;
  /** Most handshakes in flight at once (keep it under the manager's maxPendingHandshakes). */
  readonly concurrency: number;
  /** Share of devices speaking protocol mode 1 (0: all mode 2, 1: all mode 1). */
  readonly mode1Share: number;
  /** Seconds between telemetry messages from each device; 0 turns telemetry off. */
  readonly telemetry: number;
  /** Request round trips (`client.request("status")`) in the embedded scenario. */
  readonly requests: number;
  /** Embedded: seconds between steady-phase broadcasts (`sendAll` and `sendType` in turn); 0 sends none. */
  readonly steadyBroadcast: number;
  /** Embedded: steady-phase `client.request("status #tag")` round trips per second; 0 sends none. */
  readonly steadyRequests: number;
  /**
   * Embedded: the desired-state scenario. During the steady phase the desired
   * state of every lock and light changes every `desiredEvery` seconds, each
   * device churn takes away is sent messages with a `ttl`, and the report
   * judges that every device converged and every kept message is accounted for.
   * With `restart` it crosses the restart: the manager's store is an SQLite
   * file in a temporary directory (so the run needs write permission), which
   * the new manager opens again.
   */
  readonly desired: boolean;
  /** Seconds between two changes of desired state (with `desired`). */
  readonly desiredEvery: number;
  /**
   * Embedded: seconds into the steady phase at which the manager is closed, to
   * be started again on the same port `restartDown` seconds later; the devices
   * then reconnect by themselves. Undefined: no restart.
   */
  readonly restart?: number;
  /** Seconds from closing the manager to the new one listening (with `restart`). */
  readonly restartDown: number;
  /**
   * The devices' reconnect backoff with `restart`; undefined uses the
   * library's defaults (`reconnect: true`). Without `restart` devices do not
   * reconnect.
   */
  readonly reconnect?: Pick<ReconnectOptions, "initialDelay" | "maxDelay" | "jitter">;
  /** Seconds between memory samples (after a forced GC when exposed); 0 takes none. */
  readonly memoryEvery: number;
  /** Seconds at the start of the steady phase that the memory verdict treats as warm-up. */
  readonly warmUp: number;
  /**
   * Keep what plots need (`report.plots`): the run over time, sampled four
   * times a second and thinned to at most 1200 samples, and the latency
   * distributions. `--html` turns it on.
   */
  readonly plots: boolean;
  /** Seed for the chaos and mode assignment. */
  readonly seed: number;
  /** Chaos knobs. */
  readonly chaos: ChaosOptions;
  /** Called about four times a second with live figures. */
  readonly onStatus?: (status: LiveStatus) => void;
  /** Ends the run early (the report covers what happened so far). */
  readonly signal?: AbortSignal;
}

/** Live figures for the status line. */
export interface LiveStatus {
  /** Seconds since the run started. */
  readonly elapsed: number;
  /** What the run is doing, e.g. `"connecting"`. */
  readonly phase: string;
  /** Devices connected now. */
  readonly connected: number;
  /** Devices the run expects connected. */
  readonly expected: number;
  /** Messages received so far, by the devices and by the embedded manager. */
  readonly messages: number;
  /** Heartbeats answered so far. */
  readonly heartbeatsAnswered: number;
  /** Unexpected errors so far. */
  readonly errors: number;
  /** Resident set size now, in bytes. */
  readonly rss: number;
}

/**
 * The defaults of every option.
 *
 * @example
 * ```ts
 * import { defaultOptions } from "./options.ts";
 * console.log(defaultOptions.lights, defaultOptions.locks); // 200 100
 * ```
 */
export const defaultOptions: SimulationOptions = {
  lights: 200,
  locks: 100,
  heartbeat: 1,
  heartbeatTimeout: 2,
  rate: 1000,
  concurrency: 200,
  mode1Share: 0,
  telemetry: 0,
  requests: 50,
  steadyBroadcast: 0,
  steadyRequests: 0,
  desired: false,
  desiredEvery: 1,
  restartDown: 3,
  connectWait: 5,
  memoryEvery: 0,
  warmUp: 120,
  plots: false,
  seed: 1,
  chaos: { silent: 0, churn: 0, slow: 0, slowDelay: 100, malformed: 0 },
};

/** What the CLI asked for: a run, or help. */
export type CliRequest =
  | { readonly help: true }
  | {
    readonly help: false;
    readonly options: SimulationOptions;
    readonly json: boolean;
    /** Where to write the report as an HTML page with plots (`--html file`); undefined: nowhere. */
    readonly html: string | undefined;
    readonly logLevel: LogLevelName;
    readonly statusLine: boolean;
  };

/** LogTape level names accepted by `--log-level`. */
export type LogLevelName = "trace" | "debug" | "info" | "warning" | "error" | "fatal";
const logLevels: readonly LogLevelName[] = ["trace", "debug", "info", "warning", "error", "fatal"];

/**
 * The `--help` text.
 *
 * @example
 * ```ts
 * import { usage } from "./options.ts";
 * console.log(usage.split("\n")[0]); // Usage: deno task simulate [options]
 * ```
 */
export const usage: string = usageFor("deno task simulate");

/**
 * The `--help` text for the command the simulator was started with: `deno
 * task simulate` in the repository, `deno run -A
 * jsr:@iot-manager/core/simulate` from the package.
 *
 * @example
 * ```ts
 * import { usageFor } from "./options.ts";
 * console.log(usageFor("simulate").split("\n")[0]); // Usage: simulate [options]
 * ```
 */
export function usageFor(command: string): string {
  return `Usage: ${command} [options]

Simulates a fleet of lights and locks. Without --connect it starts an embedded
manager, connects the fleet, plays a scenario (broadcasts, sends by type and to
single devices, request round trips, heartbeat rounds, clean shutdown) and
prints a report. Exit code 0 only when every expectation held.

Target
  --connect host:port    run the devices against an external manager for --duration
  --connect-wait s       seconds each device keeps trying to reach the manager, as a
                         real device retries (default ${defaultOptions.connectWait}); when the first cannot
                         reach it by then, the run stops with exit code 2
  --tls                  devices connect with TLS
  --ca file              PEM CA certificate the devices trust (with --tls)
  --cert file --key file PEM certificate and key for the embedded manager (with --tls)

Fleet
  --lights n             lights (default ${defaultOptions.lights})
  --locks n              locks (default ${defaultOptions.locks})
  --mode 1|2|mixed       protocol mode of the devices; mixed is half each (default 2)
  --rate n               new connections per second (default ${defaultOptions.rate})
  --concurrency n        most handshakes in flight (default ${defaultOptions.concurrency})
  --telemetry seconds    each device reports its state this often (default off)

Timing
  --duration seconds     steady running time (default: 3 heartbeat rounds embedded, 30 external)
  --heartbeat seconds    embedded manager's heartbeatRate (default ${defaultOptions.heartbeat})
  --heartbeat-timeout s  embedded manager's heartbeatTimeout (default ${defaultOptions.heartbeatTimeout})
  --requests n           request round trips in the scenario (default ${defaultOptions.requests})

Steady traffic (embedded manager; off by default)
  --steady-broadcast s   a broadcast every s seconds in the steady phase, sendAll and sendType in turn
  --steady-requests n    n client.request round trips per second to random live devices

Desired state (embedded manager; off by default)
  --desired              change the desired state of every lock and light during the
                         steady phase, send ttl messages to devices churn takes away,
                         and judge that every device converged and every kept message
                         was delivered or expired; with --restart, across the restart
                         (the state in an SQLite file in a temporary directory)
  --desired-every s      seconds between two changes of desired state (default ${defaultOptions.desiredEvery})

Restart (embedded manager; off by default)
  --restart s            s seconds into the steady phase, close the manager; a new one
                         listens on the same port --restart-down s later; the devices
                         come back by themselves and the report shows how
  --restart-down s       seconds without a manager (default ${defaultOptions.restartDown})
  --reconnect-delay s    the devices' first backoff (default: the library's, 1)
  --reconnect-max-delay s
                         their longest backoff (default: the library's, 10)
  --reconnect-jitter share
                         random share of each backoff, 0 to 1 (default: the library's, 1)

Memory
  --memory-every s       sample memory every s seconds (after a forced GC with
                         --v8-flags=--expose-gc) and judge it flat after the warm-up
  --warm-up s            seconds of the steady phase before the memory baseline (default ${defaultOptions.warmUp})

Chaos (all off by default)
  --silent share         share of devices that never answer heartbeats (0 to 1)
  --churn n              disconnect+reconnect cycles per minute
  --slow share           share of slow readers
  --slow-delay ms        time a slow reader spends per message (default ${defaultOptions.chaos.slowDelay})
  --mode1-share share    share of devices speaking protocol mode 1 (overrides --mode)
  --malformed share      share of connections sending a malformed handshake
  --seed n               seed for who gets which role (default ${defaultOptions.seed})

Output
  --json                 print the report as JSON
  --html file            also write the report as one self-contained HTML page with
                         plots (devices, messages, heartbeats, memory over time, latencies)
  --no-status            no live status line
  --log-level level      trace, debug, info, warning, error, fatal (default warning)
  -h, --help             this text
`;
}

/**
 * A command line that cannot be run; the CLI prints it with the usage and exits with 2.
 *
 * @example
 * ```ts
 * import { parseCli, UsageError } from "./options.ts";
 * try {
 *   parseCli(["--mode", "3"]);
 * } catch (error) {
 *   console.log(error instanceof UsageError); // true
 * }
 * ```
 */
export class UsageError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Parses the command line.
 *
 * @param args The arguments, without the program name.
 * @param readFile Reads a PEM file named on the command line.
 * @throws {UsageError} On unknown flags or bad values.
 *
 * @example
 * ```ts
 * import { parseCli } from "./options.ts";
 * const request = parseCli(["--lights", "10", "--locks", "5", "--mode", "mixed"]);
 * if (!request.help) console.log(request.options.mode1Share); // 0.5
 * ```
 */
export function parseCli(
  args: readonly string[],
  readFile: (path: string) => string = Deno.readTextFileSync,
): CliRequest {
  let values;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(args),
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        connect: { type: "string" },
        "connect-wait": { type: "string" },
        tls: { type: "boolean" },
        ca: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        lights: { type: "string" },
        locks: { type: "string" },
        mode: { type: "string" },
        rate: { type: "string" },
        concurrency: { type: "string" },
        telemetry: { type: "string" },
        duration: { type: "string" },
        heartbeat: { type: "string" },
        "heartbeat-timeout": { type: "string" },
        requests: { type: "string" },
        "steady-broadcast": { type: "string" },
        "steady-requests": { type: "string" },
        desired: { type: "boolean" },
        "desired-every": { type: "string" },
        restart: { type: "string" },
        "restart-down": { type: "string" },
        "reconnect-delay": { type: "string" },
        "reconnect-max-delay": { type: "string" },
        "reconnect-jitter": { type: "string" },
        "memory-every": { type: "string" },
        "warm-up": { type: "string" },
        silent: { type: "string" },
        churn: { type: "string" },
        slow: { type: "string" },
        "slow-delay": { type: "string" },
        "mode1-share": { type: "string" },
        malformed: { type: "string" },
        seed: { type: "string" },
        json: { type: "boolean" },
        html: { type: "string" },
        "no-status": { type: "boolean" },
        "log-level": { type: "string" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return { help: true };

  const d = defaultOptions;
  const number = (name: string, value: string | undefined, fallback: number, min = 0) => {
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min) {
      throw new UsageError(`--${name} must be a number of at least ${min}, got ${value}`);
    }
    return parsed;
  };
  const whole = (name: string, value: string | undefined, fallback: number, min = 0) => {
    const parsed = number(name, value, fallback, min);
    if (!Number.isInteger(parsed)) {
      throw new UsageError(`--${name} must be a whole number, got ${value}`);
    }
    return parsed;
  };
  const share = (name: string, value: string | undefined) => {
    const parsed = number(name, value, 0);
    if (parsed > 1) throw new UsageError(`--${name} is a share from 0 to 1, got ${value}`);
    return parsed;
  };

  let connect: SimulationOptions["connect"];
  if (values.connect !== undefined) {
    const match = /^(.+):(\d+)$/.exec(values.connect);
    if (!match) throw new UsageError(`--connect must be host:port, got ${values.connect}`);
    connect = { hostname: match[1].replace(/^\[(.*)\]$/, "$1"), port: Number(match[2]) };
    if (connect.port < 1 || connect.port > 65535) {
      throw new UsageError(`--connect port must be 1 to 65535, got ${match[2]}`);
    }
  }

  const modeFlag = values.mode ?? "2";
  if (!["1", "2", "mixed"].includes(modeFlag)) {
    throw new UsageError(`--mode must be 1, 2 or mixed, got ${modeFlag}`);
  }
  const modeShare = modeFlag === "1" ? 1 : modeFlag === "mixed" ? 0.5 : 0;

  const readPem = (name: string, path: string) => {
    try {
      return readFile(path);
    } catch (error) {
      throw new UsageError(`--${name} ${path}: ${(error as Error).message}`);
    }
  };
  let tls: SimulationOptions["tls"];
  let managerTls: SimulationOptions["managerTls"];
  if (values.tls) {
    tls = { caCerts: values.ca ? [readPem("ca", values.ca)] : undefined };
    if (!connect) {
      if (!values.cert || !values.key) {
        throw new UsageError("--tls with the embedded manager needs --cert and --key");
      }
      managerTls = { cert: readPem("cert", values.cert), key: readPem("key", values.key) };
    }
  } else if (values.ca || values.cert || values.key) {
    throw new UsageError("--ca, --cert and --key need --tls");
  }

  const logLevel = (values["log-level"] ?? "warning") as LogLevelName;
  if (!logLevels.includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${logLevels.join(", ")}`);
  }

  const heartbeat = number("heartbeat", values.heartbeat, d.heartbeat, 0.01);
  const options: SimulationOptions = {
    lights: whole("lights", values.lights, d.lights),
    connectWait: number("connect-wait", values["connect-wait"], d.connectWait),
    locks: whole("locks", values.locks, d.locks),
    connect,
    tls,
    managerTls,
    duration: values.duration === undefined ? undefined : number("duration", values.duration, 0, 0),
    heartbeat,
    heartbeatTimeout: number(
      "heartbeat-timeout",
      values["heartbeat-timeout"],
      d.heartbeatTimeout,
      0.01,
    ),
    rate: number("rate", values.rate, d.rate, 1),
    concurrency: whole("concurrency", values.concurrency, d.concurrency, 1),
    mode1Share: values["mode1-share"] === undefined
      ? modeShare
      : share("mode1-share", values["mode1-share"]),
    telemetry: number("telemetry", values.telemetry, d.telemetry),
    requests: whole("requests", values.requests, d.requests),
    steadyBroadcast: number("steady-broadcast", values["steady-broadcast"], d.steadyBroadcast),
    steadyRequests: number("steady-requests", values["steady-requests"], d.steadyRequests),
    desired: values.desired ?? false,
    desiredEvery: number("desired-every", values["desired-every"], d.desiredEvery, 0.01),
    restart: values.restart === undefined ? undefined : number("restart", values.restart, 0),
    restartDown: number("restart-down", values["restart-down"], d.restartDown),
    reconnect: reconnectOptions(values, number, share),
    memoryEvery: number("memory-every", values["memory-every"], d.memoryEvery),
    warmUp: number("warm-up", values["warm-up"], d.warmUp),
    plots: values.html !== undefined || d.plots,
    seed: whole("seed", values.seed, d.seed),
    chaos: {
      silent: share("silent", values.silent),
      churn: number("churn", values.churn, 0),
      slow: share("slow", values.slow),
      slowDelay: number("slow-delay", values["slow-delay"], d.chaos.slowDelay),
      malformed: share("malformed", values.malformed),
    },
  };
  if (values.html === "") throw new UsageError("--html needs a file name");
  if (
    options.memoryEvery > 0 && options.duration !== undefined &&
    options.warmUp + 2 * options.memoryEvery > options.duration
  ) {
    throw new UsageError(
      `--warm-up ${options.warmUp} leaves no room in --duration ${options.duration} for the two ` +
        `--memory-every ${options.memoryEvery} samples the memory verdict needs: ` +
        `give a longer --duration or a shorter --warm-up`,
    );
  }
  if (options.lights + options.locks === 0) {
    throw new UsageError("no devices: --lights 0 --locks 0");
  }
  if (connect) {
    // The embedded manager's settings and scenario: against an external manager they would do nothing.
    const embeddedOnly = [
      "steady-broadcast",
      "steady-requests",
      "heartbeat",
      "heartbeat-timeout",
      "requests",
    ].filter((name) => values[name as keyof typeof values] !== undefined);
    if (embeddedOnly.length > 0) {
      throw new UsageError(
        `--${embeddedOnly.join(", --")} ${
          embeddedOnly.length === 1 ? "sets" : "set"
        } the embedded manager, not one given with --connect`,
      );
    }
  }
  if (!options.desired && values["desired-every"] !== undefined) {
    throw new UsageError("--desired-every needs --desired");
  }
  const desiredClash = options.desired ? desiredClashes(options) : [];
  if (desiredClash.length > 0) {
    throw new UsageError(`--desired cannot be combined with --${desiredClash.join(", --")}`);
  }
  if (options.restart === undefined) {
    const stray = restartFlags.filter((name) => values[name] !== undefined);
    if (stray.length > 0) {
      throw new UsageError(
        `--${stray.join(", --")} ${stray.length === 1 ? "needs" : "need"} --restart`,
      );
    }
  } else {
    const clashes = restartClashes(options);
    if (clashes.length > 0) {
      throw new UsageError(`--restart cannot be combined with --${clashes.join(", --")}`);
    }
  }
  return {
    help: false,
    options,
    json: values.json ?? false,
    html: values.html,
    logLevel,
    statusLine: !values["no-status"],
  };
}

/**
 * `--lights -5` as `--lights=-5`: `parseArgs` takes a value that starts with
 * a dash for a flag, and would say the option's argument is ambiguous instead
 * of letting the number's check say it must be at least 0.
 */
function joinNegativeValues(args: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (/^--[a-z0-9-]+$/.test(args[i]) && next !== undefined && /^-[\d.]/.test(next)) {
      joined.push(`${args[i]}=${next}`);
      i++;
    } else {
      joined.push(args[i]);
    }
  }
  return joined;
}

/**
 * The options a restart cannot run with, by flag name: devices dropped on
 * purpose (silent, slow) would come back by themselves, and churn and steady
 * traffic would talk to a manager that is gone. The restart runs a plain
 * fleet, with the desired scenario if asked (its state then lives in an
 * SQLite file that the new manager opens again).
 *
 * @example
 * ```ts
 * import { defaultOptions, restartClashes } from "./options.ts";
 * const options = { ...defaultOptions, restart: 1, chaos: { ...defaultOptions.chaos, churn: 60 } };
 * console.log(restartClashes(options)); // ["churn"]
 * ```
 */
export function restartClashes(options: SimulationOptions): string[] {
  const { chaos } = options;
  const clashes: [string, boolean][] = [
    ["connect", options.connect !== undefined],
    ["churn", chaos.churn > 0],
    ["silent", chaos.silent > 0],
    ["slow", chaos.slow > 0],
    ["steady-broadcast", options.steadyBroadcast > 0],
    ["steady-requests", options.steadyRequests > 0],
  ];
  return clashes.filter(([, on]) => on).map(([name]) => name);
}

/**
 * The options the desired-state scenario cannot run with, by flag name: it
 * needs the embedded manager (whose `state` it sets and reads) and devices
 * that speak mode 2 (mode 1 has no desired state).
 *
 * @example
 * ```ts
 * import { defaultOptions, desiredClashes } from "./options.ts";
 * console.log(desiredClashes({ ...defaultOptions, desired: true, mode1Share: 1 })); // ["mode 1"]
 * ```
 */
export function desiredClashes(options: SimulationOptions): string[] {
  const clashes: [string, boolean][] = [
    ["connect", options.connect !== undefined],
    ["mode 1", options.mode1Share >= 1],
  ];
  return clashes.filter(([, on]) => on).map(([name]) => name);
}

/** Flags that only mean something with `--restart`. */
const restartFlags = [
  "restart-down",
  "reconnect-delay",
  "reconnect-max-delay",
  "reconnect-jitter",
] as const;

/** The backoff flags given, or undefined when none is (the library's defaults then apply). */
function reconnectOptions(
  values: Partial<Record<(typeof restartFlags)[number], string>>,
  number: (name: string, value: string | undefined, fallback: number, min?: number) => number,
  share: (name: string, value: string | undefined) => number,
): SimulationOptions["reconnect"] {
  const delay = values["reconnect-delay"];
  const maxDelay = values["reconnect-max-delay"];
  const jitter = values["reconnect-jitter"];
  if (delay === undefined && maxDelay === undefined && jitter === undefined) return undefined;
  return {
    ...(delay === undefined ? {} : { initialDelay: number("reconnect-delay", delay, 0, 0.001) }),
    ...(maxDelay === undefined
      ? {}
      : { maxDelay: number("reconnect-max-delay", maxDelay, 0, 0.001) }),
    ...(jitter === undefined ? {} : { jitter: share("reconnect-jitter", jitter) }),
  };
}
