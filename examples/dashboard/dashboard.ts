/**
 * The dashboard's web app, next to a running manager: one page, its static
 * files (uPlot included, read from the npm package, so the page needs no
 * internet access), a list fragment and a small JSON API, Prometheus'
 * `/metrics`, and a Server-Sent Events stream that sends one batch per tick:
 * the latest stats sample for the charts, the counts, and which devices
 * changed. However busy the fleet, a browser gets one message a second.
 *
 * @module
 */

import { type Manager, metricsHandler } from "@iot-manager/core";
import { getLogger } from "@logtape/logtape";
import uplotScript from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotStyle from "uplot/dist/uPlot.min.css" with { type: "text" };
import { describeSend, renderList, renderNow, renderPage, type SendResult } from "./page.ts";
import { type DeviceView, parseQuery, queryParams, Roster } from "./roster.ts";
import { StatsSampler } from "./sampler.ts";

const log = getLogger(["iot-manager", "dashboard"]);
const encoder = new TextEncoder();

/** Seconds a command to a device that is away is kept for it (`send` with `ttl`). */
const KEEP_SECONDS = 3600;
/** Changed devices named in one batch; past this a batch says only that many changed. */
const MAX_NAMED_CHANGES = 500;
/** Batches a stream may hold unread before it is closed (the browser reconnects afresh). */
const MAX_QUEUED_BATCHES = 60;

const text = (path: string) => Deno.readTextFileSync(new URL(path, import.meta.url));
const assets: Record<string, { type: string; body: string; cache: string }> = {
  "/static/app.js": { type: "text/javascript", body: text("./static/app.js"), cache: "no-cache" },
  "/static/charts.js": {
    type: "text/javascript",
    body: text("./static/charts.js"),
    cache: "no-cache",
  },
  "/static/style.css": { type: "text/css", body: text("./static/style.css"), cache: "no-cache" },
  // The version is pinned in deno.lock, so a browser may keep these for a day.
  "/static/uplot.js": { type: "text/javascript", body: uplotScript, cache: "max-age=86400" },
  "/static/uplot.css": { type: "text/css", body: uplotStyle, cache: "max-age=86400" },
};

