/** A port that cannot be opened is a `ListenError` with a reason and a one-line message. */
import assert from "node:assert/strict";
import { ListenError, Manager } from "../mod.ts";
import { tlsFiles } from "./_helpers.ts";

for (const tls of [false, true]) {
  Deno.test(`Manager.listen on a port in use${tls ? " (TLS)" : ""}: ListenError address-in-use, nothing left open`, async () => {
    const files = tls ? { cert: tlsFiles.cert, key: tlsFiles.key } : undefined;
    await using first = await Manager.listen({ validTypes: ["light"], port: 0, tls: files });
    const error = await Manager.listen({ validTypes: ["light"], port: first.port, tls: files })
      .catch((e) => e);
    assert.ok(error instanceof ListenError, String(error));
    assert.equal(error.reason, "address-in-use");
    assert.deepEqual([error.hostname, error.port], ["127.0.0.1", first.port]);
    assert.equal(
      error.message,
      `cannot listen on 127.0.0.1:${first.port}: the port is already in use ` +
        "(choose another port, or 0 for any free one)",
    );
    assert.ok(error.cause instanceof Error, "the operating system's error is the cause");
    // The first manager still serves.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: first.port });
    conn.close();
  });
}

Deno.test("ListenError.from maps the operating system's errors to reasons", () => {
  const cases: [unknown, string][] = [
    [new Deno.errors.AddrInUse("x"), "address-in-use"],
    [Object.assign(new Error("x"), { code: "EADDRINUSE" }), "address-in-use"],
    [new Deno.errors.PermissionDenied("x"), "permission-denied"],
    [new Deno.errors.NotCapable("x"), "permission-denied"],
    [Object.assign(new Error("x"), { code: "EACCES" }), "permission-denied"],
    [new Deno.errors.AddrNotAvailable("x"), "address-not-available"],
    [new Error("something else"), "io"],
  ];
  for (const [cause, reason] of cases) {
    const error = ListenError.from(cause, "127.0.0.1", 80);
    assert.equal(error.reason, reason);
    assert.equal(error.cause, cause);
    assert.doesNotMatch(error.message, /\n/, "one line");
  }
  assert.match(
    ListenError.from(new Deno.errors.NotCapable("x"), "h", 1).message,
    /--allow-net/,
  );
});
