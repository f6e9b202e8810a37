/**
 * Desired and reported state, kept while devices are away: AWS IoT's device
 * shadows and Azure IoT Hub's device twins, for this manager. The
 * application sets a device's *desired* state (a merge patch, by UUID or for
 * every known device of a type, connected or not; each change bumps the
 * version); the device's handshake data is its first *report* and its
 * `REPORT` frames patch it; the *delta* (desired minus reported) is sent to a
 * device that speaks the `state` feature when it connects and on every
 * change of desired state. Known devices are remembered while offline (last
 * seen, last reported state, last end), and messages sent with a `ttl` are
 * kept for them and delivered in order when they are back. Everything
 * persists through a {@linkcode DeviceStore}.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Connection } from "./connection.ts";
import { ConnectionEnd } from "./errors.ts";
import { validate as isUuid } from "uuid";
import {
  encodeDelta,
  type JsonObject,
  mergePatch,
  stateDelta,
  stateProblem,
} from "./protocol/mod.ts";
import { KeptMessages, type KeptStats } from "./kept.ts";
import { AsyncQueue } from "./queue.ts";
import type { Registry } from "./registry.ts";
import {
  type DeviceRecord,
  type DeviceRecordChanges,
  type DeviceStore,
  EMPTY_RECORD,
  type KeepLimits,
} from "./store.ts";
import { Subscribers } from "./subscribers.ts";

/** One known device's state, as the application reads it. */
export interface DeviceState {
  /** The device's UUID (lower case). */
  readonly uuid: string;
  /** Its type when last seen (`""` if never seen). */
  readonly type: string;
  /** Connected to this manager now. */
  readonly connected: boolean;
  /** What the application wants. */
  readonly desired: JsonObject;
  /** What the device last said it is. */
  readonly reported: JsonObject;
  /** `desired` minus `reported`: what the device still has to do; `{}` when converged. */
  readonly delta: JsonObject;
  /** The desired state's version: +1 per change, 0 before the first. */
  readonly version: number;
  /** When the device was last connected or heard from (ms since the epoch); 0 if never. */
  readonly lastSeen: number;
  /** Why its last connection ended. */
  readonly lastEnd?: { readonly reason: string; readonly message: string };
}

/** A change to a device's state, as `manager.state.changes()` yields it. */
export interface StateChange {
  /** What changed: the desired state, a report, or the device came or went. */
  readonly kind: "desired" | "reported" | "connected" | "disconnected";
  /** The device's state after the change. */
  readonly state: DeviceState;
}

/** Options for {@linkcode ManagerState.changes}. */
export interface StateChangesOptions {
  /** Only devices of this type. */
  readonly type?: string;
  /** Ends the iterator when aborted. */
  readonly signal?: AbortSignal;
  /**
   * Changes held unread before their producers wait: reading from a reporting
   * device pauses, and `setDesired` resolves only once there is room. @default 1024
   */
  readonly highWaterMark?: number;
}

/**
 * Desired and reported state of every device this manager knows, connected
 * or not: `manager.state`. Desired state is changed with JSON Merge Patches
 * (RFC 7386: `null` removes a key); the delta is sent to devices that speak
 * the `state` feature (mode 2; `Device` and the Python device do) when they
 * connect and whenever desired state changes.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * await using manager = await Manager.listen({ validTypes: ["lock"], port: 0 });
 * const uuid = "1862cfe1-5dab-4d8e-a946-50d6728f830f";
 * await manager.state.setDesired(uuid, { locked: true }); // kept until the lock connects
 * console.log(manager.state.get(uuid)?.delta); // { locked: true }
 * ```
 */
export interface ManagerState {
  /**
   * Merges `patch` into a device's desired state, whether it is connected or
   * not (a UUID never seen is remembered, with type `""` until it connects).
   *
   * @returns The device's state after the change.
   */
  setDesired(uuid: string, patch: JsonObject): Promise<DeviceState>;
  /**
   * Merges `patch` into the desired state of every known device of `type`.
   *
   * @returns How many devices it applies to.
   */
  setDesiredType(type: string, patch: JsonObject): Promise<number>;
  /** A known device's state, or `undefined`. */
  get(uuid: string): DeviceState | undefined;
  /** Every known device's state, connected or not (of `type`, if given). */
  all(options?: { readonly type?: string }): DeviceState[];
  /**
   * Every change of state as an async iterator: desired changes, reports,
   * devices coming and going. Ends when the manager closes.
   */
  changes(options?: StateChangesOptions): AsyncIterableIterator<StateChange>;
  /** Counters of messages kept for absent devices (`send` with `ttl`). */
  readonly keptStats: KeptStats;
}

