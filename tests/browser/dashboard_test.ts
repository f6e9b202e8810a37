/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core,
 * against a real manager with simulated devices on real sockets. The fleet at
 * 2,000 devices is in dashboard_fleet_test.ts; the screenshot in the README is
 * taken by bench/dashboard.ts.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { startDashboard } from "../../examples/dashboard/stack.ts";
import { waitFor } from "../_helpers.ts";
import { launchChromium, withDeadline } from "./_chromium.ts";

/** A manager, the dashboard on port 0 and `count` simulated devices (2 lights : 1 lock). */
async function startStack(count: number) {
  const stack = await startDashboard({
    port: 0,
    simulate: count,
    manager: { port: 0, heartbeatRate: 1, heartbeatTimeout: 5, handshakeTimeout: 5 },
    dashboard: { tickMs: 200 },
  });
  await waitFor(
    () =>
      stack.dashboard.roster.counts().light.connected +
          stack.dashboard.roster.counts().lock.connected === count,
    `${count} devices on the dashboard`,
  );
  return stack;
}

const stateOf = (page: Page, uuid: string) => page.locator(`#device-${uuid} .state`);
const rowOf = (page: Page, uuid: string) => page.locator(`#device-${uuid}`);

Deno.test({
  name: "dashboard: a live fleet in a real browser: list, toggle, broadcast, departure, metrics",
  sanitizeResources: false, // the browser's pipes are closed by browser.close(), after the test body
  sanitizeOps: false,
  fn: () =>
    withDeadline(60_000, "the live-fleet test", async () => {
      const stack = await startStack(6);
      const browser = await launchChromium();
      try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
        page.setDefaultTimeout(10_000);
        await page.goto(stack.url);
        await page.locator("#total", { hasText: "6 devices" }).waitFor();
        assert.equal(await page.locator("#type-light .count").textContent(), "4 devices");
        assert.equal(await page.locator("#type-lock .count").textContent(), "2 devices");
        assert.equal(await page.locator("li.device").count(), 6);
        // Grouped by type: lights first, in name order.
        const groups = page.locator(".group");
        assert.equal(await groups.count(), 2);
        assert.equal(await groups.nth(0).getAttribute("data-type"), "light");
        assert.equal(await groups.nth(1).getAttribute("data-type"), "lock");
        assert.deepEqual(
          await page.locator(".group[data-type=light] .name").allTextContents(),
          ["light 1", "light 2", "light 4", "light 5"],
        );
        const light = stack.fleet.devices[0];
        await stateOf(page, light.uuid).filter({ hasText: "off, brightness 100%" }).waitFor();

        // Toggle one light from its row: the page shows its new state and the device has it.
        await rowOf(page, light.uuid).locator("button", { hasText: "Toggle" }).click();
        await page.locator("#status", { hasText: "reached 1 device" }).waitFor();
        await stateOf(page, light.uuid).filter({ hasText: "on, brightness 100%" }).waitFor();
        assert.deepEqual(stack.fleet.fakes[0].state(), { on: true, brightness: 100 });

        // Its details and other commands are one click away.
        await rowOf(page, light.uuid).locator("summary").click();
        await rowOf(page, light.uuid).locator("input[type=range]").fill("40");
        await rowOf(page, light.uuid).locator("button", { hasText: "Set" }).click();
        await stateOf(page, light.uuid).filter({ hasText: "on, brightness 40%" }).waitFor();
        assert.equal(await rowOf(page, light.uuid).locator("details").getAttribute("open"), "");

        // Broadcast to the locks.
        await page.fill("#broadcast-lock", "unlock");
        await page.click("text=Send to locks");
        await page.locator("#status", { hasText: 'Sent "unlock" to every lock: reached 2 devices' })
          .waitFor();
        for (const [index, device] of stack.fleet.devices.entries()) {
          if (device.info.type !== "lock") continue;
          await stateOf(page, device.uuid).filter({ hasText: /^unlocked$/ }).waitFor();
          assert.deepEqual(stack.fleet.fakes[index].state(), { locked: false });
        }

        // Desired state: the device follows it, and the page shows what it reported.
        const lock = stack.fleet.devices[2];
        await stack.manager.state.setDesired(lock.uuid, { locked: true });
        await stateOf(page, lock.uuid).filter({ hasText: /^locked$/ }).waitFor();
        assert.deepEqual(stack.fleet.fakes[2].state(), { locked: true });
        await rowOf(page, lock.uuid).locator("summary").click();
        await rowOf(page, lock.uuid).locator("dd", { hasText: '{"locked":true}' }).first()
          .waitFor();

        // A device leaves: it is listed as away and the counts follow.
        const leaving = stack.fleet.devices[5]; // the second lock
        await leaving.close();
        await rowOf(page, leaving.uuid).locator(".presence", { hasText: "away" }).waitFor();
        await page.locator("#type-lock .count", { hasText: "1 device" }).waitFor();
        await page.locator("#type-lock .away-count", { hasText: "1 away" }).waitFor();
        await page.locator("#total", { hasText: "5 devices" }).waitFor();
        await page.selectOption("#filter-presence", "away");
        await page.locator("#showing", { hasText: "of 1 device." }).waitFor();
        assert.equal(await page.locator("li.device").count(), 1);
        assert.equal(await page.locator("li.device").getAttribute("data-uuid"), leaving.uuid);
        assert.match(page.url(), /presence=away/);

        // Prometheus' /metrics is mounted.
        const metrics = await (await fetch(new URL("/metrics", stack.url))).text();
        assert.match(metrics, /^iot_manager_devices_connected\{type="light"\} 4$/m);

        // At a phone's width, with the charts drawn, nothing scrolls sideways.
        await page.setViewportSize({ width: 375, height: 740 });
        await page.selectOption("#filter-presence", "");
        await page.locator("li.device").nth(4).waitFor();
        const scrollWidth = await page.evaluate("document.documentElement.scrollWidth");
        assert.ok(
          Number(scrollWidth) <= 375,
          `no sideways scrolling on a phone (${scrollWidth}px)`,
        );
      } finally {
        await browser.close();
        await stack.close();
      }
    }),
});

