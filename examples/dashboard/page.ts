/**
 * Server-side HTML for the dashboard. The page works without JavaScript: the
 * device list is paged and filtered by a plain GET form, every command is a
 * plain form that posts to `/api/send`, and the charts' latest figures are
 * printed under each chart. With JavaScript, the same forms are sent with
 * `fetch`, the list region is fetched again as a fragment rendered here (one
 * renderer, no client-side templates) and the charts are drawn in the browser.
 *
 * @module
 */

import {
  type Counts,
  type DeviceView,
  type ListPage,
  type ListQuery,
  queryParams,
  STATE_FILTERS,
} from "./roster.ts";
import type { Sample, Totals } from "./sampler.ts";

/** The result of a send, shown after a form post. */
export interface SendResult {
  readonly to: string;
  readonly message: string;
  readonly reached: number;
  /** Messages kept for a device that is away, delivered when it is back. */
  readonly kept?: number;
}

const escapes: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => escapes[char]);
}

const number = (count: number) => count.toLocaleString("en-US");
const plural = (count: number, word: string) => `${number(count)} ${word}${count === 1 ? "" : "s"}`;
const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** A human summary of a device's state. */
export function describeState(
  type: string,
  state: Readonly<Record<string, unknown>> | null,
): string {
  if (!state) return "state unknown";
  if (typeof state.error === "string") return `error: ${state.error}`;
  if (type === "light" && typeof state.on === "boolean") {
    const brightness = typeof state.brightness === "number"
      ? `, brightness ${state.brightness}%`
      : "";
    return `${state.on ? "on" : "off"}${brightness}`;
  }
  if (type === "lock" && typeof state.locked === "boolean") {
    return state.locked ? "locked" : "unlocked";
  }
  const { name: _name, ...rest } = state;
  return JSON.stringify(rest);
}

/** What a send reports, on the page and from the JSON API. */
export function describeSend(result: SendResult): string {
  const sent = `Sent ${JSON.stringify(result.message)} to ${result.to}`;
  if (result.kept) return `${sent}: kept until it is back.`;
  return `${sent}: reached ${plural(result.reached, "device")}.`;
}

function sendForm(
  target: string,
  fields: Record<string, string>,
  back: string,
  inner: string,
): string {
  const hidden = Object.entries({ target, ...fields, back })
    .map(([name, value]) =>
      `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`
    )
    .join("");
  return `<form method="post" action="/api/send" class="send">${hidden}${inner}</form>`;
}

const button = (command: string, label: string) =>
  `<button type="submit" name="message" value="${command}">${label}</button>`;

/** The one-click commands shown on a device's row. */
function quickCommands(view: DeviceView, back: string): string {
  const device = { uuid: view.uuid };
  if (view.type === "light") return sendForm("device", device, back, button("toggle", "Toggle"));
  if (view.type === "lock") {
    return sendForm("device", device, back, button("lock", "Lock") + button("unlock", "Unlock"));
  }
  return "";
}

/** The rest of a device's commands, in its details. */
function moreCommands(view: DeviceView, back: string): string {
  const device = { uuid: view.uuid };
  const id = `msg-${escapeHtml(view.uuid)}`;
  let controls = "";
  if (view.type === "light") {
    const brightness = typeof view.state?.brightness === "number" ? view.state.brightness : 100;
    controls += sendForm(
      "device",
      device,
      back,
      `<label>Brightness <input type="range" name="brightness" min="0" max="100" step="10" value="${
        escapeHtml(brightness)
      }"></label> <button type="submit">Set</button>`,
    );
  }
  controls += sendForm(
    "device",
    device,
    back,
    `<label for="${id}">Command</label> <input id="${id}" name="message" required> <button type="submit">Send</button>`,
  );
  return controls;
}