/** Settings of the state keeper. */
export interface DeviceStatesOptions {
  readonly store: DeviceStore;
  readonly keep: KeepLimits;
  /** Seconds a kept message's delivery waits for its `ACK` before it is tried again later. */
  readonly ackTimeout: number;
  /** Largest desired or reported state, as JSON text, in bytes. */
  readonly maxStateSize: number;
  /** Desired state of `uuid` changed here (a cluster tells the other managers). */
  readonly onDesired?: (uuid: string) => void;
}

/** The manager's memory of its devices: state, presence, kept messages. */
export class DeviceStates implements ManagerState {
  readonly #store: DeviceStore;
  readonly #registry: Registry<Connection>;
  readonly #log: Logger;
  readonly #options: DeviceStatesOptions;
  readonly #onDesired: ((uuid: string) => void) | undefined;
  readonly #records = new Map<string, DeviceRecord>();
  readonly #subs = new Subscribers<AsyncQueue<StateChange>>();
  /** Per device: the store read started when it connected, until it is done (later steps wait for it). */
  readonly #loaded = new Map<string, Promise<void>>();
  #writes: Promise<void> = Promise.resolve();
  readonly #kept: KeptMessages;
  /** The last delta each connection was sent (JSON), so a report does not repeat it. */
  readonly #lastDelta = new WeakMap<Connection, string>();
  #closed = false;
  #desiring: Promise<void> = Promise.resolve();

  constructor(registry: Registry<Connection>, options: DeviceStatesOptions, log: Logger) {
    this.#store = options.store;
    this.#registry = registry;
    this.#options = options;
    this.#onDesired = options.onDesired;
    this.#kept = new KeptMessages(options.store, options.keep, options.ackTimeout, log);
    this.#log = log;
  }

