/**
 * A {@linkcode DeviceStore} in Redis, shared by the managers of a cluster
 * through their {@linkcode RedisAdapter}'s connection: desired state set on
 * one manager reaches a device connected to another (the adapter tells it to
 * read the device back), and a device that moves to another manager finds its
 * desired state and kept messages there.
 *
 * Keys, under the adapter's prefix: `state:UUID` (a hash, one field per
 * record field, so managers writing different fields do not overwrite each
 * other), `states` (the set of known UUIDs), `kept:UUID` (a list of
 * `seq|expiresAt|base64`), `kept-seq` and `kept-total` (counters). The bounds
 * on kept messages are kept atomically by Lua scripts.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { connectionOf, type RedisAdapter } from "./redis_adapter.ts";
import type { JsonObject } from "./protocol/mod.ts";
import {
  type DeviceRecord,
  type DeviceRecordChanges,
  type DeviceStore,
  EMPTY_RECORD,
  type KeepLimits,
  type KeepResult,
  type KeptMessage,
} from "./store.ts";

const KEEP = `
local dropped = 0
local len = redis.call('LLEN', KEYS[1])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local perDevice, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
while len > 0 and (len >= perDevice or total >= limit) do
  redis.call('LPOP', KEYS[1])
  len = len - 1
  total = total - 1
  dropped = dropped + 1
end
if len >= perDevice or total >= limit then
  redis.call('SET', KEYS[2], total)
  return {0, dropped}
end
local seq = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[1], seq .. '|' .. ARGV[2] .. '|' .. ARGV[1])
redis.call('SET', KEYS[2], total + 1)
return {1, dropped}
`;

const REMOVE = `
local remove = {}
for i = 1, #ARGV do remove[ARGV[i]] = true end
local removed = 0
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if remove[string.match(item, '^(%d+)|')] then
    redis.call('LREM', KEYS[1], 1, item)
    removed = removed + 1
  end
end
if removed > 0 then redis.call('DECRBY', KEYS[2], removed) end
return removed
`;

/**
 * Device records and kept messages in the Redis of a {@linkcode RedisAdapter}.
 *
 * @example
 * ```ts ignore
 * import { Manager } from "@iot-manager/core";
 * import { RedisAdapter, RedisStore } from "@iot-manager/core/redis";
 * const cluster = new RedisAdapter({ url: "redis://10.0.0.5:6379" });
 * await using manager = await Manager.listen({
 *   validTypes: ["lock"],
 *   cluster,
 *   store: new RedisStore(cluster),
 * });
 * ```
 */
export class RedisStore implements DeviceStore {
  readonly #adapter: RedisAdapter;

  /**
   * Uses the adapter's connection (open once the manager has attached it).
   *
   * @param adapter The cluster adapter of the same manager.
   */
  constructor(adapter: RedisAdapter) {
    this.#adapter = adapter;
  }

  async all(): Promise<DeviceRecord[]> {
    const redis = this.#redis();
    const uuids = await redis.sMembers(this.#key("states"));
    if (uuids.length === 0) return [];
    const batch = redis.multi();
    for (const uuid of uuids) batch.hGetAll(this.#key(`state:${uuid}`));
    const hashes = await batch.exec() as unknown as Record<string, string>[];
    const records: DeviceRecord[] = [];
    uuids.forEach((uuid, i) => {
      if (Object.keys(hashes[i] ?? {}).length > 0) records.push(toRecord(uuid, hashes[i]));
    });
    return records;
  }

  async get(uuid: string): Promise<DeviceRecord | undefined> {
    const hash = await this.#redis().hGetAll(this.#key(`state:${uuid}`));
    return Object.keys(hash).length === 0 ? undefined : toRecord(uuid, hash);
  }

  async update(uuid: string, changes: DeviceRecordChanges): Promise<void> {
    const key = this.#key(`state:${uuid}`);
    const fields: Record<string, string> = {};
    for (const [field, value] of Object.entries(changes)) {
      if (value !== undefined) fields[field] = JSON.stringify(value);
    }
    const batch = this.#redis().multi().sAdd(this.#key("states"), uuid);
    // A new record starts from the defaults; HSETNX leaves a known one alone.
    for (const [field, value] of Object.entries(EMPTY_RECORD)) {
      batch.hSetNX(key, field, JSON.stringify(value));
    }
    if (Object.keys(fields).length > 0) batch.hSet(key, fields);
    if ("lastEnd" in changes && changes.lastEnd === undefined) batch.hDel(key, "lastEnd");
    await batch.exec();
  }

  async keep(
    uuid: string,
    data: Uint8Array,
    expiresAt: number,
    limits: KeepLimits,
  ): Promise<KeepResult> {
    const [kept, dropped] = await this.#redis().eval(KEEP, {
      keys: [this.#key(`kept:${uuid}`), this.#key("kept-total"), this.#key("kept-seq")],
      arguments: [
        Buffer.from(data).toString("base64"),
        String(expiresAt),
        String(limits.perDevice),
        String(limits.total),
      ],
    }) as [number, number];
    return { kept: kept === 1, dropped };
  }

  async kept(uuid: string): Promise<KeptMessage[]> {
    const items = await this.#redis().lRange(this.#key(`kept:${uuid}`), 0, -1);
    return items.map((item) => {
      const [seq, expiresAt, data] = item.split("|");
      return {
        seq: Number(seq),
        expiresAt: Number(expiresAt),
        data: new Uint8Array(Buffer.from(data, "base64")),
      };
    });
  }

  async removeKept(uuid: string, seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.#redis().eval(REMOVE, {
      keys: [this.#key(`kept:${uuid}`), this.#key("kept-total")],
      arguments: seqs.map(String),
    });
  }

  /** Nothing to release: the connection is the adapter's, closed with it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  #redis(): NonNullable<ReturnType<typeof connectionOf>> {
    const client = connectionOf(this.#adapter);
    if (!client?.isReady) throw new Error("the cluster's Redis is not connected");
    return client;
  }

  #key(name: string): string {
    return `${this.#adapter.prefix}:${name}`;
  }
}

function toRecord(uuid: string, hash: Record<string, string>): DeviceRecord {
  const field = <T>(name: string, fallback: T): T =>
    hash[name] === undefined ? fallback : JSON.parse(hash[name]) as T;
  const lastEnd = field<DeviceRecord["lastEnd"]>("lastEnd", undefined);
  return {
    uuid,
    type: field("type", ""),
    desired: field<JsonObject>("desired", {}),
    version: field("version", 0),
    reported: field<JsonObject>("reported", {}),
    lastSeen: field("lastSeen", 0),
    ...(lastEnd ? { lastEnd } : {}),
  };
}