/** Options of {@linkcode Dashboard}. */
export interface DashboardOptions {
  /** Milliseconds between batches (stats samples and list changes). @default 1000 */
  readonly tickMs?: number;
  /** Samples kept for the charts. @default 300 (five minutes at one a second) */
  readonly history?: number;
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
  /** The devices it lists. */
  readonly roster: Roster;
  /** The charts' figures. */
  readonly sampler: StatsSampler;
  readonly #manager: Manager;
  readonly #metrics: (request: Request) => Response;
  readonly #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  readonly #ticker: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(manager: Manager, options: DashboardOptions = {}) {
    this.#manager = manager;
    this.#metrics = metricsHandler(manager);
    this.roster = new Roster(manager);
    this.sampler = new StatsSampler(manager, { capacity: options.history ?? 300 });
    this.sampler.sample();
    this.#ticker = setInterval(() => this.#tick(), options.tickMs ?? 1000);
  }

  /** The HTTP handler. */
  readonly handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const get = request.method === "GET" || request.method === "HEAD";
    if (get && url.pathname === "/") return this.#page(url);
    if (get && Object.hasOwn(assets, url.pathname)) {
      const asset = assets[url.pathname];
      return new Response(asset.body, {
        headers: { "content-type": `${asset.type}; charset=utf-8`, "cache-control": asset.cache },
      });
    }
    if (get && url.pathname === "/devices") {
      return html(renderList(this.#manager.validTypes, this.#list(url)));
    }
    if (get && url.pathname === "/api/devices") {
      const list = this.#list(url);
      return Response.json({ ...list, query: undefined, counts: this.roster.counts() });
    }
    if (get && url.pathname === "/events") return this.#events();
    if (get && url.pathname === "/metrics") return this.#metrics(request);
    if (request.method === "POST" && url.pathname === "/api/send") {
      // A command may only come from this dashboard's own page: another site's form (CSRF)
      // carries its own Origin, and the browser always sends one with a cross-site POST.
      const origin = request.headers.get("origin");
      if (origin !== null && origin !== url.origin) {
        return new Response("Forbidden: a command from another origin", { status: 403 });
      }
      return await this.#send(request);
    }
    return new Response("Not found", { status: 404 });
  };

  /** Stops sampling and following the fleet, and ends every event stream. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ticker);
    for (const stream of this.#streams) {
      try {
        stream.close();
      } catch { /* already closed by the browser */ }
    }
    this.#streams.clear();
    await this.roster.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #list(url: URL) {
    return this.roster.query(parseQuery(url.searchParams, this.#manager.validTypes));
  }

  /** One batch: a stats sample, the counts and what changed in the list. */
  #tick(): void {
    const sample = this.sampler.sample();
    const { changed, membership } = this.roster.takeChanges();
    if (this.#streams.size === 0) return;
    const totals = this.sampler.totals;
    this.#publish("tick", {
      sample,
      totals,
      now: renderNow(sample, totals),
      counts: this.roster.counts(),
      changed: changed.length > MAX_NAMED_CHANGES ? null : changed,
      membership,
    });
  }

  #publish(event: string, data: unknown): void {
    const bytes = encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    for (const stream of this.#streams) {
      // A tab that stopped reading (asleep, stalled) would otherwise hold every batch since.
      // Erroring the stream drops what it holds (closing would wait for it to be read).
      if ((stream.desiredSize ?? 0) < -MAX_QUEUED_BATCHES) {
        log.warning("Dropping an event stream that is {queued} batches behind", {
          queued: -(stream.desiredSize ?? 0),
        });
        this.#streams.delete(stream);
        stream.error(new Error("the browser stopped reading its event stream"));
        continue;
      }
      try {
        stream.enqueue(bytes);
      } catch {
        this.#streams.delete(stream);
      }
    }
  }

  #page(url: URL): Response {
    const reached = url.searchParams.get("reached");
    const result: SendResult | undefined = reached === null ? undefined : {
      reached: Number(reached),
      kept: Number(url.searchParams.get("kept") ?? 0),
      to: url.searchParams.get("to") ?? "",
      message: url.searchParams.get("message") ?? "",
    };
    return html(renderPage({
      types: this.#manager.validTypes,
      counts: this.roster.counts(),
      list: this.#list(url),
      sample: this.sampler.history.at(-1),
      totals: this.sampler.totals,
      result,
    }));
  }

  #events(): Response {
    let controller: ReadableStreamDefaultController<Uint8Array>;
    const history = {
      capacity: this.sampler.capacity,
      samples: this.sampler.history,
      totals: this.sampler.totals,
      now: renderNow(this.sampler.history.at(-1), this.sampler.totals),
      counts: this.roster.counts(),
    };
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        if (this.#closed) return c.close();
        this.#streams.add(c);
        c.enqueue(encoder.encode(`event: history\ndata: ${JSON.stringify(history)}\n\n`));
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
    if (!message) return answer(request, 400, { error: "message is required" });
    let result: SendResult;
    if (target === "all") {
      result = { message, to: "all devices", reached: await this.#manager.sendAll(message) };
    } else if (target === "type" && this.#manager.validTypes.includes(field("type"))) {
      const type = field("type");
      result = {
        message,
        to: `every ${type}`,
        reached: await this.#manager.sendType(type, message),
      };
    } else if (target === "device" && field("uuid") !== "") {
      const uuid = field("uuid").toLowerCase();
      const view: DeviceView | undefined = this.roster.get(uuid);
      const to = view ? `${view.name} (${uuid.slice(0, 8)})` : `device ${uuid.slice(0, 8)}`;
      if (this.#manager.get(uuid)) {
        result = { message, to, reached: await this.#manager.send(uuid, message) };
      } else {
        // Away: kept for it and delivered, in order, when it is back within the hour.
        const kept = await this.#manager.send(uuid, message, { ttl: KEEP_SECONDS });
        result = { message, to, reached: 0, kept };
      }
    } else {
      return answer(request, 400, { error: "target must be all, type or device" });
    }
    log.info("Sent {message} to {to}: {reached} reached, {kept} kept", {
      ...result,
      kept: result.kept ?? 0,
    });
    if (request.headers.get("accept")?.includes("application/json")) {
      return Response.json({ ...result, text: describeSend(result) });
    }
    // Back to the page the form was on (its query read and written again, nothing else).
    const back = queryParams(
      parseQuery(new URLSearchParams(field("back")), this.#manager.validTypes),
    );
    for (const [key, value] of Object.entries(result)) back.set(key, String(value));
    return new Response(null, { status: 303, headers: { location: `/?${back}` } });
  }
}

function html(body: string): Response {
  return new Response(body, { headers: { "content-type": "text/html; charset=utf-8" } });
}

function answer(request: Request, status: number, body: { error: string }): Response {
  if (request.headers.get("accept")?.includes("application/json")) {
    return Response.json(body, { status });
  }
  return new Response(body.error, { status });
}
