/**
 * An HTML report (`report_page/page.ts`) in a real browser, as a reader who
 * got the file by mail would open it: Debian's Chromium driven by
 * playwright-core, the file opened from disk with the network off and every
 * other request refused and recorded.
 */
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** One chart box: its name, whether it holds a canvas, and how many pixels its series drew. */
export interface DrawnChart {
  readonly name: string;
  readonly canvas: boolean;
  readonly drawn: number;
}

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

/**
 * Writes `html` to a temporary file, opens it offline, waits until its page
 * script has drawn (`data-charts` set), checks that it logged no error and
 * asked for nothing beyond itself, then runs `check` with the page and its
 * charts as drawn.
 */
export async function withReportPage(
  html: string,
  check: (page: Page, charts: readonly DrawnChart[]) => Promise<void>,
  viewport = { width: 1300, height: 900 },
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "report_page_" });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  try {
    const file = `${dir}/report.html`;
    await Deno.writeTextFile(file, html);
    const context = await browser.newContext({ offline: true, viewport });
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
    const charts = await page.evaluate(DRAWN_PIXELS) as DrawnChart[];
    assert.equal(
      await page.evaluate("document.documentElement.dataset.charts"),
      String(charts.length),
      "every box got its chart",
    );
    await check(page, charts);
  } finally {
    await browser.close();
    await Deno.remove(dir, { recursive: true });
  }
}
