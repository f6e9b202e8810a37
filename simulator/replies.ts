/**
 * Request round trips matched by tag. `client.request()` takes the device's
 * next message, which may be another answer (to a broadcast) or telemetry;
 * the tagged answer then arrives later, and, when it came in the same read,
 * through the manager's `message` handler instead. So an answer is matched
 * wherever the manager receives it: every line it receives is offered here.
 *
 * @module
 */

import type { Client, ConnectionEnd } from "@iot-manager/core";
import type { FakeType } from "./fake_devices.ts";

/** How a round trip ended: the tagged answer, or why there was none. */
export type RoundTrip =
  | { readonly ok: true; readonly reply: Record<string, unknown>; readonly ms: number }
  | { readonly ok: false; readonly error: Error };

interface Waiter {
  readonly client: Client;
  readonly settle: (result: RoundTrip) => void;
}

const TAG = /"id":"([^"]+)"/;

/**
 * The round trips in flight, by tag.
 *
 * @example
 * ```ts
 * import { Manager } from "@iot-manager/core";
 * import { Recorder, SimDevice } from "./fleet.ts";
 * import { Replies } from "./replies.ts";
 * await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 0 });
 * const replies = new Replies();
 * const lock = new SimDevice({ type: "lock", mode: 2, role: "normal", slowDelay: 0 });
 * await lock.start({ hostname: "127.0.0.1", port: manager.port }, new Recorder());
 * const client = manager.get(lock.uuid)!;
 * const result = await replies.roundTrip(client, "status", "r1", 5, (text) => replies.offerText(text));
 * console.log(result.ok); // true
 * await lock.stop("done");
 * ```
 */
export class Replies {
  readonly #waiting = new Map<string, Waiter>();

  /** Round trips in flight. */
  get size(): number {
    return this.#waiting.size;
  }

  /**
   * Sends `command #tag` with `client.request()` and waits for the answer
   * tagged `tag`, however it comes back. Never rejects.
   *
   * @param onFirst Takes the message `request()` returned (count it, then offer its lines here).
   */
  async roundTrip(
    client: Client,
    command: string,
    tag: string,
    timeoutSeconds: number,
    onFirst: (text: string) => void,
  ): Promise<RoundTrip> {
    const started = performance.now();
    const { promise, resolve } = Promise.withResolvers<RoundTrip>();
    const settle = (result: RoundTrip) => {
      clearTimeout(timer);
      if (this.#waiting.get(tag)?.settle === settle) this.#waiting.delete(tag);
      resolve(result);
    };
    this.#waiting.set(tag, { client, settle });
    const timer = setTimeout(
      () =>
        settle({ ok: false, error: new Error(`no answer tagged ${tag} in ${timeoutSeconds} s`) }),
      timeoutSeconds * 1000,
    );
    try {
      onFirst(await client.requestString(`${command} #${tag}\n`, { timeout: timeoutSeconds }));
    } catch (error) {
      settle({ ok: false, error: error as Error });
    }
    const result = await promise;
    return result.ok ? { ...result, ms: performance.now() - started } : result;
  }

  /** Offers each line of a message the manager received. */
  offerText(text: string): void {
    for (const line of text.split("\n")) this.offer(line);
  }

  /** Offers one line the manager received; settles the round trip of its tag, if any. */
  offer(line: string): void {
    if (this.#waiting.size === 0) return;
    const tag = TAG.exec(line)?.[1];
    const waiter = tag === undefined ? undefined : this.#waiting.get(tag);
    if (!waiter) return;
    let reply: Record<string, unknown>;
    try {
      reply = JSON.parse(line);
    } catch {
      return; // not JSON: the caller reports it
    }
    waiter.settle({ ok: true, reply, ms: 0 });
  }

  /** Fails the round trips waiting on a connection that ended. */
  ended(client: Client, end: ConnectionEnd): void {
    for (const waiter of [...this.#waiting.values()]) {
      if (waiter.client === client) waiter.settle({ ok: false, error: end });
    }
  }
}

/**
 * True when `reply` is a right answer from a device of `type`: its state, or
 * an `error` when the command was one it does not know.
 *
 * @example
 * ```ts
 * import { isValidAnswer } from "./replies.ts";
 * console.log(isValidAnswer("lock", { locked: true, id: "r1" }, false)); // true
 * console.log(isValidAnswer("light", { error: "unknown command \"fly\"" }, true)); // true
 * ```
 */
export function isValidAnswer(
  type: FakeType,
  reply: Record<string, unknown>,
  expectError: boolean,
): boolean {
  if (expectError) return typeof reply.error === "string";
  return type === "lock" ? typeof reply.locked === "boolean" : typeof reply.on === "boolean";
}
