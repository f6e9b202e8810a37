/**
 * Fake lights and locks: the state and the text commands of the simulator's
 * devices, with no sockets. Published as `@iot-manager/core/fake-devices`, so a
 * demo or a test can give a real `Device` the same behaviour (the dashboard
 * example does). A command is one line of
 * text, `name [args] [#tag]`; the answer is the device's new state as JSON,
 * with `"id"` set to the tag when one was given, so answers can be matched to
 * what was sent.
 *
 * @example A device that answers every command line with its state
 * ```ts
 * import { Device, Manager } from "@iot-manager/core";
 * import { answer, commandLines, createFake } from "@iot-manager/core/fake-devices";
 *
 * await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 0 });
 * const fake = createFake("light");
 * await using device = await Device.connect({
 *   hostname: "127.0.0.1",
 *   port: manager.port,
 *   type: fake.type,
 *   data: fake.state(),
 * });
 * (async () => {
 *   for await (const data of device) {
 *     for (const line of commandLines(new TextDecoder().decode(data))) {
 *       await device.send(answer(fake, line));
 *     }
 *   }
 * })();
 * const client = manager.get(device.uuid)!;
 * console.log(await client.requestString("brightness 40")); // {"on":true,"brightness":40}
 * ```
 *
 * The fakes also honour desired state (`manager.state.setDesired`): given the
 * delta a `Device` receives, {@linkcode FakeDevice.applyDelta} applies the
 * keys the fake understands and returns its state, for the device to report.
 *
 * @example A lock that follows its desired state
 * ```ts
 * import { Device, Manager } from "@iot-manager/core";
 * import { createFake } from "@iot-manager/core/fake-devices";
 *
 * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
 * const fake = createFake("lock");
 * await using lock = await Device.connect({ port: manager.port, type: "lock", data: fake.state() });
 * lock.on("delta", (delta) => void lock.report(fake.applyDelta(delta)));
 * await manager.state.setDesired(lock.uuid, { locked: false });
 * ```
 *
 * @module
 */

/**
 * A parsed command line.
 *
 * @example
 * ```ts
 * import type { Command } from "@iot-manager/core/fake-devices";
 * const command: Command = { name: "brightness", args: ["40"], tag: "b3" };
 * ```
 */
export interface Command {
  /** The command word, e.g. `brightness`. */
  readonly name: string;
  /** Words after the command word, e.g. `["40"]`. */
  readonly args: readonly string[];
  /** The `#tag` at the end of the line, without `#`, if any. */
  readonly tag?: string;
}

/**
 * The fake device types.
 *
 * @example
 * ```ts
 * import { createFake, type FakeType } from "@iot-manager/core/fake-devices";
 * const types: FakeType[] = ["light", "lock"];
 * console.log(types.map((type) => createFake(type).state())); // [{ on: false, brightness: 100 }, { locked: true }]
 * ```
 */
export type FakeType = "light" | "lock";

/**
 * A fake device's state machine.
 *
 * @example
 * ```ts
 * import { createFake, type FakeDevice, parseCommand } from "@iot-manager/core/fake-devices";
 * const lock: FakeDevice = createFake("lock");
 * console.log(lock.handle(parseCommand("unlock")), lock.state()); // { locked: false } { locked: false }
 * ```
 */
export interface FakeDevice {
  /** The device type, as it tells the manager. */
  readonly type: FakeType;
  /** The current state, e.g. `{ on: true, brightness: 40 }`. */
  state(): Record<string, unknown>;
  /** Applies a command; returns the new state, or `{ error }` for a command it does not know. */
  handle(command: Command): Record<string, unknown>;
  /**
   * Applies a desired-state delta (what a `Device` receives with its `delta`
   * event): each key the fake understands, with a value it accepts, sets that
   * part of its state; other keys are left alone, so they stay in the delta.
   *
   * @returns The new state: what the device then reports.
   *
   * @example
   * ```ts
   * import { createFake } from "@iot-manager/core/fake-devices";
   * const light = createFake("light");
   * console.log(light.applyDelta({ on: true, color: "red" })); // { on: true, brightness: 100 }
   * ```
   */
  applyDelta(delta: Readonly<Record<string, unknown>>): Record<string, unknown>;
}

/**
 * Parses one command line.
 *
 * @example
 * ```ts
 * import { parseCommand } from "@iot-manager/core/fake-devices";
 * console.log(parseCommand("brightness 40 #b3")); // { name: "brightness", args: ["40"], tag: "b3" }
 * ```
 */
export function parseCommand(line: string): Command {
  const words = line.trim().split(/\s+/).filter((word) => word !== "");
  let tag: string | undefined;
  if (words.length > 0 && words[words.length - 1].startsWith("#")) tag = words.pop()!.slice(1);
  const [name = "", ...args] = words;
  return tag === undefined ? { name, args } : { name, args, tag };
}

/**
 * A light: `on`, `off`, `toggle`, `brightness 0-100`, `status`; desired state
 * `on` (a boolean) and `brightness` (a whole number from 0 to 100).
 *
 * @example
 * ```ts
 * import { FakeLight, parseCommand } from "@iot-manager/core/fake-devices";
 * const light = new FakeLight();
 * console.log(light.handle(parseCommand("brightness 40"))); // { on: true, brightness: 40 }
 * ```
 */
export class FakeLight implements FakeDevice {
  /** Always `"light"`. */
  readonly type: "light" = "light";
  #on = false;
  #brightness = 100;

