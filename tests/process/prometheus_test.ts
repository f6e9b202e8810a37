/**
 * The manager's /metrics, scraped by a real Prometheus (Debian's package,
 * started here on a free loopback port with a generated config) and queried
 * through Prometheus' HTTP API.
 */
import assert from "node:assert/strict";
import { Device, metricsHandler, PROMETHEUS_CONTENT_TYPE } from "../../mod.ts";
import { freePort, startManager, waitFor, waitForPort } from "../_helpers.ts";

/** A Prometheus server scraping `target` every 500 ms. */
class PrometheusServer implements AsyncDisposable {
  readonly port: number = freePort();
  readonly #dir: string;
  readonly #child: Deno.ChildProcess;

  private constructor(dir: string, target: string) {
    this.#dir = dir;
    Deno.writeTextFileSync(
      `${dir}/prometheus.yml`,
      [
        "global:",
        "  scrape_interval: 500ms",
        "scrape_configs:",
        "  - job_name: iot-manager",
        "    static_configs:",
        `      - targets: ["${target}"]`,
      ].join("\n"),
    );
    this.#child = new Deno.Command("prometheus", {
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${this.port}`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
  }

  static async start(target: string): Promise<PrometheusServer> {
    const server = new PrometheusServer(await Deno.makeTempDir(), target);
    await waitForPort(server.port, 30_000);
    // Listening is not ready: until its storage is open, Prometheus answers 503.
    const deadline = Date.now() + 30_000;
    while (true) {
      const response = await fetch(`http://127.0.0.1:${server.port}/-/ready`);
      await response.body?.cancel();
      if (response.ok) return server;
      if (Date.now() > deadline) throw new Error(`Prometheus not ready: ${response.status}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The value of an instant query's first result, or undefined while there is none. */
  async query(expression: string): Promise<number | undefined> {
    const url = `http://127.0.0.1:${this.port}/api/v1/query?query=${
      encodeURIComponent(expression)
    }`;
    const response = await fetch(url);
    if (!response.ok) {
      await response.body?.cancel();
      return undefined; // not ready yet (503): the caller polls
    }
    const body = await response.json();
    assert.equal(body.status, "success", JSON.stringify(body));
    const result = body.data.result as { value: [number, string] }[];
    return result.length === 0 ? undefined : Number(result[0].value[1]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#child.kill("SIGKILL");
    await this.#child.status;
    await Deno.remove(this.#dir, { recursive: true });
  }
}

Deno.test("a real Prometheus scrapes /metrics and counts the devices and what they did", async () => {
  await using manager = await startManager();
  const metrics = metricsHandler(manager);
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/metrics"
        ? metrics(request)
        : new Response("not found", { status: 404 }),
  );
  const devices = await Promise.all([
    Device.connect({ port: manager.port, type: "light" }),
    Device.connect({ port: manager.port, type: "light" }),
    Device.connect({ port: manager.port, type: "lock", mode: 1 }),
  ]);
  try {
    await waitFor(() => manager.size === 3, "three devices");
    await devices[0].send("hello");
    await waitFor(() => manager.stats().messages.received === 1, "the message counted");
    await devices[2].close();
    await waitFor(() => manager.size === 2, "the lock gone");

    const response = await fetch(`http://127.0.0.1:${server.addr.port}/metrics`);
    assert.equal(response.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    await response.body?.cancel();

    await using prometheus = await PrometheusServer.start(`127.0.0.1:${server.addr.port}`);
    const value = (expression: string) => prometheus.query(expression);
    const deadline = Date.now() + 30_000;
    let connected: number | undefined;
    while (Date.now() < deadline) {
      connected = await value("sum(iot_manager_devices_connected)");
      if (connected !== undefined) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(connected, 2, "Prometheus sees the two connected devices");
    assert.equal(await value('iot_manager_devices_connected{type="light"}'), 2);
    assert.equal(await value("iot_manager_messages_received_total"), 1);
    assert.equal(await value("iot_manager_handshakes_accepted_total"), 3);
    assert.equal(await value('iot_manager_disconnects_total{reason="closed"}'), 1);
    assert.equal(await value("up"), 1, "the scrape itself succeeded");
  } finally {
    await Promise.all(devices.map((device) => device.close()));
  }
});
