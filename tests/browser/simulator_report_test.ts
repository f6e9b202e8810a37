/**
 * The simulator's HTML report (`--html`) in a real browser: Debian's Chromium
 * driven by playwright-core, opening the file with the network off, as a
 * reader who got the file by mail would.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { renderHtmlReport } from "../../simulator/html_report.ts";
import { runSimulation } from "../../simulator/scenario.ts";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/**
 * Run in the page: for each chart box, whether it holds a canvas and how many of its pixels
 * have the colour of one of its series (a grid and axes alone have none).
 */
const DRAWN_PIXELS = `[...document.querySelectorAll(".plot[data-chart]")].map((box) => {
  const canvas = box.querySelector("canvas");
  const strokes = [...box.querySelectorAll(".u-series .u-marker")]
    .map((marker) => getComputedStyle(marker).borderColor.match(/\\d+/g).slice(0, 3).map(Number));
  let drawn = 0;
  if (canvas) {
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 128) continue;
      if (strokes.some(([r, g, b]) =>
        Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 30
      )) drawn++;
    }
  }
  return { name: box.dataset.chart, canvas: canvas !== null, drawn };
})`;

Deno.test({
  name: "simulator report: every chart draws from the file alone, with no network",
  sanitizeResources: false, // the browser's pipes are closed by browser.close(), after the test body
  sanitizeOps: false,
  async fn() {
    const report = await runSimulation({
      lights: 8,
      locks: 4,
      heartbeat: 0.2,
      requests: 4,
      duration: 1.5,
      steadyBroadcast: 0.3,
      steadyRequests: 10,
      memoryEvery: 0.5,
      warmUp: 0.5,
      plots: true,
      chaos: { silent: 0, churn: 120, slow: 0, slowDelay: 0, malformed: 0 },
    });
    const dir = await Deno.makeTempDir({ prefix: "simulator_report_" });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    try {
      const file = `${dir}/report.html`;
      await Deno.writeTextFile(file, renderHtmlReport(report));
      const context = await browser.newContext({
        offline: true,
        viewport: { width: 1300, height: 900 },
      });
      const fetched: string[] = [];
      await context.route("**/*", (route) => {
        const url = route.request().url();
        if (url === `file://${file}`) return route.continue();
        fetched.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      page.on("console", (message) => {
        if (message.type() === "error") errors.push(message.text());
      });
      await page.goto(`file://${file}`);
      await page.waitForFunction("document.documentElement.dataset.charts !== undefined");
      assert.deepEqual(errors, []);
      assert.deepEqual(fetched, [], "the page asks for nothing beyond itself");

      // Each box holds a uPlot chart whose series drew: pixels of the series' own colours.
      const charts = await page.evaluate(DRAWN_PIXELS) as {
        name: string;
        canvas: boolean;
        drawn: number;
      }[];
      assert.deepEqual(
        charts.map((chart) => chart.name),
        ["connected", "messages", "heartbeats", "memory", "handshake", "broadcasts", "requests"],
      );
      assert.equal(
        await page.evaluate("document.documentElement.dataset.charts"),
        String(charts.length),
      );
      for (const chart of charts) {
        assert.ok(chart.canvas && chart.drawn > 200, `${chart.name} drew ${chart.drawn} px`);
      }
      // The legend follows the cursor: hovering the devices chart shows how many were connected.
      const plot = page.locator('[data-chart="connected"] .u-over');
      await plot.hover({ position: { x: 200, y: 50 } });
      const connected = await page.locator('[data-chart="connected"] .u-series').nth(1)
        .locator(".u-value").textContent();
      assert.match(connected ?? "", /^\d+$/);
      assert.equal(
        await page.locator(".result").textContent(),
        `result: ${report.ok ? "PASS" : "FAIL"}`,
      );
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
