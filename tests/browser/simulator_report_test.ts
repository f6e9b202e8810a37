/**
 * The simulator's HTML report (`--html`) in a real browser: Debian's Chromium
 * driven by playwright-core, opening the file with the network off, as a
 * reader who got the file by mail would.
 */
import assert from "node:assert/strict";
import { renderHtmlReport } from "../../simulator/html_report.ts";
import { runSimulation } from "../../simulator/scenario.ts";
import { withReportPage } from "./_report_page.ts";

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
    await withReportPage(renderHtmlReport(report), async (page, charts) => {
      // Each box holds a uPlot chart whose series drew: pixels of the series' own colours.
      assert.deepEqual(
        charts.map((chart) => chart.name),
        ["connected", "messages", "heartbeats", "memory", "handshake", "broadcasts", "requests"],
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
    });
  },
});
