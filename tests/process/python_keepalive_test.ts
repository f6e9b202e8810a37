/**
 * examples/devices/python_device.py notices a manager that went silent without
 * closing: the manager runs in a process of its own and is stopped with
 * SIGSTOP; the device must say so, drop the connection and reconnect with its
 * backoff, and must not do so while the manager is alive and pinging.
 */
import assert from "node:assert/strict";
import { waitFor } from "../_helpers.ts";
import { ManagerProcess } from "./_process.ts";
import { PythonDevice } from "../_python_device.ts";

/**
 * Runs `device` against a live manager for `rounds` heartbeat rounds (longer than its silence
 * limit), checks it stayed, stops the manager and returns the line the device printed about it;
 * then checks the device reconnects once the manager runs again.
 */
async function silenceAfterLife(
  manager: ManagerProcess,
  device: PythonDevice,
  mode: 1 | 2,
  rounds: number,
  silent: RegExp,
): Promise<string> {
  const connected = new RegExp(`^connected \\S+ mode ${mode}$`);
  await device.waitForLine(connected);
  const start = manager.rounds;
  await waitFor(() => manager.rounds >= start + rounds, `${rounds} heartbeat rounds`);
  assert.equal(
    device.count(/^disconnected/),
    0,
    `dropped a live manager:\n${device.lines.join("\n")}`,
  );

  manager.signal("SIGSTOP");
  let line: string;
  try {
    line = await device.waitForLine(silent, 1, 15_000);
    const after = device.lines.indexOf(line);
    await waitFor(
      () =>
        device.lines.slice(after).some((printed) => /^reconnecting in \d+\.\d+ s$/.test(printed)),
      "a reconnect after the silent manager",
    );
  } finally {
    manager.signal("SIGCONT");
  }
  // The reconnect that reached the stopped manager's backlog completes once it runs again.
  await device.waitForLine(connected, 2, 15_000);
  return line;
}

Deno.test("python device, mode 2: treats a stopped manager as gone after WELCOME's promise and reconnects", async () => {
  await using manager = new ManagerProcess({ heartbeatRate: 1, heartbeatTimeout: 1 });
  await using device = new PythonDevice(await manager.port(), 2);
  // The limit is 1 + 1 s plus 1 s of slack: four rounds of life outlast it.
  const line = await silenceAfterLife(
    manager,
    device,
    2,
    4,
    /^disconnected: the manager sent nothing for \d+\.\d s \(it promised a heartbeat every 1 s\)$/,
  );
  const seconds = Number(line.match(/for (\d+\.\d) s/)![1]);
  assert.ok(seconds >= 3, `gave up after ${seconds} s, before the promise ran out`);
});

Deno.test("python device, mode 1: --keepalive treats a stopped manager as gone and reconnects", async () => {
  await using manager = new ManagerProcess({ heartbeatRate: 0.5, heartbeatTimeout: 1 });
  await using device = new PythonDevice(await manager.port(), 1, ["--keepalive", "2"]);
  // Six rounds of 0.5 s: the live manager is watched for longer than the 2 s keepalive.
  const line = await silenceAfterLife(
    manager,
    device,
    1,
    6,
    /^disconnected: the manager sent nothing for \d+\.\d s \(--keepalive 2\)$/,
  );
  const seconds = Number(line.match(/for (\d+\.\d) s/)![1]);
  assert.ok(seconds >= 2, `gave up after ${seconds} s, before --keepalive 2 ran out`);
});
