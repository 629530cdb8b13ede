import initWasm from "../wasm/annal.js";

let ready: Promise<unknown> | undefined;
let memory: WebAssembly.Memory | undefined;

/**
 * Loads the WebAssembly module once per context. Called by every entry
 * point; call it yourself only to pass your own module or URL, e.g. when a
 * bundler moves `annal_bg.wasm`.
 */
export function initAnnal(moduleOrPath?: RequestInfo | URL | Response | BufferSource | WebAssembly.Module): Promise<void> {
  if (!ready) {
    const loading = moduleOrPath === undefined ? initWasm() : initWasm({ module_or_path: moduleOrPath });
    ready = loading.then((exports) => {
      memory = exports.memory;
    });
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready.then(() => undefined);
}

/**
 * The WebAssembly memory of this context's annal instance, once loaded:
 * for benchmarks and leak tests (its `buffer.byteLength` is the heap's
 * high-water mark, since wasm memory never shrinks). Exported by
 * `annal/testing`.
 */
export function wasmMemory(): WebAssembly.Memory | undefined {
  return memory;
}
