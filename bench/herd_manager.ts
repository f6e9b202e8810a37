/**
 * The manager process of `bench/herd.ts`: a `Manager` on the port it is given
 * (0: any), printing `{"port": N}` once listening. The bench kills it with
 * SIGKILL to lose it and starts another on the same port.
 *
 * @module
 */

import { Manager } from "@iot-manager/core";

const manager = await Manager.listen({
  validTypes: ["light", "lock"],
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  maxPendingHandshakes: 10_000,
});
console.log(JSON.stringify({ port: manager.port }));
