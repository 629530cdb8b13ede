// The bundle an app downloads for an entry point of the package: every
// module its static and dynamic imports reach from the entry, plus the
// files it loads with `new URL(..., import.meta.url)` (the .wasm), each
// gzipped at level 9 with node:zlib, as a server would send it.

import { readFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";

// Relative specifiers only: the package has no dependencies, and JSDoc
// examples name "annal/…", which this leaves out.
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}\/[^"']+)["']/g;
const ASSET = /new URL\(\s*["'](\.{0,2}\/?[^"']+)["']\s*,\s*import\.meta\.url\s*\)/g;

/** `{ entry, files: [{ path, bytes, gzip }], bytes, gzip, wasmGzip, jsGzip }` for `entry` under `packageDir`. */
export async function bundleSize(packageDir, entry) {
  const seen = new Map();
  const queue = [resolve(packageDir, entry)];
  while (queue.length) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    const body = await readFile(file);
    seen.set(file, body);
    if (!file.endsWith(".js")) continue;
    const text = body.toString("utf8");
    for (const re of [IMPORT, ASSET]) for (const m of text.matchAll(re)) queue.push(join(dirname(file), m[1]));
  }
  const files = [...seen].map(([path, body]) => ({ path: relative(packageDir, path), bytes: body.length, gzip: gzipSync(body, { level: 9 }).length })).sort((a, b) => a.path.localeCompare(b.path));
  const sum = (list, k) => list.reduce((n, f) => n + f[k], 0);
  const wasm = files.filter((f) => f.path.endsWith(".wasm"));
  const js = files.filter((f) => !f.path.endsWith(".wasm"));
  const wasmBodies = [...seen].filter(([path]) => path.endsWith(".wasm")).map(([, body]) => body);
  return {
    entry,
    files,
    bytes: sum(files, "bytes"),
    gzip: sum(files, "gzip"),
    wasmGzip: sum(wasm, "gzip"),
    jsGzip: sum(js, "gzip"),
    // Debug names a release build could strip: what they weigh.
    wasmNameSectionBytes: wasmBodies.reduce((n, b) => n + nameSection(b), 0),
    testingModules: files.filter((f) => f.path.includes("testing/")).map((f) => f.path),
  };
}

function nameSection(body) {
  return WebAssembly.Module.customSections(new WebAssembly.Module(body), "name").reduce((n, s) => n + s.byteLength, 0);
}
