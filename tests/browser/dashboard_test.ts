/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core,
 * against a real manager with simulated devices on real sockets.
 * Set DASHBOARD_SCREENSHOT=docs/dashboard.png (and --allow-write) to refresh
 * the screenshot in the README.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { Dashboard } from "../../examples/dashboard/dashboard.ts";
import { startFleet } from "../../examples/dashboard/fleet.ts";
import { startManager, waitFor } from "../_helpers.ts";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

async function launch(): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A manager, the dashboard on port 0 and `count` simulated devices (2 lights : 1 lock). */
async function startStack(count: number) {
  const manager = await startManager();
  const dashboard = new Dashboard(manager);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    dashboard.handler,
  );
  const fleet = await startFleet({ port: manager.port, count });
  await waitFor(() => dashboard.devices.length === count, `${count} devices on the dashboard`);
  return {
    manager,
    dashboard,
    fleet,
    url: `http://127.0.0.1:${server.addr.port}/`,
    async close() {
      await fleet.close();
      await dashboard.close();
      await server.shutdown();
      await manager.close();
    },
  };
}

const stateOf = (page: Page, uuid: string) => page.locator(`#device-${uuid} .state`);

Deno.test({
  name: "dashboard: a live fleet in a real browser: list, toggle, broadcast, departure",
  sanitizeResources: false, // the browser's pipes are closed by browser.close(), after the test body
  sanitizeOps: false,
  async fn() {
    const stack = await startStack(6);
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      await page.goto(stack.url);
      await page.locator("#total", { hasText: "6 devices" }).waitFor();
      assert.equal(await page.locator("#type-light .count").textContent(), "4 devices");
      assert.equal(await page.locator("#type-lock .count").textContent(), "2 devices");
      assert.equal(await page.locator("li.device").count(), 6);
      // Live state: the lights answered "status" when they connected.
      const light = stack.fleet.devices[0];
      await stateOf(page, light.info.uuid).filter({ hasText: "off, brightness 100%" }).waitFor();

      // Toggle one light: the page shows its new state and the simulated device has it.
      await page.locator(`#device-${light.info.uuid} button`, { hasText: "Toggle" }).click();
      await page.locator("#status", { hasText: "reached 1 device" }).waitFor();
      await stateOf(page, light.info.uuid).filter({ hasText: "on, brightness 100%" }).waitFor();
      assert.deepEqual(stack.fleet.fakes[0].state(), { on: true, brightness: 100 });

      // Broadcast to the locks.
      await page.fill("#broadcast-lock", "unlock");
      await page.click("text=Send to locks");
      await page.locator("#status", { hasText: 'Sent "unlock" to every lock: reached 2 devices' })
        .waitFor();
      for (const [index, device] of stack.fleet.devices.entries()) {
        if (device.info.type !== "lock") continue;
        await stateOf(page, device.info.uuid).filter({ hasText: /^unlocked$/ }).waitFor();
        assert.deepEqual(stack.fleet.fakes[index].state(), { locked: false });
      }
      const screenshot = await page.screenshot({ fullPage: true });
      assert.deepEqual([...screenshot.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a PNG");
      const keep = Deno.env.get("DASHBOARD_SCREENSHOT");
      if (keep) await Deno.writeFile(keep, screenshot);

      // A device leaves: it disappears and the counts follow.
      const leaving = stack.fleet.devices[5]; // the second lock
      await leaving.close();
      await page.locator(`#device-${leaving.info.uuid}`).waitFor({ state: "detached" });
      await page.locator("#type-lock .count", { hasText: "1 device" }).waitFor();
      await page.locator("#total", { hasText: "5 devices" }).waitFor();
    } finally {
      await browser.close();
      await stack.close();
    }
  },
});

Deno.test({
  name: "dashboard: the send forms work without JavaScript, and the page fits a phone",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const stack = await startStack(3);
    const browser = await launch();
    try {
      const context = await browser.newContext({
        javaScriptEnabled: false,
        viewport: { width: 375, height: 740 },
      });
      const page = await context.newPage();
      await page.goto(stack.url);
      assert.equal(await page.locator("li.device").count(), 3);
      const scrollWidth = await page.evaluate("document.documentElement.scrollWidth");
      assert.ok(Number(scrollWidth) <= 375, `no sideways scrolling on a phone (${scrollWidth}px)`);
      await page.fill("#broadcast-all", "status");
      await page.click("text=Send to all");
      await page.locator("#status", { hasText: 'Sent "status" to all devices: reached 3 devices' })
        .waitFor();
      assert.match(page.url(), /reached=3/);
      // A light's toggle, as a plain form post.
      const light = stack.fleet.devices[0];
      await page.locator(`#device-${light.info.uuid} button`, { hasText: "Toggle" }).click();
      await page.locator("#status", { hasText: "reached 1 device" }).waitFor();
      await waitFor(() => stack.fleet.fakes[0].state().on === true, "the light switched on");
      await context.close();
    } finally {
      await browser.close();
      await stack.close();
    }
  },
});
