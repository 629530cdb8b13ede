// A small static server for the demo and the browser tests. Loopback only.
//
//   node www/serve.mjs [--port 8080]
//
// serves www/ at / and the built npm package (target/npm/package) at /annal/.

import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

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
 * the longest matching prefix wins. Resolves with { server, port, url }.
 */
export async function serve({ mounts, port = 0, host = "127.0.0.1" }) {
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);

  const server = createServer(async (req, res) => {
    try {
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

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const root = resolve(fileURLToPath(import.meta.url), "../..");
  const at = process.argv.indexOf("--port");
  const port = at > 0 ? Number(process.argv[at + 1]) : 8080;
  const { url } = await serve({
    port,
    mounts: { "/": join(root, "www"), "/annal/": join(root, "target/npm/package") },
  });
  console.log(`annal demo on ${url}/  (Ctrl-C to stop)`);
}
