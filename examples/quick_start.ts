import { Manager } from "@iot-manager/core";

await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 8595 });
console.log(`Manager listening on ${manager.hostname}:${manager.port}`);

manager.on("connect", (client) => console.log(`+ ${client.type} ${client.uuid}`, client.data));
manager.on("disconnect", (client, end) => console.log(`- ${client.uuid}: ${end.message}`));

for await (const { client, text } of manager.messages()) {
  console.log(`${client.type} ${client.uuid}: ${text}`);
  if (text === "status?") await client.send("all good");
}