  /** The current state; a new light is off at full brightness: `{ on: false, brightness: 100 }`. */
  state(): { on: boolean; brightness: number } {
    return { on: this.#on, brightness: this.#brightness };
  }

  /**
   * Applies a command: `on`, `off`, `toggle`, `brightness 0-100` (which also
   * turns the light on above 0 and off at 0), `status`.
   *
   * @returns The new state, or `{ error }` for an unknown command or a bad level.
   */
  handle(command: Command): Record<string, unknown> {
    switch (command.name) {
      case "on":
        this.#on = true;
        break;
      case "off":
        this.#on = false;
        break;
      case "toggle":
        this.#on = !this.#on;
        break;
      case "brightness": {
        const level = Number(command.args[0]);
        if (!Number.isInteger(level) || level < 0 || level > 100) {
          return { error: `brightness needs a whole number from 0 to 100, got ${command.args[0]}` };
        }
        this.#brightness = level;
        this.#on = level > 0;
        break;
      }
      case "status":
        break;
      default:
        return unknown(command);
    }
    return this.state();
  }

  /**
   * Applies a desired-state delta: `on` (a boolean) and `brightness` (a whole
   * number from 0 to 100). Each key sets its own part of the state, so any
   * desired state can be reached: unlike the `brightness` command, a desired
   * `brightness` does not switch the light on or off.
   *
   * @returns The new state.
   *
   * @example
   * ```ts
   * import { FakeLight } from "@iot-manager/core/fake-devices";
   * console.log(new FakeLight().applyDelta({ on: false, brightness: 40 })); // { on: false, brightness: 40 }
   * ```
   */
  applyDelta(delta: Readonly<Record<string, unknown>>): { on: boolean; brightness: number } {
    if (typeof delta.on === "boolean") this.#on = delta.on;
    const level = delta.brightness;
    if (typeof level === "number" && Number.isInteger(level) && level >= 0 && level <= 100) {
      this.#brightness = level;
    }
    return this.state();
  }
}

/**
 * A lock: `lock`, `unlock`, `status`; desired state `locked` (a boolean).
 *
 * @example
 * ```ts
 * import { FakeLock, parseCommand } from "@iot-manager/core/fake-devices";
 * console.log(new FakeLock().handle(parseCommand("unlock"))); // { locked: false }
 * ```
 */
export class FakeLock implements FakeDevice {
  /** Always `"lock"`. */
  readonly type: "lock" = "lock";
  #locked = true;

  /** The current state; a new lock is locked: `{ locked: true }`. */
  state(): { locked: boolean } {
    return { locked: this.#locked };
  }

  /**
   * Applies a command: `lock`, `unlock`, `status`.
   *
   * @returns The new state, or `{ error }` for an unknown command.
   */
  handle(command: Command): Record<string, unknown> {
    switch (command.name) {
      case "lock":
        this.#locked = true;
        break;
      case "unlock":
        this.#locked = false;
        break;
      case "status":
        break;
      default:
        return unknown(command);
    }
    return this.state();
  }

  /**
   * Applies a desired-state delta: `locked` (a boolean).
   *
   * @returns The new state.
   *
   * @example
   * ```ts
   * import { FakeLock } from "@iot-manager/core/fake-devices";
   * console.log(new FakeLock().applyDelta({ locked: false })); // { locked: false }
   * ```
   */
  applyDelta(delta: Readonly<Record<string, unknown>>): { locked: boolean } {
    if (typeof delta.locked === "boolean") this.#locked = delta.locked;
    return this.state();
  }
}

function unknown(command: Command): { error: string } {
  return { error: `unknown command ${JSON.stringify(command.name)}` };
}

/**
 * Creates a fake device of `type`.
 *
 * @returns A {@linkcode FakeLight} or a {@linkcode FakeLock}: both are
 *   {@linkcode FakeDevice}s, and their states are JSON objects a `Device` can report.
 *
 * @example
 * ```ts
 * import { createFake } from "@iot-manager/core/fake-devices";
 * console.log(createFake("lock").state()); // { locked: true }
 * ```
 */
export function createFake(type: FakeType): FakeLight | FakeLock {
  return type === "light" ? new FakeLight() : new FakeLock();
}

/**
 * Runs one command line on `fake` and renders the answer: the JSON state (or
 * error), with `"id"` when the command was tagged. Never throws.
 *
 * @example
 * ```ts
 * import { answer, FakeLight } from "@iot-manager/core/fake-devices";
 * console.log(answer(new FakeLight(), "on #b2")); // {"on":true,"brightness":100,"id":"b2"}
 * console.log(answer(new FakeLight(), "fly")); // {"error":"unknown command \"fly\""}
 * ```
 */
export function answer(fake: FakeDevice, line: string): string {
  const command = parseCommand(line);
  const result = fake.handle(command);
  return JSON.stringify(command.tag === undefined ? result : { ...result, id: command.tag });
}

/**
 * Splits a received message into command lines: one per `\n`, blanks dropped.
 * In protocol mode 1 one read may hold several commands, which is why the
 * simulator ends each with a newline.
 *
 * @example
 * ```ts
 * import { commandLines } from "@iot-manager/core/fake-devices";
 * console.log(commandLines("on #b1\nstatus\n")); // ["on #b1", "status"]
 * ```
 */
export function commandLines(text: string): string[] {
  return text.split("\n").map((line) => line.trim()).filter((line) => line !== "");
}
