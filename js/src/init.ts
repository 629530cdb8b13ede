import initWasm from "../wasm/annal.js";

let ready: Promise<unknown> | undefined;

/**
 * Loads the WebAssembly module once per context. Called by every entry
 * point; call it yourself only to pass your own module or URL, e.g. when a
 * bundler moves `annal_bg.wasm`.
 */
export function initAnnal(moduleOrPath?: RequestInfo | URL | Response | BufferSource | WebAssembly.Module): Promise<void> {
  if (!ready) {
    ready = moduleOrPath === undefined ? initWasm() : initWasm({ module_or_path: moduleOrPath });
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready.then(() => undefined);
}
