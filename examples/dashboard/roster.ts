/**
 * Every device the dashboard lists, connected or away, kept up to date from
 * the manager's async iterators: `manager.clients()` for arrivals (and each
 * client's `closed` for departures), `manager.messages()` for JSON state
 * answers, and `manager.state.changes()` for reports, desired state and what
 * the manager remembers of devices that are away. Queries filter, search and
 * page it; what changed since the last look is collected for one batched
 * update per tick.
 *
 * @module
 */

import type { Client, DeviceState, JsonObject, Manager } from "@iot-manager/core";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["iot-manager", "dashboard"]);

/** One device as the dashboard shows it. */
export interface DeviceView {
  readonly uuid: string;
  readonly type: string;
  /** `data.name` when the device gives one, else its type and the start of its UUID. */
  readonly name: string;
  /** Its handshake data. */
  readonly data: Readonly<Record<string, unknown>>;
  /** Its latest state: its last JSON answer or report; null before either. */
  readonly state: Readonly<Record<string, unknown>> | null;
  /** `host:port` of its connection (the last one, when away); "" if not seen by this process. */
  readonly address: string;
  /** Protocol mode of that connection; 0 if not seen by this process. */
  readonly mode: number;
  readonly connected: boolean;
  /** What the application wants it to be (`manager.state`), and what it still has to do. */
  readonly desired: JsonObject;
  readonly delta: JsonObject;
  /** When it was last connected or heard from (ms since the epoch); 0 if unknown. */
  readonly lastSeen: number;
  /** Why its last connection ended. */
  readonly lastEnd?: { readonly reason: string; readonly message: string };
  /** Grows with every change, so a page can tell which rows to redraw. */
  readonly revision: number;
}

/** A filtered, searched page of the list, as the query string spells it. */
export interface ListQuery {
  /** Text to find in a device's name, UUID, type or address (`q`), in any case. */
  readonly search: string;
  /** One type, or "" for all. */
  readonly type: string;
  /** One of {@linkcode STATE_FILTERS}' keys, or "" for any. */
  readonly state: string;
  readonly presence: "" | "connected" | "away";
  /** 1-based. */
  readonly page: number;
  readonly perPage: number;
}

/** The state filters, and how the page names them. */
export const STATE_FILTERS: Readonly<Record<string, string>> = {
  on: "on",
  off: "off",
  locked: "locked",
  unlocked: "unlocked",
  pending: "desired state not reached",
  error: "reporting an error",
  unknown: "state unknown",
};

/** Rows per page unless the query says otherwise, and the most it may ask for. */
export const PER_PAGE = 50;
const MAX_PER_PAGE = 200;

/** Reads a query from a URL's search parameters; anything unknown falls back to "all". */
export function parseQuery(params: URLSearchParams, types: readonly string[]): ListQuery {
  const text = (name: string) => (params.get(name) ?? "").trim();
  const whole = (name: string, fallback: number, max: number) => {
    const value = Number(text(name));
    return Number.isInteger(value) && value >= 1 ? Math.min(value, max) : fallback;
  };
  const presence = text("presence");
  return {
    search: text("q").slice(0, 200),
    type: types.includes(text("type")) ? text("type") : "",
    state: Object.hasOwn(STATE_FILTERS, text("state")) ? text("state") : "",
    presence: presence === "connected" || presence === "away" ? presence : "",
    page: whole("page", 1, Number.MAX_SAFE_INTEGER),
    perPage: whole("per", PER_PAGE, MAX_PER_PAGE),
  };
}

/** The query as URL search parameters, leaving out what is at its default. */
export function queryParams(query: ListQuery, changes: Partial<ListQuery> = {}): URLSearchParams {
  const { search, type, state, presence, page, perPage } = { ...query, ...changes };
  const params = new URLSearchParams();
  if (search) params.set("q", search);
  if (type) params.set("type", type);
  if (state) params.set("state", state);
  if (presence) params.set("presence", presence);
  if (page > 1) params.set("page", String(page));
  if (perPage !== PER_PAGE) params.set("per", String(perPage));
  return params;
}

/** One page of matching devices. */
export interface ListPage {
  readonly query: ListQuery;
  /** The rows of the page, grouped: sorted by type (in `validTypes` order), then name. */
  readonly rows: readonly DeviceView[];
  /** Devices matching the query in all, and by type. */
  readonly matching: number;
  readonly matchingByType: Readonly<Record<string, number>>;
  /** The page shown (the query's, within range) and how many there are (at least 1). */
  readonly page: number;
  readonly pages: number;
}