  /** Loads every known device from the store. */
  async open(): Promise<void> {
    let records: DeviceRecord[];
    try {
      records = await this.#store.all();
    } catch (error) {
      // Devices are read again from the store one by one as they connect.
      this.#log.error("Reading the known devices from the store failed: {error}", { error });
      return;
    }
    for (const record of records) {
      // A device that connected while the store was read is newer than its stored record.
      if (!this.#records.has(record.uuid)) this.#records.set(record.uuid, record);
    }
  }

  /** Counters of kept messages. */
  get keptStats(): KeptStats {
    return this.#kept.stats;
  }

  /** One device's state, if known. */
  get(uuid: string): DeviceState | undefined {
    const record = this.#records.get(uuid);
    return record && this.#view(record);
  }

  /** Every known device's state (of `type`, if given). */
  all(options: { readonly type?: string } = {}): DeviceState[] {
    const type = options.type;
    const states: DeviceState[] = [];
    for (const record of this.#records.values()) {
      if (type === undefined || record.type === type) states.push(this.#view(record));
    }
    return states;
  }

  /** State changes as an async iterator; see {@linkcode ManagerState.changes}. */
  changes(options: StateChangesOptions = {}): AsyncIterableIterator<StateChange> {
    let remove = () => {};
    const queue: AsyncQueue<StateChange> = new AsyncQueue<StateChange>({
      highWaterMark: options.highWaterMark ?? 1024,
      signal: options.signal,
      onStop: () => remove(),
    });
    if (this.#closed) queue.stop();
    else remove = this.#subs.add(queue, options.type);
    return queue[Symbol.asyncIterator]();
  }

  /** A device was admitted: its handshake data is its first report. */
  connected(connection: Connection): void {
    const uuid = connection.uuid;
    // Once read, the entry goes (unless a newer connection's read replaced it): a known
    // device holds no promise, and a report never waits on a read that has failed.
    const settled = () => {
      if (this.#loaded.get(uuid) === loaded) this.#loaded.delete(uuid);
    };
    const loaded: Promise<void> = this.#store.get(uuid).then(
      (stored) => {
        // The store may know more than this process (another manager, a restart).
        const base = stored ?? this.#records.get(uuid) ?? { uuid, ...EMPTY_RECORD };
        this.#update(base, "connected", {
          type: connection.type,
          reported: connection.data as JsonObject,
          lastSeen: Date.now(),
        });
        settled();
      },
      (error) => {
        this.#log.error("Reading device {uuid} from the store failed: {error}", { uuid, error });
        settled();
      },
    );
    this.#loaded.set(uuid, loaded);
  }

  /**
   * The device's features are known: a device that speaks `state` is sent its
   * delta, if any, and messages kept for it are delivered.
   */
  async ready(connection: Connection): Promise<void> {
    try {
      await this.#loaded.get(connection.uuid);
      const record = this.#records.get(connection.uuid);
      if (!record || !connection.connected) return;
      this.#sendDelta(connection, record);
      await this.#kept.deliver(connection);
    } catch (error) {
      // A store that is away (Redis down) costs the device its delta and kept messages for
      // now, never the manager: they wait in the store for its next connection.
      this.#log.error("Syncing device {uuid} with the store failed: {error}", {
        uuid: connection.uuid,
        error,
      });
    }
  }

  /** A `REPORT`; returns a promise when a state iterator is full (reading then pauses). */
  reported(connection: Connection, patch: JsonObject): Promise<void> | undefined {
    const record = this.#records.get(connection.uuid);
    if (!record) {
      // Its record is still being read from the store: apply the report once it is there.
      const loading = this.#loaded.get(connection.uuid);
      if (loading) return loading.then(() => this.reported(connection, patch));
      // The read failed (logged): there is no state to patch until the device reconnects.
      this.#log.warn("Report from device {uuid} dropped: its state could not be read", {
        uuid: connection.uuid,
        reason: "store",
      });
      return undefined;
    }
    const reported = mergePatch(record.reported, patch);
    const problem = stateProblem(reported, this.#options.maxStateSize);
    if (problem) {
      connection.terminate("protocol", `reported state refused: ${problem}`);
      return undefined;
    }
    const next = this.#update(record, "reported", { reported, lastSeen: Date.now() });
    // A report that moves the device away from its desired state (a command, a hand on the
    // switch) gets the delta again, as AWS IoT does; one it was already sent is not repeated.
    this.#sendDelta(connection, next, true);
    return this.#stallFor(next.type);
  }

  /** `getData()` answered: the answer is a full report. */
  retyped(connection: Connection): void {
    const record = this.#records.get(connection.uuid);
    if (!record) return;
    this.#update(record, "reported", {
      type: connection.type,
      reported: connection.data as JsonObject,
      lastSeen: Date.now(),
    });
  }

  /** A device's connection ended (a replaced connection is not the device leaving). */
  disconnected(connection: Connection, end: ConnectionEnd): void {
    const record = this.#records.get(connection.uuid);
    if (!record || this.#registry.get(connection.uuid) !== undefined) return;
    this.#update(record, "disconnected", {
      lastSeen: Date.now(),
      lastEnd: { reason: end.reason, message: end.message },
    });
  }

  /** Merges `patch` into a device's desired state (creating the record if unknown). */
  setDesired(uuid: string, patch: JsonObject): Promise<DeviceState> {
    this.#checkDesire(patch);
    if (!isUuid(uuid)) throw new TypeError(`invalid uuid ${JSON.stringify(uuid)}`);
    return this.#inTurn(() => this.#setDesired(uuid.toLowerCase(), patch));
  }

  /** Merges `patch` into the desired state of every known device of `type`. */
  setDesiredType(type: string, patch: JsonObject): Promise<number> {
    this.#checkDesire(patch);
    if (typeof type !== "string") throw new TypeError("type must be a string");
    return this.#inTurn(() => this.#setDesiredType(type, patch));
  }

  /** One desired-state change at a time: each reads, merges and writes undisturbed. */
  #inTurn<T>(change: () => Promise<T>): Promise<T> {
    const turn = this.#desiring.then(change);
    this.#desiring = turn.then(() => {}, () => {});
    return turn;
  }

  #checkDesire(patch: JsonObject): void {
    if (this.#closed) throw new ConnectionEnd("manager-closed", "the manager is closed");
    const problem = stateProblem(patch, this.#options.maxStateSize);
    if (problem) throw new TypeError(`invalid desired state patch: ${problem}`);
  }

  async #setDesired(uuid: string, patch: JsonObject): Promise<DeviceState> {
    // The store may hold a newer desired state (another manager of the cluster set it).
    await this.#flush();
    const record = await this.#store.get(uuid) ?? this.#records.get(uuid) ??
      { uuid, ...EMPTY_RECORD };
    const next = this.#desire({ ...this.#records.get(uuid), ...record }, patch);
    await this.#flush();
    this.#onDesired?.(uuid);
    await this.#stallFor(next.type);
    return this.#view(next);
  }

  async #setDesiredType(type: string, patch: JsonObject): Promise<number> {
    await this.#flush();
    const stored = new Map((await this.#store.all()).map((record) => [record.uuid, record]));
    const known = new Map([...this.#records, ...stored]);
    const changed: string[] = [];
    for (const record of known.values()) {
      if (record.type !== type) continue;
      this.#desire({ ...this.#records.get(record.uuid), ...record }, patch);
      changed.push(record.uuid);
    }
    await this.#flush();
    for (const uuid of changed) this.#onDesired?.(uuid);
    await this.#stallFor(type);
    return changed.length;
  }

  /**
   * Another manager sharing the store changed this device's desired state:
   * read it back, and send the delta if the device is connected here.
   */
  async refresh(uuid: string): Promise<void> {
    const stored = await this.#store.get(uuid);
    if (!stored) return;
    const local = this.#records.get(uuid);
    // What this manager saw itself (the device's reports, its presence) is at least as new.
    const record: DeviceRecord = local
      ? { ...local, desired: stored.desired, version: stored.version }
      : stored;
    this.#records.set(uuid, record);
    this.#emit("desired", record);
    const connection = this.#registry.get(uuid);
    if (connection?.uses("state") !== undefined) this.#sendDelta(connection, record);
  }

  /**
   * Keeps a message for a known device that is away.
   *
   * @returns Whether it was kept (`false` for a device never seen, or when the bounds are full).
   */
  async keep(uuid: string, data: Uint8Array, ttlSeconds: number): Promise<boolean> {
    if (this.#closed) throw new ConnectionEnd("manager-closed", "the manager is closed");
    if (!this.#records.has(uuid) && !await this.#store.get(uuid)) return false;
    const kept = await this.#kept.keep(uuid, data, ttlSeconds);
    // A device that came back meanwhile gets it now.
    const connection = this.#registry.get(uuid);
    if (kept && connection?.uses("ack") !== undefined) await this.#kept.deliver(connection);
    return kept;
  }

  /** Ends every state iterator and waits for the store writes. Does not close the store. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const sub of this.#subs) sub.target.stop();
    await this.#flush();
  }

  #desire(record: DeviceRecord, patch: JsonObject): DeviceRecord {
    const desired = mergePatch(record.desired, patch);
    const problem = stateProblem(desired, this.#options.maxStateSize);
    if (problem) throw new RangeError(`desired state of ${record.uuid} refused: ${problem}`);
    const next = this.#update(record, "desired", { desired, version: record.version + 1 });
    const connection = this.#registry.get(record.uuid);
    if (connection) this.#sendDelta(connection, next);
    return next;
  }

  /**
   * Sends the device its delta. After a report (`onlyIfNew`) only a non-empty
   * delta that differs from the last one sent goes, so a device that cannot
   * reach its desired state is not told the same thing after every report.
   */
  #sendDelta(connection: Connection, record: DeviceRecord, onlyIfNew = false): void {
    if (!connection.uses("state")) return;
    const delta = stateDelta(record.desired, record.reported);
    const empty = Object.keys(delta).length === 0;
    const text = JSON.stringify(delta);
    if (onlyIfNew) {
      if (empty) this.#lastDelta.delete(connection);
      if (empty || this.#lastDelta.get(connection) === text) return;
    } else if (empty && record.version === 0) return;
    this.#lastDelta.set(connection, text);
    connection.enqueue(encodeDelta(record.version, delta));
  }

  #update(
    record: DeviceRecord,
    kind: StateChange["kind"],
    changes: DeviceRecordChanges,
  ): DeviceRecord {
    const next: DeviceRecord = { ...record, ...changes };
    this.#records.set(next.uuid, next);
    // Only the changed fields: managers sharing the store each write their own.
    const write = this.#writes.then(() => this.#store.update(next.uuid, changes));
    this.#writes = write.catch((error) =>
      this.#log.error("Writing device {uuid} to the store failed: {error}", {
        uuid: next.uuid,
        error,
      })
    );
    this.#emit(kind, next);
    return next;
  }

  #emit(kind: StateChange["kind"], record: DeviceRecord): void {
    if (this.#subs.size === 0) return;
    const change: StateChange = { kind, state: this.#view(record) };
    for (const queue of this.#subs.matching(record.type)) queue.push(change);
  }

  #stallFor(type: string): Promise<void> | undefined {
    let stalls: Promise<void>[] | undefined;
    for (const queue of this.#subs.matching(type)) {
      if (queue.full) (stalls ??= []).push(queue.writable());
    }
    return stalls && Promise.all(stalls).then(() => {});
  }

  #flush(): Promise<void> {
    return this.#writes;
  }

  #view(record: DeviceRecord): DeviceState {
    const connection = this.#registry.get(record.uuid);
    return {
      ...record,
      connected: connection?.connected ?? false,
      delta: stateDelta(record.desired, record.reported),
    };
  }
}
