/**
 * The machine and tools a run used, for the top of every document, and the
 * open-file limit the larger fleets need.
 *
 * @module
 */

import type { Environment } from "./report/results.ts";
import { readProcFile } from "./wire.ts";

/** The process's open-file limit (`Infinity` if unlimited), or `null` where `/proc` cannot say. */
export async function openFileLimit(): Promise<number | null> {
  try {
    const limits = await readProcFile(`/proc/${Deno.pid}/limits`);
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    return match ? (match[1] === "unlimited" ? Infinity : Number(match[1])) : null;
  } catch {
    return null;
  }
}

/** The machine, Deno and the brokers found (`redis` on `--cluster` runs only). */
export async function environment(
  mosquitto: string | null,
  redis?: string | null,
): Promise<Environment> {
  let cpu = "unknown CPU";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(await readProcFile("/proc/cpuinfo"))?.[1] ?? cpu;
  } catch { /* not Linux */ }
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    os: `${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`,
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Deno.systemMemoryInfo().total / 1024 ** 3,
    openFiles: await openFileLimit(),
    mosquitto,
    ...(redis !== undefined ? { redis } : {}),
  };
}