/** Devices per type, connected and away. */
export type Counts = Record<string, { connected: number; away: number }>;

/** What changed since the last {@linkcode Roster.takeChanges}. */
export interface Changes {
  /** Devices whose row changed. */
  readonly changed: readonly string[];
  /** Devices arrived, left or became known: which devices match a query may differ. */
  readonly membership: boolean;
}

/** The state words a device matches in the state filter. */
export function stateWords(view: DeviceView): string[] {
  const words: string[] = [];
  const state = view.state;
  if (!state) words.push("unknown");
  else if (typeof state.error === "string") words.push("error");
  else if (view.type === "light" && typeof state.on === "boolean") {
    words.push(state.on ? "on" : "off");
  } else if (view.type === "lock" && typeof state.locked === "boolean") {
    words.push(state.locked ? "locked" : "unlocked");
  }
  if (Object.keys(view.delta).length > 0) words.push("pending");
  return words;
}

/** A device as the roster keeps it: the view's fields, changed in place, and its client. */
type Entry = { -readonly [K in keyof DeviceView]: DeviceView[K] } & {
  client?: Client;
  haystack: string;
};

const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

/**
 * The dashboard's list of devices, following `manager`.
 *
 * @example
 * ```ts ignore
 * await using roster = new Roster(manager);
 * const page = roster.query(parseQuery(new URLSearchParams("q=lock&presence=away"), ["lock"]));
 * ```
 */
export class Roster implements AsyncDisposable {
  readonly #manager: Manager;
  readonly #entries = new Map<string, Entry>();
  readonly #changed = new Set<string>();
  #membership = false;
  /** The entries in list order; rebuilt after a device is added or renamed. */
  #order: Entry[] | null = null;
  readonly #stop = new AbortController();
  readonly #tasks: Promise<void>[];

  constructor(manager: Manager) {
    this.#manager = manager;
    // Devices the manager remembers (a persistent store keeps them across restarts).
    for (const state of manager.state.all()) this.#fromState(state);
    this.#tasks = [this.#followClients(), this.#followMessages(), this.#followState()];
  }

  /** How many devices it lists. */
  get size(): number {
    return this.#entries.size;
  }

  /** One device, or undefined. */
  get(uuid: string): DeviceView | undefined {
    const entry = this.#entries.get(uuid);
    return entry && viewOf(entry);
  }

  /** Every device, in list order. */
  all(): DeviceView[] {
    return this.#sorted().map(viewOf);
  }

