/**
 * Writes bench/RESULTS.md and bench/results.html again from the figures the
 * last full run left in results.html (`#report-data`), with the targets
 * judged afresh: for a change to the report code or to the targets, without
 * running the benchmark again. `deno run --allow-read --allow-write=bench
 * --allow-run bench/rerender.ts` (it runs `deno fmt` on them, as the bench does).
 *
 * @module
 */

import { writeDocuments } from "./output.ts";
import { renderBenchHtml } from "./report/html.ts";
import { resultsMarkdown } from "./report/markdown.ts";
import type { BenchResults } from "./report/results.ts";
import { evaluateTargets } from "./report/targets.ts";

const page = await Deno.readTextFile(new URL("./results.html", import.meta.url));
const data = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(page);
if (!data) throw new Error("bench/results.html has no #report-data: run deno task bench");
const saved: BenchResults = JSON.parse(data[1]).results;
const bench: BenchResults = { ...saved, targets: evaluateTargets(saved.scenarios, false) };
console.log(`wrote ${await writeDocuments({
  "RESULTS.md": resultsMarkdown(bench),
  "results.html": renderBenchHtml(bench),
})}`);
