/**
 * A {@linkcode DeviceStore} in one SQLite file (`node:sqlite`, which Deno
 * ships; no flag, but `--allow-read` and `--allow-write` for the file), for a
 * single manager whose devices' state and kept messages must survive a
 * restart, a crash included: every change is committed before the call
 * resolves (WAL journal).
 *
 * @module
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { JsonObject } from "./protocol/mod.ts";
import {
  applyChanges,
  type DeviceRecord,
  type DeviceRecordChanges,
  type DeviceStore,
  type KeepLimits,
  type KeepResult,
  type KeptMessage,
} from "./store.ts";

const SCHEMA = `
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  CREATE TABLE IF NOT EXISTS devices (
    uuid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    desired TEXT NOT NULL,
    version INTEGER NOT NULL,
    reported TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    last_end_reason TEXT,
    last_end_message TEXT
  );
  CREATE TABLE IF NOT EXISTS kept (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    data BLOB NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS kept_by_device ON kept (uuid, seq);
`;

interface Row {
  uuid: string;
  type: string;
  desired: string;
  version: number;
  reported: string;
  last_seen: number;
  last_end_reason: string | null;
  last_end_message: string | null;
}

/**
 * Device records and kept messages in an SQLite file.
 *
 * @example
 * ```ts ignore
 * import { Manager, SqliteStore } from "@iot-manager/core";
 * const manager = await Manager.listen({
 *   validTypes: ["lock"],
 *   store: new SqliteStore("./devices.db"),
 * });
 * ```
 */
export class SqliteStore implements DeviceStore {
  readonly #db: DatabaseSync;
  readonly #statements: Record<string, StatementSync>;
  #closed = false;

  /**
   * Opens (or creates) the file.
   *
   * @param path The database file; `":memory:"` for a throwaway one.
   * @throws {Error} When the file cannot be opened (permissions, not a database).
   */
  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    this.#db.exec(SCHEMA);
    const prepare = (sql: string) => this.#db.prepare(sql);
    this.#statements = {
      all: prepare("SELECT * FROM devices"),
      get: prepare("SELECT * FROM devices WHERE uuid = ?"),
      put: prepare(`INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (uuid) DO UPDATE SET type = excluded.type, desired = excluded.desired,
        version = excluded.version, reported = excluded.reported, last_seen = excluded.last_seen,
        last_end_reason = excluded.last_end_reason, last_end_message = excluded.last_end_message`),
      count: prepare("SELECT COUNT(*) AS n FROM kept WHERE uuid = ?"),
      total: prepare("SELECT COUNT(*) AS n FROM kept"),
      oldest: prepare("DELETE FROM kept WHERE seq = (SELECT MIN(seq) FROM kept WHERE uuid = ?)"),
      keep: prepare("INSERT INTO kept (uuid, data, expires_at) VALUES (?, ?, ?)"),
      kept: prepare("SELECT seq, data, expires_at FROM kept WHERE uuid = ? ORDER BY seq"),
      remove: prepare("DELETE FROM kept WHERE uuid = ? AND seq = ?"),
    };
  }

  all(): Promise<DeviceRecord[]> {
    return Promise.resolve((this.#statements.all.all() as unknown as Row[]).map(toRecord));
  }

  get(uuid: string): Promise<DeviceRecord | undefined> {
    const row = this.#statements.get.get(uuid) as unknown as Row | undefined;
    return Promise.resolve(row && toRecord(row));
  }

  update(uuid: string, changes: DeviceRecordChanges): Promise<void> {
    this.#transaction(() => {
      const row = this.#statements.get.get(uuid) as unknown as Row | undefined;
      this.#put(applyChanges(row && toRecord(row), uuid, changes));
    });
    return Promise.resolve();
  }

  #put(record: DeviceRecord): void {
    this.#statements.put.run(
      record.uuid,
      record.type,
      JSON.stringify(record.desired),
      record.version,
      JSON.stringify(record.reported),
      record.lastSeen,
      record.lastEnd?.reason ?? null,
      record.lastEnd?.message ?? null,
    );
  }

  keep(uuid: string, data: Uint8Array, expiresAt: number, limits: KeepLimits): Promise<KeepResult> {
    return Promise.resolve(this.#transaction(() => {
      const count = () => Number((this.#statements.count.get(uuid) as { n: number }).n);
      const total = () => Number((this.#statements.total.get() as { n: number }).n);
      let dropped = 0;
      while (count() > 0 && (count() >= limits.perDevice || total() >= limits.total)) {
        this.#statements.oldest.run(uuid);
        dropped++;
      }
      if (count() >= limits.perDevice || total() >= limits.total) return { kept: false, dropped };
      this.#statements.keep.run(uuid, data, expiresAt);
      return { kept: true, dropped };
    }));
  }

  kept(uuid: string): Promise<KeptMessage[]> {
    const rows = this.#statements.kept.all(uuid) as unknown as {
      seq: number;
      data: Uint8Array;
      expires_at: number;
    }[];
    return Promise.resolve(
      rows.map((row) => ({ seq: row.seq, data: row.data, expiresAt: row.expires_at })),
    );
  }

  removeKept(uuid: string, seqs: readonly number[]): Promise<void> {
    this.#transaction(() => {
      for (const seq of seqs) this.#statements.remove.run(uuid, seq);
    });
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#db.close();
    }
    return Promise.resolve();
  }

  #transaction<T>(work: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }
}

function toRecord(row: Row): DeviceRecord {
  return {
    uuid: row.uuid,
    type: row.type,
    desired: JSON.parse(row.desired) as JsonObject,
    version: Number(row.version),
    reported: JSON.parse(row.reported) as JsonObject,
    lastSeen: Number(row.last_seen),
    ...(row.last_end_reason === null
      ? {}
      : { lastEnd: { reason: row.last_end_reason, message: row.last_end_message ?? "" } }),
  };
}
