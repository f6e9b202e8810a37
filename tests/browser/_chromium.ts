/**
 * Debian's Chromium driven by playwright-core, for the browser tests and the
 * dashboard's measurements (bench/dashboard.ts).
 */
import { type Browser, chromium, type Page } from "playwright-core";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** Launches headless Chromium with nothing that reaches the network on its own. */
export async function launchChromium(): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
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

/** How long the page took to draw, in ms from the start of navigation, as the browser saw it. */
export interface RenderTimes {
  /** The HTML fully received. */
  readonly response: number;
  /** First contentful paint: the server-rendered page, device list included. */
  readonly firstPaint: number;
  /** The event stream's history arrived: counts and list live. */
  readonly live: number;
  /** The charts drawn. */
  readonly charts: number;
}

/** Waits for the dashboard to be live with its charts drawn, and reads its timings. */
export async function renderTimes(page: Page): Promise<RenderTimes> {
  await page.locator("html[data-live='true']").waitFor({ state: "attached" });
  await page.locator("#charts.drawn").waitFor({ state: "attached" });
  // A string: the page's script runs in the browser, where the DOM types are.
  return await page.evaluate(`(() => {
    const [navigation] = performance.getEntriesByType("navigation");
    const at = (name) => performance.getEntriesByName(name)[0]?.startTime ?? NaN;
    return {
      response: navigation.responseEnd,
      firstPaint: at("first-contentful-paint"),
      live: at("dashboard:live"),
      charts: at("dashboard:charts"),
    };
  })()`) as RenderTimes;
}

/** Runs `body`, failing if it takes longer than `ms` (its cleanup still runs). */
export async function withDeadline<T>(
  ms: number,
  what: string,
  body: () => Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([body(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
