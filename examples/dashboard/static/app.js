// Progressive enhancement for the dashboard: the page works without this file (the list is
// paged by links and filtered by a GET form, every command is a plain form). With it, forms are
// sent with fetch, the charts are drawn, and the page follows the fleet over Server-Sent Events:
// one batch a second from the server, applied in one animation frame, and the device list
// fetched again (as a fragment the server renders, so there is one renderer) only when a batch
// names a device on the page or devices came or went.

const status = document.getElementById("status");
const list = document.getElementById("device-list");
const filters = document.getElementById("filters");
const chartsRoot = document.getElementById("charts");
const types = [...document.querySelectorAll("#broadcasts .type[data-type]")]
  .map((section) => section.dataset.type);

/** The list's query, as the URL spells it (without a send's result). */
let query = new URLSearchParams(location.search);
for (const key of ["reached", "kept", "to", "message"]) query.delete(key);

// ---- Batched updates from the server ----

let charts = null;
let waitingSamples = [];
let capacity = 300;
let latest = null;
let frame = 0;

function setCounts(counts) {
  let connected = 0;
  let away = 0;
  for (const [type, count] of Object.entries(counts)) {
    connected += count.connected;
    away += count.away;
    const section = document.getElementById(`type-${type}`);
    if (!section) continue;
    section.querySelector(".count").textContent = devices(count.connected);
    section.querySelector(".away-count").textContent = `${count.away.toLocaleString("en-US")} away`;
  }
  const total = document.getElementById("total");
  total.textContent = devices(connected);
  total.dataset.count = String(connected);
  document.getElementById("away").textContent = away.toLocaleString("en-US");
}

function devices(count) {
  return `${count.toLocaleString("en-US")} device${count === 1 ? "" : "s"}`;
}

function setNow(now) {
  for (const [id, text] of Object.entries(now)) {
    const element = document.querySelector(`[data-now="${id}"]`);
    if (element) element.textContent = text;
  }
}

/** Applies the latest batch's figures; called at most once per animation frame. */
function applyBatch() {
  frame = 0;
  if (!latest) return;
  setCounts(latest.counts);
  setNow(latest.now);
  latest = null;
}

function onBatch(batch) {
  latest = batch;
  frame ||= requestAnimationFrame(applyBatch);
}

const events = new EventSource("/events");
events.addEventListener("history", (event) => {
  const history = JSON.parse(event.data);
  onBatch(history);
  capacity = history.capacity;
  if (charts) charts.replace(history.samples);
  else waitingSamples = history.samples;
  performance.mark("dashboard:live");
  document.documentElement.dataset.live = "true";
});
events.addEventListener("tick", (event) => {
  const tick = JSON.parse(event.data);
  onBatch(tick);
  if (charts) charts.push(tick.sample);
  else waitingSamples.push(tick.sample);
  if (needsRefresh(tick)) refreshList();
});

// The charts load apart, so the list works even if they cannot be drawn.
import("/static/charts.js").then(({ Charts }) => {
  charts = new Charts(chartsRoot, types, waitingSamples, capacity);
  waitingSamples = [];
  chartsRoot.classList.add("drawn");
  performance.mark("dashboard:charts");
}).catch((error) => console.error("The charts could not be drawn", error));

// ---- The device list ----

function needsRefresh({ changed, membership }) {
  if (membership || changed === null) return true;
  if (changed.length === 0) return false;
  if (query.get("state")) return true; // a change of state may move a device in or out
  return changed.some((uuid) => document.getElementById(`device-${uuid}`));
}

let fetching = false;
let again = false;

/** Fetches the list region for the current query; one request at a time, the last one wins. */
async function refreshList() {
  if (fetching) {
    again = true;
    return;
  }
  fetching = true;
  try {
    const response = await fetch(`/devices?${query}`);
    if (response.ok) morphList(await response.text());
  } catch (error) {
    console.warn("The device list could not be refreshed", error);
  } finally {
    fetching = false;
    if (again) {
      again = false;
      refreshList();
    }
  }
}

/**
 * Swaps in a new list region. When the same devices are shown, only rows whose revision changed
 * are replaced (a row holding the focus is left for the next update, an open row stays open);
 * otherwise the whole region is replaced.
 */
function morphList(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  const fresh = [...template.content.querySelectorAll("li.device")];
  const current = [...list.querySelectorAll("li.device")];
  const open = new Set(
    current.filter((item) => item.querySelector("details")?.open).map((item) => item.id),
  );
  const sameRows = fresh.length === current.length &&
    fresh.every((item, i) => item.id === current[i].id);
  if (!sameRows) {
    for (const item of fresh) {
      if (open.has(item.id)) item.querySelector("details").open = true;
    }
    list.replaceChildren(template.content);
    return;
  }
  fresh.forEach((item, i) => {
    const old = current[i];
    if (old.dataset.rev === item.dataset.rev || typingIn(old)) return;
    if (open.has(item.id)) item.querySelector("details").open = true;
    const focused = focusables(old).indexOf(document.activeElement);
    old.replaceWith(item);
    if (focused >= 0) focusables(item)[focused]?.focus();
  });
  for (const selector of ["#showing", ".pager"]) {
    const old = list.querySelector(selector);
    const item = template.content.querySelector(selector);
    if (old && item) old.replaceWith(item);
  }
  for (const heading of template.content.querySelectorAll(".group")) {
    const old = list.querySelector(`.group[data-type="${CSS.escape(heading.dataset.type)}"] h3`);
    old?.replaceWith(heading.querySelector("h3"));
  }
}

/** The user is typing in this row: leave it for the next update. */
function typingIn(row) {
  const active = document.activeElement;
  return row.contains(active) && active.matches("input:not([type=range]), select, textarea");
}

function focusables(row) {
  return [...row.querySelectorAll("button, input, select, summary, a")];
}

function applyQuery(next) {
  query = next;
  const text = query.toString();
  history.replaceState(null, "", text ? `/?${text}` : "/");
  refreshList();
}

function queryFromForm() {
  const next = new URLSearchParams();
  for (const [key, value] of new FormData(filters)) {
    if (typeof value === "string" && value.trim() !== "") next.set(key, value.trim());
  }
  return next;
}

let typing = 0;
filters.addEventListener("input", (event) => {
  clearTimeout(typing);
  // Searching waits for a pause in typing; a select applies at once.
  typing = setTimeout(() => applyQuery(queryFromForm()), event.target.type === "search" ? 200 : 0);
});
filters.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(typing);
  applyQuery(queryFromForm());
});

list.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-page]");
  if (!link) return;
  event.preventDefault();
  const next = new URLSearchParams(query);
  next.set("page", link.dataset.page);
  applyQuery(next);
  document.getElementById("devices").scrollIntoView({ block: "start" });
});

// ---- Sending ----

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("send")) return;
  event.preventDefault();
  const body = new FormData(form);
  if (event.submitter?.name) body.set(event.submitter.name, event.submitter.value);
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { accept: "application/json" },
      body,
    });
    const result = await response.json();
    if (!response.ok) throw new Error(result.error);
    status.textContent = result.text;
    for (const input of form.querySelectorAll('input[name="message"]:not([type="hidden"])')) {
      input.value = "";
    }
  } catch (error) {
    status.textContent = `Sending failed: ${error.message}`;
  }
});
