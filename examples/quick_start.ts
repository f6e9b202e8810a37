/**
 * The quick start of README.md: a manager for lights and locks on
 * 127.0.0.1:8595 (or the port given as the first argument) that prints who
 * connects and what they send, and answers `status?`. Published as
 * `jsr:@iot-manager/core/quick-start`:
 * `deno run --allow-net jsr:@iot-manager/core/quick-start [port]`.
 *
 * @module
 */

import { Manager } from "@iot-manager/core";

const port = Number(Deno.args[0] ?? 8595); // deno run --allow-net examples/quick_start.ts [port]
await using manager = await Manager.listen({ validTypes: ["light", "lock"], port })
  .catch((error) => {
    console.error(error.message); // one line, e.g. "cannot listen on 127.0.0.1:8595: the port is already in use (...)"
    Deno.exit(2);
  });
console.log(`Manager listening on ${manager.hostname}:${manager.port}`);

manager.on("connect", (client) => console.log(`+ ${client.type} ${client.uuid}`, client.data));
manager.on("disconnect", (client, end) => console.log(`- ${client.uuid}: ${end.message}`));

for await (const { client, text } of manager.messages()) {
  console.log(`${client.type} ${client.uuid}: ${text}`);
  if (text === "status?") await client.send("all good");
}
