/**
 * The dashboard at fleet scale, in Debian's Chromium: 2,000 simulated devices
 * on real sockets. The page must draw, find one device, send it a command
 * from its row, keep its charts moving and take its updates in batches. How
 * fast it draws is printed here and measured properly by bench/dashboard.ts;
 * speed is not asserted in a test.
 */
import assert from "node:assert/strict";
import { startDashboard } from "../../examples/dashboard/stack.ts";
import { waitFor } from "../_helpers.ts";
import { launchChromium, renderTimes, withDeadline } from "./_chromium.ts";

const DEVICES = 2_000;

Deno.test({
  name: "dashboard: 2,000 devices: first render, a search, a command from a row, moving charts",
  sanitizeResources: false, // the browser's pipes are closed by browser.close(), after the test body
  sanitizeOps: false,
  fn: () =>
    withDeadline(150_000, "the 2,000-device test", async () => {
      const started = performance.now();
      const stack = await startDashboard({
        port: 0,
        simulate: DEVICES,
        // Heartbeats every 2 s so the round-trip chart has figures; a generous timeout, as the
        // fleet, the manager and the browser share two cores.
        manager: { port: 0, heartbeatRate: 2, heartbeatTimeout: 15, handshakeTimeout: 15 },
      });
      const browser = await launchChromium();
      try {
        await waitFor(
          () => stack.manager.size === DEVICES && stack.dashboard.roster.size === DEVICES,
          `${DEVICES} devices on the dashboard`,
          60_000,
        );
        const connected = performance.now() - started;
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        page.setDefaultTimeout(15_000);
        await page.goto(stack.url);
        const times = await renderTimes(page);
        console.log(
          `${DEVICES} devices connected in ${(connected / 1000).toFixed(1)} s; first render: ` +
            `HTML ${times.response.toFixed(0)} ms, first paint ${
              times.firstPaint.toFixed(0)
            } ms, ` +
            `live ${times.live.toFixed(0)} ms, charts ${times.charts.toFixed(0)} ms`,
        );
        // Usable: the first page of the list, grouped by type, and the counts.
        await page.locator("#total", { hasText: "2,000 devices" }).waitFor();
        await page.locator("#showing", { hasText: "Showing 1–50 of 2,000 devices." }).waitFor();
        assert.equal(await page.locator("li.device").count(), 50);
        assert.equal(await page.locator("#type-light .count").textContent(), "1,334 devices");
        assert.equal(await page.locator("#type-lock .count").textContent(), "666 devices");

        // The charts move: each gets a point per batch.
        const points = async () =>
          await Promise.all(
            ["devices", "messages", "rtt", "problems"].map(async (id) =>
              Number(await page.locator(`#chart-${id}`).getAttribute("data-points"))
            ),
          );
        const before = await points();
        await page.waitForFunction(
          `Number(document.querySelector("#chart-devices").dataset.points) > ${before[0] + 1}`,
        );
        const after = await points();
        for (const [i, count] of after.entries()) {
          assert.ok(count > before[i], `chart ${i} grew from ${before[i]} to ${count} points`);
        }
        await page.locator("[data-now=rtt]", { hasText: /p50 [\d.]+ ms/ }).waitFor();

        // A search finds one device; a command from its row reaches it.
        const index = 1_234; // "light 1235"
        const light = stack.fleet.devices[index];
        await page.fill("#search", light.uuid.slice(0, 8));
        await page.locator("#showing", { hasText: "of 1 device." }).waitFor();
        assert.equal(await page.locator("li.device").count(), 1);
        const row = page.locator(`#device-${light.uuid}`);
        assert.equal(await row.locator(".name").textContent(), "light 1235");
        await row.locator("button", { hasText: "Toggle" }).click();
        await page.locator("#status", { hasText: "light 1235" }).waitFor();
        await waitFor(() => stack.fleet.fakes[index].state().on === true, "the light switched on");
        await row.locator(".state", { hasText: "on, brightness 100%" }).waitFor();

        // Filters: the locks that are away (none), then all locks, paged.
        await page.fill("#search", "");
        await page.selectOption("#filter-type", "lock");
        await page.locator("#showing", { hasText: "Showing 1–50 of 666 devices." }).waitFor();
        await page.selectOption("#filter-presence", "away");
        await page.locator("#showing", { hasText: "No device matches." }).waitFor();
        await page.selectOption("#filter-presence", "");
        await page.click("#device-list a[rel=next]");
        await page.locator("#showing", { hasText: "Showing 51–100 of 666 devices." }).waitFor();

        // Batched: every device answering a broadcast changes 2,000 rows' state, and the page
        // still fetches its list at most once per one-second batch.
        const fetches = () =>
          page.evaluate(`performance.getEntriesByType("resource")
            .filter((entry) => new URL(entry.name).pathname === "/devices").length`) as Promise<
            number
          >;
        const fetchesBefore = await fetches();
        const windowStart = performance.now();
        await page.fill("#broadcast-all", "status");
        await page.click("text=Send to all");
        await page.locator("#status", { hasText: "reached 2,000 devices" }).waitFor();
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        const seconds = (performance.now() - windowStart) / 1000;
        const listFetches = (await fetches()) - fetchesBefore;
        assert.ok(
          listFetches <= Math.ceil(seconds) + 1,
          `${listFetches} list fetches in ${seconds.toFixed(1)} s`,
        );
      } finally {
        await browser.close();
        await stack.close();
      }
    }),
});
