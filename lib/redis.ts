/**
 * Many managers, one fleet, on Redis: `@iot-manager/core/redis`. The main
 * module stays free of the Redis client.
 *
 * - {@linkcode RedisAdapter}: the cluster (sends, client data and UUID
 *   takeovers across managers).
 * - {@linkcode RedisStore}: device state and kept messages shared by the
 *   managers, over the adapter's connection.
 *
 * @example
 * ```ts ignore
 * import { Manager } from "@iot-manager/core";
 * import { RedisAdapter, RedisStore } from "@iot-manager/core/redis";
 * const cluster = new RedisAdapter({ url: "redis://10.0.0.5:6379" });
 * await using manager = await Manager.listen({
 *   validTypes: ["light", "lock"],
 *   cluster,
 *   store: new RedisStore(cluster),
 * });
 * ```
 *
 * @module
 */

export { RedisAdapter, type RedisAdapterOptions } from "./redis_adapter.ts";
export { RedisStore } from "./redis_store.ts";
