/**
 * The dashboard at fleet scale, measured (issue 14's target: the first render
 * within 2 s at 2,000 devices). Starts the dashboard with `--devices`
 * simulated devices, then:
 *
 * - the server: how long the page and a list fragment take to come back, and
 *   their sizes (median of 20);
 * - the browser: Debian's Chromium loads the page `--loads` times, each in a
 *   fresh context (nothing cached), and reports, from the start of navigation,
 *   the HTML received, the first contentful paint (the server-rendered page,
 *   list included), the event stream live and the charts drawn (median, worst);
 * - with `--screenshot FILE`: `--traffic` seconds of a busy fleet (commands,
 *   a few devices leaving, refused handshakes), then a screenshot of the page.
 *
 * Prints a Markdown table and writes it to bench/RESULTS-dashboard.md.
 *
 *   deno task bench:dashboard [--devices 2000] [--loads 7] [--screenshot docs/dashboard.png] [--traffic 60]
 *
 * @module
 */

import { Device } from "@iot-manager/core";
import { parseArgs } from "node:util";
import { type DashboardStack, startDashboard } from "../examples/dashboard/stack.ts";
import { launchChromium, type RenderTimes, renderTimes } from "../tests/browser/_chromium.ts";
import { aligned, writeDocuments } from "./output.ts";

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "2000" },
    loads: { type: "string", default: "7" },
    screenshot: { type: "string" },
    traffic: { type: "string", default: "60" },
  },
});
const devices = Number(values.devices);
const loads = Number(values.loads);
const trafficSeconds = Number(values.traffic);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};
const ms = (value: number) => `${value.toFixed(value < 10 ? 1 : 0)} ms`;
const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;

/** Median time and size of `count` GETs of `url`. */
async function timeGet(url: string, count = 20): Promise<{ ms: number; bytes: number }> {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    bytes = (await response.arrayBuffer()).byteLength;
    times.push(performance.now() - start);
  }
  return { ms: median(times), bytes };
}

/** A busy fleet for the screenshot: commands each second, devices leaving, refused handshakes. */
async function traffic(stack: DashboardStack, seconds: number): Promise<void> {
  const { manager, fleet } = stack;
  const random = (n: number) => Math.floor(Math.random() * n);
  for (let second = 1; second <= seconds; second++) {
    // 100 to 400 commands a second, each answered: a light toggles, a lock tells its state.
    const commands = 100 + random(300);
    await Promise.all(Array.from({ length: commands }, () => {
      const device = fleet.devices[random(fleet.devices.length)];
      return manager.send(device.uuid, device.info.type === "light" ? "toggle" : "status");
    }));
    if (second % 7 === 0) {
      for (let i = 0; i < 3; i++) await fleet.devices[random(fleet.devices.length)].close();
    }
    if (second % 9 === 0) {
      await Device.connect({ port: manager.port, type: "thermostat", connectTimeout: 5 })
        .then((device) => device.close(), () => {}); // refused: not a valid type
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const connecting = performance.now();
const stack = await startDashboard({
  port: 0,
  simulate: devices,
  manager: { port: 0, heartbeatRate: 2, heartbeatTimeout: 15 },
});
const connected = performance.now() - connecting;
const browser = await launchChromium();
try {
  const listed = Date.now() + 60_000;
  while (stack.dashboard.roster.size < devices) {
    if (Date.now() > listed) throw new Error(`${devices} devices not listed within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 3000)); // a few samples for the charts
  const page = await timeGet(stack.url);
  const fragment = await timeGet(new URL("/devices?page=10", stack.url).href);

  const times: RenderTimes[] = [];
  for (let i = 0; i < loads; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const tab = await context.newPage();
    tab.setDefaultTimeout(30_000);
    await tab.goto(stack.url);
    times.push(await renderTimes(tab));
    await context.close();
  }
  const row = (label: string, pick: (times: RenderTimes) => number) =>
    `| ${label} | ${ms(median(times.map(pick)))} | ${ms(Math.max(...times.map(pick)))} |`;
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
    .match(/model name\s*:\s*(.+)/)?.[1] ?? "unknown CPU";
  const report = `# The dashboard at ${devices.toLocaleString("en-US")} devices

\`deno task bench:dashboard\` (bench/dashboard.ts): the dashboard, its manager and ${
    devices.toLocaleString("en-US")
  } simulated devices in one Deno process (heartbeats every 2 s), Debian's Chromium ${browser.version()} headless, on ${navigator.hardwareConcurrency} cores of ${cpu}, Deno ${Deno.version.deno}. The fleet connected in ${
    (connected / 1000).toFixed(1)
  } s.

Server, median of 20 requests: the page (${kib(page.bytes)}, 50 devices listed) in ${
    ms(page.ms)
  }; a list fragment (${kib(fragment.bytes)}) in ${ms(fragment.ms)}.

Browser, ${loads} loads each in a fresh context, from the start of navigation. Target: the first render within 2 s.

| | median | worst |
| --- | ---: | ---: |
${row("HTML received", (t) => t.response)}
${row("first contentful paint (page and list drawn)", (t) => t.firstPaint)}
${row("event stream live (counts and list follow the fleet)", (t) => t.live)}
${row("charts drawn", (t) => t.charts)}
`;
  console.log(await aligned(report));
  console.log(`Wrote ${await writeDocuments({ "RESULTS-dashboard.md": report })}`);

  if (values.screenshot) {
    console.log(`${trafficSeconds} s of traffic for the screenshot...`);
    const busy = traffic(stack, trafficSeconds);
    const tab = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    tab.setDefaultTimeout(30_000);
    await tab.goto(stack.url);
    await renderTimes(tab);
    await tab.locator("li.device summary").first().click();
    // Taken while the fleet is still busy, so the latest figures are not a lull.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, trafficSeconds - 3) * 1000));
    await tab.screenshot({ path: values.screenshot });
    console.log(`Wrote ${values.screenshot}`);
    await busy;
  }
} finally {
  await browser.close();
  await stack.close();
}
