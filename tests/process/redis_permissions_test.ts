/**
 * A manager joining a cluster without a Deno permission the Redis client
 * needs fails at once with `NotCapable`, instead of waiting out the connect
 * timeout and running alone (a split cluster nobody sees). A child process,
 * so its permissions can be narrower than the tests'.
 */
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("RedisAdapter without --allow-env: Manager.listen rejects at once with NotCapable", async () => {
  await using redis = await RedisServer.start();
  const script = `
    import { Manager } from "${ROOT}mod.ts";
    import { RedisAdapter } from "${ROOT}lib/redis.ts";
    const started = performance.now();
    const cluster = new RedisAdapter({ url: "${redis.url}", connectTimeout: 30 });
    try {
      await Manager.listen({ validTypes: ["light"], port: 0, cluster });
      console.log("listening");
    } catch (error) {
      console.log(error.name, performance.now() - started < 25_000, error.message);
    }
    Deno.exit(0);
  `;
  // --allow-net and --allow-read, but no --allow-env: the redis client reads its environment.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", `--config=${ROOT}deno.json`, "--allow-net=127.0.0.1", "--allow-read", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { stdout, stderr } = await child.output();
  assert.match(
    new TextDecoder().decode(stdout),
    /^NotCapable true RedisAdapter cannot reach Redis at .*--allow-env/,
    new TextDecoder().decode(stderr),
  );
});
