/**
 * The bench's HTML report (`bench/results.html`) in a real browser, rendered
 * from saved figures (`tests/fixtures/bench_results.json`, a full run's
 * `--json`): Debian's Chromium, the file opened with the network off.
 */
import assert from "node:assert/strict";
import { renderBenchHtml } from "../../bench/report/html.ts";
import type { BenchResults } from "../../bench/report/results.ts";
import { withReportPage } from "./_report_page.ts";

const saved: BenchResults = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/bench_results.json", import.meta.url)),
);

Deno.test({
  name: "bench report: every chart draws from the file alone, with no network",
  sanitizeResources: false, // the browser's pipes are closed by browser.close(), after the test body
  sanitizeOps: false,
  async fn() {
    await withReportPage(renderBenchHtml(saved), async (page, charts) => {
      assert.deepEqual(
        charts.map((chart) => chart.name),
        ["fan-out", "latency", "memory", "heartbeats", "handshakes"],
      );
      for (const chart of charts) {
        assert.ok(chart.canvas && chart.drawn > 100, `${chart.name} drew ${chart.drawn} px`);
      }
      // The legend follows the cursor: at the right edge, the largest fleet's fan-out.
      const plot = page.locator('[data-chart="fan-out"] .u-over');
      const box = await plot.boundingBox();
      assert.ok(box);
      await plot.hover({ position: { x: box.width - 2, y: box.height / 2 } });
      const legend = page.locator('[data-chart="fan-out"] .u-series');
      assert.equal(await legend.nth(0).locator(".u-value").textContent(), "10,000");
      assert.match(await legend.nth(1).locator(".u-value").textContent() ?? "", /^[\d,]+\/s$/);
    });
  },
});
