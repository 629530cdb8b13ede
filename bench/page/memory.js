// Memory readings: annal's wasm memory through `wasmMemory()` of
// annal/testing, and the JS heap through Chromium's performance.memory.

import { initAnnal } from "/annal/dist/index.js";
import { wasmMemory as annalMemory } from "/annal/dist/testing/index.js";

let memory = null;

/** Finds the wasm memory; resolves with how it was found, or why not. */
export async function attach() {
  await initAnnal();
  memory = annalMemory() ?? null;
  return memory ? { wasm: "wasmMemory() of annal/testing" } : { wasm: null, why: "wasmMemory() returned nothing after initAnnal()" };
}

/** Bytes of wasm linear memory now, or null when unreachable. */
export function wasmMemory() {
  return memory ? memory.buffer.byteLength : null;
}

/** Used JS heap bytes, garbage included (Chromium's `performance.memory`, precise with --enable-precise-memory-info), or null. */
export function jsHeap() {
  return performance.memory?.usedJSHeapSize ?? null;
}

/** Used JS heap bytes right after a full garbage collection (`gc()` from --js-flags=--expose-gc): what is really kept; or null. */
export function liveJsHeap() {
  if (typeof globalThis.gc !== "function") return null;
  globalThis.gc();
  return jsHeap();
}
