// Memory readings. annal exposes no handle on its WebAssembly instance, so
// the linear memory is reached through the wasm-bindgen glue the package
// ships: its default export, called once the module is initialized,
// returns the instance's exports, `memory` among them. That is
// wasm-bindgen's behaviour, not annal's API, hence the checks.

import initWasm from "/annal/wasm/annal.js";
import { initAnnal } from "/annal/dist/index.js";

let memory = null;

/** Finds the wasm memory; resolves with how it was found, or why not. */
export async function attach() {
  await initAnnal();
  const exports = await initWasm().catch(() => null);
  if (exports?.memory instanceof WebAssembly.Memory) {
    memory = exports.memory;
    return { wasm: "the wasm-bindgen glue's init() result (wasm/annal.js), exports.memory" };
  }
  return { wasm: null, why: "the wasm-bindgen glue did not return the instance exports" };
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