const json = (value: unknown) => JSON.stringify(value);
const time = (ms: number) => {
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC</time>`;
};

function presence(view: DeviceView): string {
  if (view.connected) return `<span class="presence connected">connected</span>`;
  const why = view.lastEnd ? ` (${escapeHtml(view.lastEnd.reason)})` : "";
  return `<span class="presence away">away${why}</span>`;
}

/**
 * One device as a list item: a row with its name, state, presence and quick
 * commands, and its details and other commands one click away. Also what the
 * list fragment is made of.
 */
export function renderDevice(view: DeviceView, back = ""): string {
  const uuid = escapeHtml(view.uuid);
  const pending = Object.keys(view.delta).length > 0;
  const details = [
    ["UUID", `<code>${uuid}</code>`],
    ["Type", escapeHtml(view.type)],
    [
      "Address",
      view.address ? `${escapeHtml(view.address)} (protocol mode ${view.mode})` : "not seen here",
    ],
    ["Data", `<code>${escapeHtml(json(view.data))}</code>`],
    ["State", `<code>${escapeHtml(json(view.state ?? {}))}</code>`],
    ["Desired", `<code>${escapeHtml(json(view.desired))}</code>`],
    ...(pending ? [["Still to do", `<code>${escapeHtml(json(view.delta))}</code>`]] : []),
    ...(view.lastSeen ? [["Last seen", time(view.lastSeen)]] : []),
    ...(view.lastEnd
      ? [["Last end", `${escapeHtml(view.lastEnd.reason)}: ${escapeHtml(view.lastEnd.message)}`]]
      : []),
  ].map(([term, value]) => `<dt>${term}</dt><dd>${value}</dd>`).join("");
  return `<li class="device${
    view.connected ? "" : " is-away"
  }" id="device-${uuid}" data-uuid="${uuid}" data-rev="${view.revision}">
<div class="row"><h4><span class="name">${escapeHtml(view.name)}</span> <code>${
    escapeHtml(view.uuid.slice(0, 8))
  }</code></h4>
<p class="state" data-state="${escapeHtml(json(view.state ?? {}))}">${
    escapeHtml(describeState(view.type, view.state))
  }${
    pending
      ? ` <span class="pending" title="desired state not reached">→ ${
        escapeHtml(json(view.delta))
      }</span>`
      : ""
  }</p>
${presence(view)}
<div class="quick">${quickCommands(view, back)}</div></div>
<details><summary>Details and commands</summary><dl>${details}</dl>
<div class="controls">${moreCommands(view, back)}</div></details>
</li>`;
}

function option(value: string, label: string, selected: string): string {
  return `<option value="${escapeHtml(value)}"${value === selected ? " selected" : ""}>${
    escapeHtml(label)
  }</option>`;
}

/** The filter form: a GET form, so filtering and paging work without JavaScript. */
function renderFilters(types: readonly string[], query: ListQuery): string {
  const typeOptions = [option("", "All types", query.type)]
    .concat(types.map((type) => option(type, `${capitalized(type)}s`, query.type))).join("");
  const stateOptions = [option("", "Any state", query.state)]
    .concat(Object.entries(STATE_FILTERS).map(([key, label]) => option(key, label, query.state)))
    .join("");
  const presenceOptions = [
    option("", "Connected or away", query.presence),
    option("connected", "Connected", query.presence),
    option("away", "Away", query.presence),
  ].join("");
  const per = query.perPage === 50
    ? ""
    : `<input type="hidden" name="per" value="${query.perPage}">`;
  return `<form method="get" action="/" class="filters" id="filters" role="search">
<span class="field search"><label for="search">Search</label> <input type="search" id="search" name="q" value="${
    escapeHtml(query.search)
  }" placeholder="name, UUID or address" autocomplete="off"></span>
