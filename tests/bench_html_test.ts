/**
 * The bench's HTML report (`bench/results.html`) rendered from saved figures,
 * with no bench run: `tests/fixtures/bench_results.json` is what
 * `deno task bench --json` printed for a full run on our machine.
 */
import assert from "node:assert/strict";
import { renderBenchHtml } from "../bench/report/html.ts";
import { count } from "../bench/report/format.ts";
import type { BenchResults, Failure, ScenarioResult } from "../bench/report/results.ts";
import { tableRows } from "../bench/report/scenarios.ts";
import type { ManagerFigures } from "../bench/systems/manager.ts";
import { assertSelfContained, chartBoxes, embeddedData } from "./_report_page.ts";

const saved: BenchResults = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/bench_results.json", import.meta.url)),
);

/** Text as the page writes it inside an element. */
const escaped = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

Deno.test("bench report: saved figures render as one self-contained page with every figure", () => {
  const html = renderBenchHtml(saved, { generatedAt: new Date("2026-01-02T03:04:05Z") });
  assertSelfContained(html);
  const met = saved.targets.filter((target) => target.verdict === "PASS").length;
  const judged = saved.targets.filter((target) => target.verdict !== "NOT RUN").length;
  assert.match(html, new RegExp(`<title>iot-manager benchmark: ${met} of ${judged} targets met`));
  assert.ok(html.includes(`>${met} / ${judged} targets<`), "the badge");
  assert.ok(html.includes("made 2026-01-02 03:04:05 UTC"));
  // Every target as a card, and in the targets table with its verdict.
  for (const target of saved.targets) {
    assert.ok(html.includes(`<div class="value">${escaped(target.measured)}</div>`), target.target);
    assert.ok(
      html.includes(`<td class="verdict">${target.verdict}</td><td>${escaped(target.target)}</td>`),
      `${target.verdict} ${target.target}`,
    );
  }
  // Every row of the results table, the acknowledged sendAll next to the fast path included.
  const rows = tableRows(saved.scenarios);
  assert.ok(rows.some((row) => row.measure.startsWith("fan-out with ack")));
  for (const row of rows) {
    assert.ok(
      html.includes(`<td>${escaped(row.measure)}</td><td class="num">${escaped(row.ours)}</td>`),
      `${row.scenario}: ${row.measure}`,
    );
  }
  for (const { scenario } of saved.scenarios) {
    assert.ok(html.includes(`<h3>${escaped(scenario.label)}</h3>`), scenario.label);
  }
  // The transports at 1,000 devices as bars, with the manager's fan-out in each.
  for (const result of saved.scenarios.filter((r) => r.scenario.devices === 1000)) {
    const fanOut = (result.manager as ManagerFigures).fanOut.perSecond;
    const label = `${result.scenario.label.split(",")[0]}: iot-manager`;
    assert.ok(html.includes(`<span class="reason">${escaped(label)}</span>`), label);
    assert.ok(html.includes(`<span class="count">${count(fanOut)}</span>`), label);
  }
  // A box for each plot, and the figures behind them: the saved results themselves.
  assert.deepEqual(chartBoxes(html), ["fan-out", "latency", "memory", "heartbeats", "handshakes"]);
  const embedded = embeddedData<{ results: BenchResults; lines: Record<string, number> }>(html);
  assert.deepEqual(embedded.results, saved);
  assert.deepEqual(embedded.lines, { memoryPerDevice: 4096, handshakesPerSecond: 5000 });
});

Deno.test("bench report: a system that failed shows as an error, its message escaped", () => {
  const failure: Failure = { error: "the manager holds <script>1</script> devices" };
  const scenarios: ScenarioResult[] = saved.scenarios.map((result, i) =>
    i === 0 ? { ...result, manager: failure } : result
  );
  const html = renderBenchHtml({ ...saved, scenarios });
  assertSelfContained(html);
  assert.ok(html.includes(`<span class="badge fail">1 error</span>`));
  assert.ok(html.includes("<h2>Failures and skips</h2>"));
  assert.ok(
    html.includes(
      `${escaped(saved.scenarios[0].scenario.label)}, manager: error: the manager holds ` +
        `&#60;script&#62;1&#60;/script&#62; devices`,
    ),
  );
  assert.doesNotMatch(html, /<script>1<\/script>/);
  assert.deepEqual(
    embeddedData<{ results: BenchResults }>(html).results.scenarios[0].manager,
    failure,
  );
});
