// What the figures were measured on: CPU model and cores, RAM, load.

import { readFile } from "node:fs/promises";
import { cpus, loadavg, totalmem, release } from "node:os";

export async function machine() {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? cpus()[0]?.model ?? "unknown";
  const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length || cpus().length;
  return { cpu: model, cores, ramBytes: totalmem(), kernel: release(), node: process.version, loadAverage: loadavg().map((x) => Math.round(x * 100) / 100) };
}

/** The 1-minute load average now (recorded at the start and the end of a run). */
export function load() {
  return Math.round(loadavg()[0] * 100) / 100;
}