  /** Devices per type, connected and away (every valid type, even with none). */
  counts(): Counts {
    const counts: Counts = {};
    for (const type of this.#manager.validTypes) counts[type] = { connected: 0, away: 0 };
    for (const entry of this.#entries.values()) {
      const count = counts[entry.type];
      if (count) entry.connected ? count.connected++ : count.away++;
    }
    return counts;
  }

  /** The page of devices matching `query`. */
  query(query: ListQuery): ListPage {
    const needle = query.search.toLowerCase().replace(/\s+/g, " ");
    const matchingByType: Record<string, number> = {};
    for (const type of this.#manager.validTypes) matchingByType[type] = 0;
    const matches: Entry[] = [];
    for (const entry of this.#sorted()) {
      if (query.type && entry.type !== query.type) continue;
      if (query.presence === "connected" && !entry.connected) continue;
      if (query.presence === "away" && entry.connected) continue;
      if (query.state && !stateWords(entry).includes(query.state)) continue;
      if (needle && !entry.haystack.includes(needle)) continue;
      matches.push(entry);
      matchingByType[entry.type]++;
    }
    const pages = Math.max(1, Math.ceil(matches.length / query.perPage));
    const page = Math.min(query.page, pages);
    const start = (page - 1) * query.perPage;
    return {
      query,
      rows: matches.slice(start, start + query.perPage).map(viewOf),
      matching: matches.length,
      matchingByType,
      page,
      pages,
    };
  }

  /** What changed since the last call, and starts collecting afresh. */
  takeChanges(): Changes {
    const changes = { changed: [...this.#changed], membership: this.#membership };
    this.#changed.clear();
    this.#membership = false;
    return changes;
  }

  /** Stops following the manager. */
  async close(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#tasks);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #followClients(): Promise<void> {
    for await (const client of this.#manager.clients({ signal: this.#stop.signal })) {
      const entry = this.#entry(client.uuid, client.type);
      const name = nameOf(client.uuid, client.type, client.data);
      if (entry.name !== name || entry.type !== client.type) this.#order = null;
      Object.assign(entry, {
        client,
        type: client.type,
        name,
        data: client.data,
        state: stateOf(client.data), // the handshake data is its first report
        address: `${client.address.hostname}:${client.address.port}`,
        mode: client.mode,
        connected: true,
        lastSeen: Date.now(),
      });
      this.#touch(entry, true);
      // Ask for the live state; the answer comes back through request(), not messages().
      client.requestString("status", { timeout: 5 })
        .then((answer) => this.#answered(client, answer))
        .catch((error) =>
          log.debug("No status from {uuid}: {error}", { uuid: client.uuid, error })
        );
      client.closed.then(() => {
        if (entry.client !== client) return; // replaced by a newer connection meanwhile
        entry.client = undefined;
        entry.connected = false;
        entry.lastSeen = Date.now();
        this.#touch(entry, true);
      });
    }
  }

  async #followMessages(): Promise<void> {
    for await (const { client, text } of this.#manager.messages({ signal: this.#stop.signal })) {
      this.#answered(client, text);
    }
  }

  async #followState(): Promise<void> {
    for await (const change of this.#manager.state.changes({ signal: this.#stop.signal })) {
      this.#fromState(change.state, change.kind === "reported" || change.kind === "connected");
    }
  }

  /** A device's answer: a JSON object is its new state (without the `id` of a tagged answer). */
  #answered(client: Client, text: string): void {
    const entry = this.#entries.get(client.uuid);
    const state = stateOf(parseJson(text));
    if (!state || entry?.client !== client) return;
    const { id: _tag, ...rest } = state;
    entry.state = rest;
    this.#touch(entry);
  }

  #fromState(state: DeviceState, reported = false): void {
    if (!this.#manager.validTypes.includes(state.type)) return; // never seen, or not listed
    const known = this.#entries.has(state.uuid);
    const entry = this.#entry(state.uuid, state.type);
    const wasConnected = entry.connected;
    entry.desired = state.desired;
    entry.delta = state.delta;
    entry.lastSeen = Math.max(entry.lastSeen, state.lastSeen);
    entry.lastEnd = state.lastEnd;
    if (!entry.client) entry.connected = state.connected; // a client's own events say otherwise
    if (reported || entry.state === null) entry.state = state.reported;
    if (!known) {
      entry.data = state.reported;
      entry.name = nameOf(state.uuid, state.type, state.reported);
      this.#order = null;
    }
    this.#touch(entry, !known || entry.connected !== wasConnected);
  }

  #entry(uuid: string, type: string): Entry {
    let entry = this.#entries.get(uuid);
    if (!entry) {
      entry = {
        uuid,
        type,
        name: nameOf(uuid, type, {}),
        data: {},
        state: null,
        address: "",
        mode: 0,
        connected: false,
        desired: {},
        delta: {},
        lastSeen: 0,
        revision: 0,
        haystack: "",
      };
      this.#entries.set(uuid, entry);
      this.#order = null;
    }
    return entry;
  }

  #touch(entry: Entry, membership = false): void {
    entry.revision++;
    // One field a line, so a search does not match across two of them.
    entry.haystack = [entry.name, entry.uuid, entry.type, entry.address].join("\n").toLowerCase();
    this.#changed.add(entry.uuid);
    if (membership) this.#membership = true;
  }

  #sorted(): Entry[] {
    if (this.#order) return this.#order;
    const rank = new Map(this.#manager.validTypes.map((type, i) => [type, i]));
    this.#order = [...this.#entries.values()].sort((a, b) =>
      (rank.get(a.type) ?? rank.size) - (rank.get(b.type) ?? rank.size) ||
      collator.compare(a.name, b.name) || (a.uuid < b.uuid ? -1 : 1)
    );
    return this.#order;
  }
}

/** A copy of an entry's view: without its client, safe to keep or serialise. */
function viewOf({ client: _client, haystack: _haystack, ...view }: Entry): DeviceView {
  return view;
}

function nameOf(uuid: string, type: string, data: Readonly<Record<string, unknown>>): string {
  return typeof data.name === "string" && data.name.trim() !== ""
    ? data.name.trim()
    : `${type} ${uuid.slice(0, 8)}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A JSON object as a state, or null. */
function stateOf(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : null;
}
