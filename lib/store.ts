/**
 * Where the manager keeps what it knows about devices between connections:
 * each known device's desired and reported state, when it was last seen and
 * why it left, and the messages kept for it while it is away. A small
 * interface with three implementations: {@linkcode MemoryStore} (the default,
 * gone with the process), `SqliteStore` (lib/sqlite_store.ts: one file,
 * survives restarts) and, for a cluster, a Redis store.
 *
 * Every implementation passes the same contract tests (tests/_store_contract.ts).
 *
 * @module
 */

import type { JsonObject } from "./protocol/mod.ts";

/** What the manager remembers about one device. */
export interface DeviceRecord {
  /** The device's UUID (lower case). */
  readonly uuid: string;
  /** Its type when last seen; `""` for a device known only from `setDesired`. */
  readonly type: string;
  /** The application's desired state. */
  readonly desired: JsonObject;
  /** Increments with every change to `desired`; 0 before the first. */
  readonly version: number;
  /** The device's reported state: its handshake data, merged with its reports since. */
  readonly reported: JsonObject;
  /** When the device was last connected or heard from (ms since the epoch); 0 if never. */
  readonly lastSeen: number;
  /** Why its last connection ended, if it has ended. */
  readonly lastEnd?: { readonly reason: string; readonly message: string };
}

/** The fields of a {@linkcode DeviceRecord} an update may change. */
export type DeviceRecordChanges = Partial<Omit<DeviceRecord, "uuid">>;

/** A record's fields before anything is known: what an update starts from. */
export const EMPTY_RECORD: Omit<DeviceRecord, "uuid"> = {
  type: "",
  desired: {},
  version: 0,
  reported: {},
  lastSeen: 0,
};

/** A message kept for a device that is away (`send(uuid, data, { ttl })`). */
export interface KeptMessage {
  /** Orders the messages of one device and names one for removal; assigned by the store. */
  readonly seq: number;
  /** The message bytes. */
  readonly data: Uint8Array;
  /** When it expires (ms since the epoch). */
  readonly expiresAt: number;
}

/** Bounds on kept messages; when a bound is reached the device's oldest kept message is dropped. */
export interface KeepLimits {
  /** Messages kept per device. */
  readonly perDevice: number;
  /** Messages kept in all. */
  readonly total: number;
}

/** What {@linkcode DeviceStore.keep} did. */
export interface KeepResult {
  /** Whether the message is now kept (false only when the total bound is reached by other devices). */
  readonly kept: boolean;
  /** Older messages of this device dropped to make room. */
  readonly dropped: number;
}

/**
 * The manager's memory of its devices. Methods may be called concurrently;
 * each is atomic on its own. Updates name only the fields they change, so
 * managers sharing a store (a cluster) do not overwrite each other's fields:
 * one writes a device's reported state while another writes its desired state.
 */
export interface DeviceStore {
  /** Every known device's record. */
  all(): Promise<DeviceRecord[]>;
  /** One device's record. */
  get(uuid: string): Promise<DeviceRecord | undefined>;
  /**
   * Changes some fields of a record, creating it (from {@linkcode EMPTY_RECORD}) if absent;
   * `lastEnd: undefined` among the changes clears it.
   */
  update(uuid: string, changes: DeviceRecordChanges): Promise<void>;
  /**
   * Keeps a message for a device, after those already kept for it.
   *
   * @returns Whether it was kept, and how many older ones were dropped to make room.
   */
  keep(uuid: string, data: Uint8Array, expiresAt: number, limits: KeepLimits): Promise<KeepResult>;
  /** The messages kept for a device, oldest first (expired ones included; the caller drops them). */
  kept(uuid: string): Promise<KeptMessage[]>;
  /** Removes kept messages of a device by `seq` (delivered or expired). */
  removeKept(uuid: string, seqs: readonly number[]): Promise<void>;
  /** Releases the store (a file, a connection). Idempotent. */
  close(): Promise<void>;
}

/**
 * The default store: a map in this process. Fast, and forgotten when the
 * process ends.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "@iot-manager/core";
 * const store = new MemoryStore();
 * await store.update("1862cfe1-5dab-4d8e-a946-50d6728f830f", { type: "lock", desired: { locked: true } });
 * console.log((await store.all()).length); // 1
 * ```
 */
export class MemoryStore implements DeviceStore {
  readonly #records = new Map<string, DeviceRecord>();
  readonly #kept = new Map<string, KeptMessage[]>();
  #keptTotal = 0;
  #seq = 0;

  all(): Promise<DeviceRecord[]> {
    return Promise.resolve([...this.#records.values()]);
  }

  get(uuid: string): Promise<DeviceRecord | undefined> {
    return Promise.resolve(this.#records.get(uuid));
  }

  update(uuid: string, changes: DeviceRecordChanges): Promise<void> {
    this.#records.set(uuid, applyChanges(this.#records.get(uuid), uuid, changes));
    return Promise.resolve();
  }

  keep(uuid: string, data: Uint8Array, expiresAt: number, limits: KeepLimits): Promise<KeepResult> {
    const list = this.#kept.get(uuid) ?? [];
    let dropped = 0;
    while (
      list.length > 0 && (list.length >= limits.perDevice || this.#keptTotal >= limits.total)
    ) {
      list.shift();
      this.#keptTotal--;
      dropped++;
    }
    if (list.length >= limits.perDevice || this.#keptTotal >= limits.total) {
      return Promise.resolve({ kept: false, dropped });
    }
    list.push({ seq: ++this.#seq, data: data.slice(), expiresAt });
    this.#keptTotal++;
    this.#kept.set(uuid, list);
    return Promise.resolve({ kept: true, dropped });
  }

  kept(uuid: string): Promise<KeptMessage[]> {
    return Promise.resolve([...this.#kept.get(uuid) ?? []]);
  }

  removeKept(uuid: string, seqs: readonly number[]): Promise<void> {
    const list = this.#kept.get(uuid);
    if (!list) return Promise.resolve();
    const remove = new Set(seqs);
    const left = list.filter((message) => !remove.has(message.seq));
    this.#keptTotal -= list.length - left.length;
    if (left.length > 0) this.#kept.set(uuid, left);
    else this.#kept.delete(uuid);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A record with `changes` applied (`record` absent: a new one from
 * {@linkcode EMPTY_RECORD}). Shared by the stores that hold whole records.
 */
export function applyChanges(
  record: DeviceRecord | undefined,
  uuid: string,
  changes: DeviceRecordChanges,
): DeviceRecord {
  const next: DeviceRecord = { ...(record ?? { uuid, ...EMPTY_RECORD }), ...changes, uuid };
  if ("lastEnd" in changes && changes.lastEnd === undefined) {
    const { lastEnd: _, ...rest } = next;
    return rest;
  }
  return next;
}