<span class="field"><label for="filter-type">Type</label> <select id="filter-type" name="type">${typeOptions}</select></span>
<span class="field"><label for="filter-state">State</label> <select id="filter-state" name="state">${stateOptions}</select></span>
<span class="field"><label for="filter-presence">Presence</label> <select id="filter-presence" name="presence">${presenceOptions}</select></span>
${per}<button type="submit">Filter</button>
</form>`;
}

function pageLink(query: ListQuery, page: number, label: string, rel = ""): string {
  const params = queryParams(query, { page }).toString();
  return `<a href="/${params ? `?${params}` : ""}" data-page="${page}"${
    rel ? ` rel="${rel}"` : ""
  }>${label}</a>`;
}

function renderPager(list: ListPage): string {
  if (list.pages <= 1) return "";
  const { query, page, pages } = list;
  const around = new Set([1, page - 1, page, page + 1, pages].filter((n) => n >= 1 && n <= pages));
  const numbers = [...around].sort((a, b) => a - b);
  const links: string[] = [];
  numbers.forEach((n, i) => {
    if (i > 0 && n - numbers[i - 1] > 1) links.push(`<span class="gap">…</span>`);
    links.push(
      n === page ? `<span aria-current="page">${n}</span>` : pageLink(query, n, String(n)),
    );
  });
  const previous = page > 1 ? pageLink(query, page - 1, "← Previous", "prev") : "";
  const next = page < pages ? pageLink(query, page + 1, "Next →", "next") : "";
  return `<nav class="pager" aria-label="Pages">${previous} ${links.join(" ")} ${next}</nav>`;
}

/**
 * The device list region: what is shown, the rows grouped by type, and the
 * pager. Served alone at `/devices` for the page's script to swap in.
 */
export function renderList(types: readonly string[], list: ListPage): string {
  const back = queryParams(list.query, { page: list.page }).toString();
  const first = (list.page - 1) * list.query.perPage + 1;
  const shown = list.matching === 0
    ? "No device matches."
    : `Showing ${number(first)}–${number(first + list.rows.length - 1)} of ${
      plural(list.matching, "device")
    }.`;
  const groups = types.map((type) => {
    const rows = list.rows.filter((view) => view.type === type);
    if (rows.length === 0) return "";
    return `<section class="group" data-type="${escapeHtml(type)}">
<h3>${escapeHtml(capitalized(type))}s <small>${
      number(list.matchingByType[type] ?? 0)
    } matching</small></h3>
<ul class="devices">${rows.map((view) => renderDevice(view, back)).join("\n")}</ul>
</section>`;
  }).join("\n");
  return `<p class="showing" id="showing" data-matching="${list.matching}" data-page="${list.page}" data-pages="${list.pages}">${shown}</p>
${groups}
${renderPager(list)}`;
}

/** The figures printed under the charts (what a page without JavaScript shows of them). */
export function renderNow(sample: Sample | undefined, totals: Totals): Record<string, string> {
  const reasons = (counts: Readonly<Record<string, number>>) => {
    const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b));
    return entries.length === 0
      ? "none"
      : entries.map(([reason, count]) => `${reason} ${number(count)}`).join(", ");
  };
  const rate = (value: number | null | undefined) =>
    value === null || value === undefined ? "–" : value.toFixed(1);
  const ms = (value: number | null | undefined) =>
    value === null || value === undefined ? "–" : `${value.toFixed(1)} ms`;
  const byType = Object.entries(sample?.byType ?? {})
    .map(([type, count]) => `${type}s ${number(count)}`).join(", ");
  const rtt = sample?.rttMs;
  return {
    devices: `${number(sample?.connected ?? 0)} now${byType ? ` (${byType})` : ""}`,
    messages: `in ${rate(sample?.receivedPerSecond)}/s, out ${rate(sample?.sentPerSecond)}/s; ${
      number(totals.received)
    } in and ${number(totals.sent)} out in all`,
    rtt: rtt?.p50 === null || rtt === undefined
      ? "no heartbeat answered yet"
      : `p50 ${ms(rtt.p50)}, p90 ${ms(rtt.p90)}, p99 ${ms(rtt.p99)}`,
    problems: `since start: disconnects ${reasons(totals.disconnects)}; refused handshakes ${
      reasons(totals.refused)
    }`,
  };
}

const CHARTS = [
  ["devices", "Devices connected"],
  ["messages", "Messages per second"],
  ["rtt", "Heartbeat round trips (last two rounds)"],
  ["problems", "Disconnects and refused handshakes per second"],
] as const;

function renderCharts(now: Record<string, string>): string {
  return CHARTS.map(([id, caption]) =>
    `<figure class="chart" id="chart-${id}">
