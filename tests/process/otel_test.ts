/**
 * The manager's metrics through Deno's built-in OpenTelemetry exporter: a
 * manager process run with `OTEL_DENO=true` sends OTLP (HTTP/JSON) to a small
 * receiver this test starts, and the figures arrive with the right values.
 */
import assert from "node:assert/strict";
import { Device } from "../../mod.ts";
import { waitFor } from "../_helpers.ts";
import { ManagerProcess } from "./_process.ts";

interface DataPoint {
  attributes?: { key: string; value: { stringValue?: string; intValue?: string } }[];
  asInt?: string;
  asDouble?: number;
  count?: string;
}
interface Metric {
  name: string;
  gauge?: { dataPoints: DataPoint[] };
  sum?: { dataPoints: DataPoint[] };
  histogram?: { dataPoints: DataPoint[] };
}

/** Every metric of every OTLP/JSON export received so far, the latest last. */
function metricsIn(bodies: unknown[]): Metric[] {
  return bodies.flatMap((body) =>
    (body as {
      resourceMetrics: { scopeMetrics: { scope: { name: string }; metrics: Metric[] }[] }[];
    })
      .resourceMetrics.flatMap((resource) =>
        resource.scopeMetrics
          .filter((scope) => scope.scope.name === "@iot-manager/core")
          .flatMap((scope) => scope.metrics)
      )
  );
}

const value = (point: DataPoint) => Number(point.asInt ?? point.asDouble);
const attribute = (point: DataPoint, key: string) =>
  point.attributes?.find((a) => a.key === key)?.value.stringValue;

Deno.test("Deno's OpenTelemetry exporter sends the manager's device count, messages and round trips", async () => {
  const bodies: unknown[] = [];
  await using receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      if (new URL(request.url).pathname === "/v1/metrics") bodies.push(await request.json());
      else await request.body?.cancel();
      return Response.json({});
    },
  );
  await using manager = new ManagerProcess({ heartbeatRate: 0.2, heartbeatTimeout: 2 }, {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_METRIC_EXPORT_INTERVAL: "300",
  });
  const port = await manager.port();
  const lights = await Promise.all([1, 2].map(() => Device.connect({ port, type: "light" })));
  try {
    await lights[0].send("on");
    const latest = (name: string) => metricsIn(bodies).filter((m) => m.name === name).at(-1);
    await waitFor(
      () => {
        const devices = latest("iot_manager.devices.connected")?.gauge?.dataPoints ?? [];
        const rtt = latest("iot_manager.heartbeat.rtt")?.histogram?.dataPoints ?? [];
        const received = latest("iot_manager.messages.received")?.sum?.dataPoints ?? [];
        return devices.some((p) => attribute(p, "type") === "light" && value(p) === 2) &&
          rtt.some((p) => Number(p.count) > 0) && received.some((p) => value(p) === 1);
      },
      "an export with two lights, a message and timed heartbeats",
      30_000,
    );
    const rtt = latest("iot_manager.heartbeat.rtt")!.histogram!.dataPoints[0] as DataPoint & {
      explicitBounds?: number[];
    };
    assert.equal(rtt.explicitBounds?.[0], 0.001, "seconds, on the library's buckets");
    const accepted = latest("iot_manager.handshakes.accepted")!.sum!.dataPoints[0];
    assert.equal(value(accepted), 2);
    assert.ok(accepted.attributes?.some((a) => a.key === "server.port"));
  } finally {
    await Promise.all(lights.map((light) => light.close()));
  }
});
