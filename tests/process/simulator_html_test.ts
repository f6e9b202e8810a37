/**
 * `deno task simulate --html file`, as a user runs it: the task's own
 * permissions, the file written, stdout unchanged. Here because the test
 * writes files, which the unit tests' permissions do not allow.
 */
import assert from "node:assert/strict";

import { jsonReport } from "../../simulator/json_report.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FLEET = ["--lights", "6", "--locks", "3", "--heartbeat", "0.2", "--no-status"];

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("deno task simulate --html writes the page, and stdout still holds the report", async () => {
  const dir = await Deno.makeTempDir({ prefix: "simulator_html_" });
  try {
    const file = `${dir}/report.html`;
    const table = await run(["task", "-q", "simulate", ...FLEET, "--html", file]);
    assert.equal(table.code, 0, table.stderr + table.stdout);
    assert.match(table.stdout, /^iot-manager simulator: embedded manager at /);
    assert.match(table.stdout, /\nresult: PASS\n$/);
    assert.doesNotMatch(table.stdout, /<html|HTML/, "the page goes to the file only");
    assert.match(table.stderr, new RegExp(`HTML report written to ${file}`));
    const page = await Deno.readTextFile(file);
    assert.match(page, /^<!doctype html>/);
    assert.match(page, /<title>iot-manager simulator: PASS, 9 devices, /);
    assert.match(page, /class="plot" data-chart="connected"/);

    // With --json, stdout is the JSON report, and the page carries the run's report it is made from.
    const json = await run(["task", "-q", "simulate", ...FLEET, "--json", "--html", file]);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.ok(report.plots.timeline.samples.length > 1);
    const embedded = /<script type="application\/json" id="report-data">(.*?)<\/script>/s
      .exec(await Deno.readTextFile(file));
    assert.deepEqual(jsonReport(JSON.parse(embedded![1])), report);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("simulate --html without permission to write fails before the run", async () => {
  const started = performance.now();
  const denied = await run([
    "run",
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--no-prompt",
    "simulator/main.ts",
    ...FLEET,
    "--html",
    "/nonexistent/report.html",
  ]);
  assert.equal(denied.code, 2);
  assert.match(denied.stderr, /--html \/nonexistent\/report.html: no permission to write it/);
  assert.equal(denied.stdout, "", "no run, no report");
  assert.ok(performance.now() - started < 10_000);
});
