/**
 * Server-side HTML for the dashboard. The page works without JavaScript: every
 * control is a plain form that posts to `/api/send`. With JavaScript, the same
 * forms are sent with `fetch` and the device list is kept live over SSE, using
 * fragments rendered here (one renderer, no client-side templates).
 *
 * @module
 */

/** What the page shows of one device. */
export interface DeviceView {
  readonly uuid: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  /** The device's latest reported state (its last JSON answer), if any. */
  readonly state: Record<string, unknown> | null;
  readonly address: string;
  readonly mode: number;
}

/** The result of a send, shown after a form post. */
export interface SendResult {
  readonly to: string;
  readonly message: string;
  readonly reached: number;
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

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;

/** A human summary of a device's state. */
export function describeState(type: string, state: Record<string, unknown> | null): string {
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
  return JSON.stringify(state);
}

function sendForm(target: string, fields: Record<string, string>, inner: string): string {
  const hidden = Object.entries({ target, ...fields })
    .map(([name, value]) =>
      `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`
    )
    .join("");
  return `<form method="post" action="/api/send" class="send">${hidden}${inner}</form>`;
}

function commandControls(view: DeviceView): string {
  const device = { uuid: view.uuid };
  const id = `msg-${view.uuid}`;
  const button = (command: string, label: string) =>
    `<button type="submit" name="message" value="${command}">${label}</button>`;
  let controls = "";
  if (view.type === "light") {
    const brightness = typeof view.state?.brightness === "number" ? view.state.brightness : 100;
    controls += sendForm("device", device, button("toggle", "Toggle"));
    controls += sendForm(
      "device",
      device,
      `<label>Brightness <input type="range" name="brightness" min="0" max="100" step="10" value="${
        escapeHtml(brightness)
      }"></label> <button type="submit">Set</button>`,
    );
  } else if (view.type === "lock") {
    controls += sendForm(
      "device",
      device,
      button("lock", "Lock") + " " + button("unlock", "Unlock"),
    );
  }
  controls += sendForm(
    "device",
    device,
    `<label for="${id}">Command</label> <input id="${id}" name="message" required> <button type="submit">Send</button>`,
  );
  return controls;
}

/** One device as a list item; also sent over SSE to replace the item in place. */
export function renderDevice(view: DeviceView): string {
  const data = Object.keys(view.data).length ? JSON.stringify(view.data) : "{}";
  return `<li class="device" id="device-${escapeHtml(view.uuid)}" data-uuid="${
    escapeHtml(view.uuid)
  }">
  <h3>${escapeHtml(typeof view.data.name === "string" ? view.data.name : view.type)} <code>${
    escapeHtml(view.uuid.slice(0, 8))
  }</code></h3>
  <p class="state" data-state="${escapeHtml(JSON.stringify(view.state ?? {}))}">${
    escapeHtml(describeState(view.type, view.state))
  }</p>
  <details><summary>Details</summary><dl>
    <dt>UUID</dt><dd><code>${escapeHtml(view.uuid)}</code></dd>
    <dt>Data</dt><dd><code>${escapeHtml(data)}</code></dd>
    <dt>Address</dt><dd>${escapeHtml(view.address)} (protocol mode ${escapeHtml(view.mode)})</dd>
  </dl></details>
  <div class="controls">${commandControls(view)}</div>
</li>`;
}

/** The count shown next to a type's heading. */
export function renderCount(count: number): string {
  return plural(count, "device");
}

/** The whole page. */
export function renderPage(
  types: readonly string[],
  views: readonly DeviceView[],
  result?: SendResult,
): string {
  const sections = types.map((type) => {
    const ofType = views.filter((view) => view.type === type);
    return `<section class="type" id="type-${escapeHtml(type)}" data-type="${escapeHtml(type)}"
    aria-labelledby="heading-${escapeHtml(type)}">
  <h2 id="heading-${escapeHtml(type)}">${escapeHtml(type)}s <small class="count">${
      renderCount(ofType.length)
    }</small></h2>
  ${
      sendForm(
        "type",
        { type },
        `<label for="broadcast-${escapeHtml(type)}">Broadcast to every ${
          escapeHtml(type)
        }</label> <input id="broadcast-${
          escapeHtml(type)
        }" name="message" required> <button type="submit">Send to ${escapeHtml(type)}s</button>`,
      )
    }
  <ul class="devices">${ofType.map(renderDevice).join("\n")}</ul>
</section>`;
  }).join("\n");
  const status = result
    ? `Sent ${JSON.stringify(result.message)} to ${result.to}: reached ${
      plural(result.reached, "device")
    }.`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>iot-manager dashboard</title>
<link rel="stylesheet" href="/style.css">
<script type="module" src="/app.js"></script>
</head>
<body>
<header>
  <h1>iot-manager dashboard</h1>
  <p><span id="total">${plural(views.length, "device")}</span> connected</p>
</header>
<main>
  <p id="status" role="status" aria-live="polite">${escapeHtml(status)}</p>
  <section aria-labelledby="heading-all">
    <h2 id="heading-all">All devices</h2>
    ${
    sendForm(
      "all",
      {},
      `<label for="broadcast-all">Broadcast to every device</label> <input id="broadcast-all" name="message" required> <button type="submit">Send to all</button>`,
    )
  }
  </section>
  ${sections}
</main>
</body>
</html>`;
}
