// A small static server for the demo and the browser tests. Loopback only.
//
//   node www/serve.mjs [--port 8080] [--annal-server 127.0.0.1:8787 --data-dir target/demo]
//
// serves www/ at / and the built npm package (target/npm/package) at /annal/.
// With --annal-server it is the whole demo (`make demo`): it also starts
// annal-server on that address, with its SQLite database and token secret
// in --data-dir, and mounts www/demo_backend.mjs (the /sync/ proxy with its
// offline switch, and the /demo/ token endpoint). Ctrl-C stops both.

import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { startDemoBackend } from "./demo_backend.mjs";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".ts": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/**
 * Starts a server. `mounts` maps URL prefixes (ending in "/") to folders;
 * the longest matching prefix wins. `routes(req, res)`, if given, is asked
 * first and resolves with whether it answered. Resolves with
 * { server, port, url }.
 */
export async function serve({ mounts, port = 0, host = "127.0.0.1", routes }) {
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);

  const server = createServer(async (req, res) => {
    try {
      if (routes && (await routes(req, res))) return;
      const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      const mount = table.find(([prefix]) => path.startsWith(prefix));
      if (!mount) return send(res, 404, "not found");
      const [prefix, dir] = mount;
      let file = resolve(join(dir, path.slice(prefix.length)));
      if (file !== dir && !file.startsWith(dir + sep)) return send(res, 403, "forbidden");
      if ((await stat(file).catch(() => null))?.isDirectory()) file = join(file, "index.html");
      const body = await readFile(file).catch(() => null);
      if (!body) return send(res, 404, "not found");
      res.writeHead(200, {
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
        // Sandboxed (opaque-origin) frames in the tests load modules too.
        "access-control-allow-origin": "*",
        // A page may register a service worker from a subfolder for the whole site.
        "service-worker-allowed": "/",
      });
      res.end(body);
    } catch (e) {
      send(res, 500, String(e));
    }
  });
  await new Promise((ok, fail) => server.once("error", fail).listen(port, host, ok));
  const actual = server.address().port;
  return { server, port: actual, url: `http://${host}:${actual}` };
}

function send(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain" });
  res.end(text);
}

const ROOT = resolve(fileURLToPath(import.meta.url), "../..");

/**
 * The demo as `make demo` runs it: www/ and the package, and with
 * `annalServer: { listen, dataDir, log?, onExit? }` also annal-server behind
 * the demo backend. Resolves with { url, backend, close() }; `backend` is
 * that of www/demo_backend.mjs, or null.
 */
export async function startDemo({ port = 0, annalServer } = {}) {
  let backend = null;
  const web = await serve({
    port,
    mounts: { "/": join(ROOT, "www"), "/annal/": join(ROOT, "target/npm/package") },
    routes: (req, res) => backend?.handle(req, res) ?? false,
  });
  const close = async () => {
    await backend?.close();
    web.server.closeAllConnections();
    await new Promise((ok) => web.server.close(ok));
  };
  if (annalServer) {
    try {
      backend = await startDemoBackend({ origin: web.url, ...annalServer });
    } catch (e) {
      await close();
      throw e;
    }
  }
  return { url: web.url, backend, close };
}

function option(name) {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const listen = option("--annal-server");
  const demo = await startDemo({
    port: Number(option("--port") ?? 8080),
    annalServer: listen && {
      listen,
      dataDir: resolve(option("--data-dir") ?? join(ROOT, "target/demo")),
      log: process.stderr,
      onExit: (code) => {
        console.error(`annal-server stopped (${code}); stopping the demo`);
        process.exit(1);
      },
    },
  });
  console.log(`annal demo on ${demo.url}/  (Ctrl-C to stop)`);
  if (demo.backend) console.log(`annal-server on ${demo.backend.url} (the page syncs through ${demo.url}/sync)`);
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      demo.close().then(() => process.exit(0));
    });
  }
}
