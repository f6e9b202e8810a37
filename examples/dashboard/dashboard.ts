/**
 * The dashboard's web app: one page, a small JSON API and a Server-Sent Events
 * stream, next to a running manager. It follows the fleet with the manager's
 * async iterators: `manager.clients()` for arrivals, each client's `closed` for
 * departures, and `manager.messages()` for state reports.
 *
 * @module
 */

import type { Client, Manager } from "@iot-manager/core";
import { getLogger } from "@logtape/logtape";
import { type DeviceView, renderCount, renderDevice, renderPage, type SendResult } from "./page.ts";

const log = getLogger(["iot-manager", "dashboard"]);
const encoder = new TextEncoder();
const KEEPALIVE_MS = 15_000;

const assets = {
  "/app.js": {
    type: "text/javascript; charset=utf-8",
    body: await Deno.readTextFile(new URL("./static/app.js", import.meta.url)),
  },
  "/style.css": {
    type: "text/css; charset=utf-8",
    body: await Deno.readTextFile(new URL("./static/style.css", import.meta.url)),
  },
} as const;

/** Parses a device message as a state report: a JSON object, or null. */
function parseState(text: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * Serves the dashboard for `manager`. Pass `dashboard.handler` to `Deno.serve`.
 *
 * @example
 * ```ts ignore
 * await using manager = await Manager.listen({ validTypes: ["light", "lock"], port: 0 });
 * await using dashboard = new Dashboard(manager);
 * Deno.serve({ hostname: "127.0.0.1", port: 8080 }, dashboard.handler);
 * ```
 */
export class Dashboard implements AsyncDisposable {
  readonly #manager: Manager;
  readonly #views = new Map<string, DeviceView & { client: Client }>();
  readonly #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  readonly #stop = new AbortController();
  readonly #tasks: Promise<void>[];
  readonly #keepAlive: ReturnType<typeof setInterval>;

  constructor(manager: Manager) {
    this.#manager = manager;
    this.#tasks = [this.#followClients(), this.#followMessages()];
    this.#keepAlive = setInterval(() => this.#broadcast(": keep-alive\n\n"), KEEPALIVE_MS);
  }

  /** The devices as the page shows them. */
  get devices(): DeviceView[] {
    return [...this.#views.values()].map(({ client: _, ...view }) => view);
  }

  /** The HTTP handler. */
  readonly handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (request.method === "GET" && url.pathname === "/") return this.#page(url);
    if (request.method === "GET" && url.pathname in assets) {
      const asset = assets[url.pathname as keyof typeof assets];
      return new Response(asset.body, { headers: { "content-type": asset.type } });
    }
    if (request.method === "GET" && url.pathname === "/events") return this.#events();
    if (request.method === "GET" && url.pathname === "/api/devices") {
      return Response.json({ devices: this.devices, counts: this.#counts() });
    }
    if (request.method === "POST" && url.pathname === "/api/send") return await this.#send(request);
    return new Response("Not found", { status: 404 });
  };

  /** Stops following the fleet and ends every event stream. */
  async close(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#keepAlive);
    for (const stream of this.#streams) {
      try {
        stream.close();
      } catch { /* already closed by the browser */ }
    }
    this.#streams.clear();
    await Promise.all(this.#tasks);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #followClients(): Promise<void> {
    for await (const client of this.#manager.clients({ signal: this.#stop.signal })) {
      const view = {
        client,
        uuid: client.uuid,
        type: client.type,
        data: client.data,
        state: parseState(JSON.stringify(client.data)),
        address: `${client.address.hostname}:${client.address.port}`,
        mode: client.mode,
      };
      this.#views.set(client.uuid, view);
      this.#changed(client.uuid);
      // Ask for the live state; the answer comes back through request(), not messages().
      client.requestString("status", { timeout: 5 })
        .then((answer) => this.#report(client, answer))
        .catch((error) =>
          log.debug("No status from {uuid}: {error}", { uuid: client.uuid, error })
        );
      client.closed.then(() => {
        if (this.#views.get(client.uuid)?.client !== client) return; // replaced meanwhile
        this.#views.delete(client.uuid);
        this.#publish("gone", { uuid: client.uuid, type: client.type, counts: this.#counts() });
      });
    }
  }

  async #followMessages(): Promise<void> {
    for await (const { client, text } of this.#manager.messages({ signal: this.#stop.signal })) {
      this.#report(client, text);
    }
  }

  #report(client: Client, text: string): void {
    const state = parseState(text);
    const view = this.#views.get(client.uuid);
    if (!state || !view || view.client !== client) return;
    const { id: _tag, ...rest } = state;
    this.#views.set(client.uuid, { ...view, state: rest });
    this.#changed(client.uuid);
  }

  #changed(uuid: string): void {
    const view = this.#views.get(uuid);
    if (!view) return;
    this.#publish("device", {
      uuid,
      type: view.type,
      html: renderDevice(view),
      counts: this.#counts(),
    });
  }

  #counts(): Record<string, { count: number; label: string }> {
    const counts: Record<string, { count: number; label: string }> = {};
    for (const type of [...this.#manager.validTypes, "total"]) {
      const count = type === "total"
        ? this.#views.size
        : [...this.#views.values()].filter((view) => view.type === type).length;
      counts[type] = { count, label: renderCount(count) };
    }
    return counts;
  }

  #publish(event: string, data: unknown): void {
    this.#broadcast(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  #broadcast(chunk: string): void {
    const bytes = encoder.encode(chunk);
    for (const stream of this.#streams) {
      try {
        stream.enqueue(bytes);
      } catch {
        this.#streams.delete(stream);
      }
    }
  }

  #page(url: URL): Response {
    const sent = url.searchParams.get("reached");
    const result: SendResult | undefined = sent === null ? undefined : {
      reached: Number(sent),
      to: url.searchParams.get("to") ?? "",
      message: url.searchParams.get("message") ?? "",
    };
    return new Response(renderPage(this.#manager.validTypes, this.devices, result), {
      headers: { "content-type": "text/html; charset=utf-8" },
    });
  }

  #events(): Response {
    let controller: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        this.#streams.add(c);
        c.enqueue(encoder.encode(": connected\n\n"));
      },
      cancel: () => {
        this.#streams.delete(controller);
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  }

  async #send(request: Request): Promise<Response> {
    const form = await request.formData().catch(() => null);
    const field = (name: string) => {
      const value = form?.get(name);
      return typeof value === "string" ? value.trim() : "";
    };
    const brightness = field("brightness");
    const message = brightness !== "" ? `brightness ${brightness}` : field("message");
    const target = field("target");
    if (!message) return this.#answer(request, 400, { error: "message is required" });
    let reached: number;
    let to: string;
    if (target === "all") {
      reached = await this.#manager.sendAll(message);
      to = "all devices";
    } else if (target === "type" && this.#manager.validTypes.includes(field("type"))) {
      reached = await this.#manager.sendType(field("type"), message);
      to = `every ${field("type")}`;
    } else if (target === "device" && field("uuid") !== "") {
      reached = await this.#manager.send(field("uuid"), message);
      to = `device ${field("uuid").slice(0, 8)}`;
    } else {
      return this.#answer(request, 400, { error: "target must be all, type or device" });
    }
    log.info("Sent {message} to {to}: {reached} reached", { message, to, reached });
    if (request.headers.get("accept")?.includes("application/json")) {
      return Response.json({ reached, to, message });
    }
    const back = new URLSearchParams({ reached: String(reached), to, message });
    return new Response(null, { status: 303, headers: { location: `/?${back}` } });
  }

  #answer(request: Request, status: number, body: { error: string }): Response {
    if (request.headers.get("accept")?.includes("application/json")) {
      return Response.json(body, { status });
    }
    return new Response(body.error, { status });
  }
}