<figcaption>${caption}</figcaption>
<div class="plot" aria-hidden="true"></div>
<p class="now" data-now="${id}">${escapeHtml(now[id])}</p>
</figure>`
  ).join("\n");
}

function renderTypeCard(type: string, counts: Counts, back: string): string {
  const count = counts[type] ?? { connected: 0, away: 0 };
  const id = `broadcast-${escapeHtml(type)}`;
  return `<section class="type" id="type-${escapeHtml(type)}" data-type="${
    escapeHtml(type)
  }" aria-labelledby="heading-${escapeHtml(type)}">
<h2 id="heading-${escapeHtml(type)}">${escapeHtml(capitalized(type))}s <small class="count">${
    renderCount(count.connected)
  }</small> <small class="away-count">${number(count.away)} away</small></h2>
${
    sendForm(
      "type",
      { type },
      back,
      `<label for="${id}">Broadcast to every ${
        escapeHtml(type)
      }</label> <input id="${id}" name="message" required> <button type="submit">Send to ${
        escapeHtml(type)
      }s</button>`,
    )
  }
</section>`;
}

/** The count shown next to a type's heading. */
export function renderCount(count: number): string {
  return plural(count, "device");
}

/** Everything the page is drawn from. */
export interface PageModel {
  readonly types: readonly string[];
  readonly counts: Counts;
  readonly list: ListPage;
  readonly sample: Sample | undefined;
  readonly totals: Totals;
  readonly result?: SendResult;
}

/** The whole page. */
export function renderPage(model: PageModel): string {
  const { types, counts, list } = model;
  const back = queryParams(list.query, { page: list.page }).toString();
  const connected = Object.values(counts).reduce((sum, count) => sum + count.connected, 0);
  const away = Object.values(counts).reduce((sum, count) => sum + count.away, 0);
  const status = model.result ? describeSend(model.result) : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>iot-manager dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/uplot.css">
<link rel="stylesheet" href="/static/style.css">
<script defer src="/static/uplot.js"></script>
<script type="module" src="/static/app.js"></script>
</head>
<body>
<header>
  <h1>iot-manager dashboard</h1>
  <p><span id="total" data-count="${connected}">${
    plural(connected, "device")
  }</span> connected, <span id="away">${
    number(away)
  }</span> away · <a href="/metrics">/metrics</a></p>
</header>
<main>
  <p id="status" role="status" aria-live="polite">${escapeHtml(status)}</p>
  <section id="charts" aria-label="The fleet over time">
${renderCharts(renderNow(model.sample, model.totals))}
  </section>
  <section id="broadcasts" aria-label="Broadcasts">
  <section class="type" id="type-all" aria-labelledby="heading-all">
    <h2 id="heading-all">All devices</h2>
    ${
    sendForm(
      "all",
      {},
      back,
      `<label for="broadcast-all">Broadcast to every device</label> <input id="broadcast-all" name="message" required> <button type="submit">Send to all</button>`,
    )
  }
  </section>
  ${types.map((type) => renderTypeCard(type, counts, back)).join("\n")}
  </section>
  <section id="devices" aria-labelledby="heading-devices">
  <h2 id="heading-devices">Devices</h2>
  ${renderFilters(types, list.query)}
  <div id="device-list" aria-live="off">
${renderList(types, list)}
  </div>
  </section>
</main>
</body>
</html>`;
}
