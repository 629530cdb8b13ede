// --cpu-profile DIR: a V8 CPU profile of every annal and sync call the workloads
// make, through the DevTools protocol, written as DIR/NN-<call>.cpuprofile
// (open it in Chromium's DevTools, Performance panel), with the functions
// that took the most self time printed as the run goes. A wasm build that
// keeps its name section (see BENCHMARKS.md, "Profiling") names the Rust
// functions; the default build shows them as wasm-function[N].

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The calls profiled: annal's own work (the baselines are not). */
const PROFILED = ["annal.", "sync."];

/** Wraps `call(path, ...args)` so that the PROFILED calls are profiled into `dir`. */
export async function profiledCall(page, dir, call, log) {
  await mkdir(dir, { recursive: true });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  let n = 0;
  return async (path, ...args) => {
    if (!PROFILED.some((p) => path.startsWith(p))) return call(path, ...args);
    await cdp.send("Profiler.start");
    let result;
    try {
      result = await call(path, ...args);
    } finally {
      const { profile } = await cdp.send("Profiler.stop");
      const file = join(dir, `${String(++n).padStart(2, "0")}-${path.replace(/[^\w.-]/g, "_")}.cpuprofile`);
      await writeFile(file, JSON.stringify(profile));
      log(`    profile of ${path}: ${file}`);
      for (const line of topSelf(profile, 12)) log(`      ${line}`);
    }
    return result;
  };
}

/** The `count` functions with the most self time, as printable lines. */
export function topSelf(profile, count) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  profile.samples?.forEach((id, i) => {
    const node = byId.get(id);
    const dt = deltas[i + 1] ?? 0;
    const f = node.callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url ? f.url.split("/").pop() : ""}`.trim();
    self.set(name, (self.get(name) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, us]) => `${((100 * us) / (total || 1)).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms  ${name}`);
}
