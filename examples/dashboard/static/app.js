// Progressive enhancement for the dashboard: the page works without this file
// (every control is a plain form). With it, forms are sent with fetch and the
// device list stays live over Server-Sent Events, using HTML fragments the
// server renders, so there is one renderer.

const status = document.getElementById("status");

function setCounts(counts) {
  for (const [type, { label, count }] of Object.entries(counts)) {
    if (type === "total") {
      document.getElementById("total").textContent = label;
      document.getElementById("total").dataset.count = String(count);
      continue;
    }
    const heading = document.querySelector(`#type-${CSS.escape(type)} .count`);
    if (heading) heading.textContent = label;
  }
}

function upsert({ uuid, type, html }) {
  const existing = document.getElementById(`device-${uuid}`);
  // Leave an item alone while the user is typing in it; the next update refreshes it.
  if (existing?.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
    return;
  }
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const item = template.content.firstElementChild;
  if (existing) {
    item.querySelector("details").open = existing.querySelector("details")?.open ?? false;
    existing.replaceWith(item);
  } else {
    document.querySelector(`#type-${CSS.escape(type)} .devices`)?.append(item);
  }
}

const events = new EventSource("/events");
events.addEventListener("device", (event) => {
  const update = JSON.parse(event.data);
  upsert(update);
  setCounts(update.counts);
});
events.addEventListener("gone", (event) => {
  const { uuid, counts } = JSON.parse(event.data);
  document.getElementById(`device-${uuid}`)?.remove();
  setCounts(counts);
});

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
    const devices = result.reached === 1 ? "device" : "devices";
    status.textContent =
      `Sent "${result.message}" to ${result.to}: reached ${result.reached} ${devices}.`;
    for (const input of form.querySelectorAll('input[name="message"]:not([type="hidden"])')) {
      input.value = "";
    }
  } catch (error) {
    status.textContent = `Sending failed: ${error.message}`;
  }
});