Deno.test({
  name: "dashboard: without JavaScript, the list pages and filters and the forms work on a phone",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDeadline(60_000, "the no-JavaScript test", async () => {
      const stack = await startStack(3);
      const browser = await launchChromium();
      try {
        const context = await browser.newContext({
          javaScriptEnabled: false,
          viewport: { width: 375, height: 740 },
        });
        const page = await context.newPage();
        page.setDefaultTimeout(10_000);
        await page.goto(stack.url);
        assert.equal(await page.locator("li.device").count(), 3);
        const scrollWidth = await page.evaluate("document.documentElement.scrollWidth");
        assert.ok(
          Number(scrollWidth) <= 375,
          `no sideways scrolling on a phone (${scrollWidth}px)`,
        );
        // The charts' latest figures are printed.
        await page.locator("[data-now=devices]", { hasText: "3 now" }).waitFor();

        await page.fill("#broadcast-all", "status");
        await page.click("text=Send to all");
        await page.locator("#status", {
          hasText: 'Sent "status" to all devices: reached 3 devices',
        })
          .waitFor();
        assert.match(page.url(), /reached=3/);

        // Paged: one device a page, and the pager's links.
        await page.goto(`${stack.url}?per=1`);
        await page.locator("#showing", { hasText: "Showing 1–1 of 3 devices." }).waitFor();
        await page.click("a[rel=next]");
        await page.locator("#showing", { hasText: "Showing 2–2 of 3 devices." }).waitFor();

        // A light's toggle, as a plain form post from that page, comes back to it.
        const light = stack.fleet.devices[1];
        await rowOf(page, light.uuid).locator("button", { hasText: "Toggle" }).click();
        await page.locator("#status", { hasText: "reached 1 device" }).waitFor();
        await waitFor(() => stack.fleet.fakes[1].state().on === true, "the light switched on");
        assert.match(page.url(), /page=2/);
        assert.equal(await page.locator(`#device-${light.uuid}`).count(), 1);

        // The filter form is a GET form: a search finds one device.
        await page.goto(stack.url);
        const lock = stack.fleet.devices[2];
        await page.fill("#search", lock.uuid.slice(0, 8));
        await page.click("text=Filter");
        await page.locator("#showing", { hasText: "of 1 device." }).waitFor();
        assert.equal(await page.locator("li.device").getAttribute("data-uuid"), lock.uuid);
        await context.close();
      } finally {
        await browser.close();
        await stack.close();
      }
    }),
});

Deno.test("dashboard: a command posted from another site's page is refused (CSRF)", async () => {
  await using stack = await startStack(3);
  const post = (origin: string) =>
    fetch(new URL("/api/send", stack.url), {
      method: "POST",
      headers: { origin, "content-type": "application/x-www-form-urlencoded" },
      body: "target=type&type=lock&message=unlock",
      redirect: "manual",
    });
  const foreign = await post("http://evil.example");
  assert.equal(foreign.status, 403);
  await foreign.body?.cancel();
  const own = await post(new URL(stack.url).origin);
  assert.notEqual(own.status, 403, "the dashboard's own page may send");
  await own.body?.cancel();
});
