// The demo's stand-in for a deployment: a real annal-server on SQLite, an
// "auth server" that mints its tokens, and a network that can be unplugged.
// Node only; www/serve.mjs mounts it for `make demo` and the demo test.
//
// The page reaches annal-server through this process (`/sync/*`), so that
// "Go offline" can really cut it off: while offline every proxied request,
// and every one in flight (the live stream included), has its connection
// dropped, and the store sees exactly what a lost network looks like.
//
// Loopback only: annal-server listens on 127.0.0.1, and the /demo/
// endpoints answer only loopback clients of the demo's own origin.

import { execFile, spawn } from "node:child_process";
import { access, mkdir } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(import.meta.url), "../..");
const SERVER_BIN = join(ROOT, "target/release/annal-server");

/** Headers the sync protocol uses (server/src/lib.rs allows these for CORS too). */
const FORWARDED_REQUEST_HEADERS = ["authorization", "content-type", "content-length", "accept", "last-event-id"];
/** Per-hop headers, and CORS headers that mean nothing on the page's own origin. */
const HOP_BY_HOP = /^(connection|keep-alive|transfer-encoding|upgrade|proxy-.*|te|trailer|access-control-.*)$/i;

/** How a token request may name a tenant or user: annal's id rules (README "Input rules"). */
function checkId(value, field) {
  if (typeof value !== "string" || value.length === 0 || Buffer.byteLength(value, "utf8") > 256 || /[\p{Cc}]/u.test(value)) {
    throw new RangeError(`${field} must be 1 to 256 bytes of UTF-8 without control characters`);
  }
  return value;
}

function checkScope(value) {
  if (value !== "own" && value !== "tenant") throw new RangeError('scope must be "own" or "tenant"');
  return value;
}

/**
 * Starts annal-server and returns the demo backend:
 *
 * - `url`: annal-server's own URL (CORS allows `origin`, for direct use);
 * - `handle(req, res)`: answers `/demo/*` and `/sync/*`, returns whether it did;
 * - `token({ tenant, user, scope })`: a token minted by `annal-server token`;
 * - `online`, `setOnline(bool)`: the simulated network;
 * - `dropped`: every proxied request it cut off, as `{ method, path }`
 *   (the path under `/sync`), so a test can tell them from real failures;
 * - `close()`: drops the proxied connections and stops annal-server.
 *
 * `listen` is annal-server's address (`127.0.0.1:0` for any free port),
 * `dataDir` holds its SQLite database and token secret, `log` gets its
 * stderr (or nothing), and `onExit(code)` is told if it stops by itself.
 */
export async function startDemoBackend({ origin, listen = "127.0.0.1:8787", dataDir, log = null, onExit = () => {} }) {
  if (!origin || !dataDir) throw new Error("startDemoBackend needs the page origin and a data folder");
  if (!/^127\.0\.0\.1:\d+$/.test(listen)) throw new Error(`annal-server must listen on 127.0.0.1, not ${listen}`);
  await access(SERVER_BIN).catch(() => {
    throw new Error(`${SERVER_BIN} is missing; run \`make build\``);
  });
  await mkdir(dataDir, { recursive: true });
  const secretFile = join(dataDir, "jwt-secret");
  const database = `sqlite:${join(dataDir, "annal.db")}`;

  let closing = false;
  const child = spawn(
    SERVER_BIN,
    ["serve", "--database-url", database, "--jwt-secret-file", secretFile, "--listen", listen, "--cors-origin", origin],
    // Its own process group: Ctrl-C reaches only the demo server, which
    // then stops annal-server itself, in order.
    { stdio: ["ignore", "ignore", "pipe"], detached: true },
  );
  const killOnExit = () => child.kill("SIGKILL");
  process.on("exit", killOnExit);
  const exited = new Promise((ok) => child.once("exit", (code, signal) => ok(code ?? signal)));

  const address = await new Promise((ok, fail) => {
    let err = "";
    const timer = setTimeout(() => fail(new Error(`annal-server did not start: ${err}`)), 30_000);
    const onData = (d) => {
      err += d;
      const m = /listening on http:\/\/(\S+)\s/.exec(err);
      if (m) {
        clearTimeout(timer);
        child.stderr.off("data", onData);
        ok(m[1]);
      }
    };
    child.stderr.on("data", onData);
    child.once("error", (e) => fail(e));
    child.once("exit", (code) => fail(new Error(`annal-server exited with ${code}: ${err.trim()}`)));
  }).catch((e) => {
    process.off("exit", killOnExit);
    child.kill("SIGKILL");
    throw e;
  });
  // Keep draining stderr, so annal-server never blocks on a full pipe.
  if (log) child.stderr.pipe(log, { end: false });
  else child.stderr.resume();
  exited.then((code) => {
    process.off("exit", killOnExit);
    if (!closing) onExit(code);
  });

  const [host, port] = address.split(":");
  const url = `http://${address}`;
  let online = true;
  const dropped = [];
  /** Proxied exchanges in flight: { req, res, upstream, method, path }. */
  const inFlight = new Set();

  function drop(exchange) {
    dropped.push({ method: exchange.method, path: exchange.path });
    exchange.upstream?.destroy();
    // No response, or half a response: the browser sees the network fail.
    exchange.req.socket.destroy();
  }

  function proxy(req, res, path) {
    const exchange = { req, res, upstream: null, method: req.method, path };
    if (!online) return drop(exchange);
    const headers = {};
    for (const name of FORWARDED_REQUEST_HEADERS) if (req.headers[name] !== undefined) headers[name] = req.headers[name];
    const upstream = httpRequest({ host, port: Number(port), method: req.method, path, headers }, (answer) => {
      const out = {};
      for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.test(name)) out[name] = value;
      res.writeHead(answer.statusCode, out);
      // Piped, not buffered: Server-Sent Events reach the page as they come.
      res.flushHeaders();
      answer.pipe(res);
      answer.once("error", () => res.destroy());
    });
    exchange.upstream = upstream;
    inFlight.add(exchange);
    const done = () => inFlight.delete(exchange);
    res.once("close", () => {
      done();
      upstream.destroy();
    });
    upstream.once("error", () => {
      done();
      if (req.socket.destroyed) return;
      if (res.headersSent) res.destroy();
      else json(res, 502, { error: "annal-server is not answering" });
    });
    req.pipe(upstream);
  }

  function mint({ tenant, user, scope = "own" }) {
    const args = [
      "token",
      // `--flag=value`, so an id that starts with "-" stays a value.
      `--tenant=${checkId(tenant, "tenant")}`,
      `--user=${checkId(user, "user")}`,
      `--scope=${checkScope(scope)}`,
      "--ttl=1h",
      `--jwt-secret-file=${secretFile}`,
    ];
    return new Promise((ok, fail) =>
      execFile(SERVER_BIN, args, { timeout: 10_000 }, (error, stdout, stderr) =>
        error ? fail(new Error(`annal-server token failed: ${stderr.trim() || error.message}`)) : ok(stdout.trim()),
      ),
    );
  }

  function setOnline(value) {
    online = value === true;
    if (!online) for (const exchange of [...inFlight]) drop(exchange);
  }

  /** Loopback clients of the demo page only: a token endpoint is a key to every user's ledger. */
  function trusted(req) {
    const remote = req.socket.remoteAddress;
    const loopback = remote === "127.0.0.1" || remote === "::1" || remote === "::ffff:127.0.0.1";
    const site = req.headers["sec-fetch-site"];
    return loopback && req.headers.origin === origin && (site === undefined || site === "same-origin");
  }

  async function handle(req, res) {
    const { pathname, search } = new URL(req.url, "http://x");
    if (pathname === "/sync" || pathname.startsWith("/sync/")) {
      proxy(req, res, (pathname.slice("/sync".length) || "/") + search);
      return true;
    }
    if (!pathname.startsWith("/demo/")) return false;
    try {
      if (pathname === "/demo/network" && req.method === "GET") {
        return json(res, 200, { online, annalServer: url });
      }
      if (req.method !== "POST") return json(res, 405, { error: "POST only" });
      if (!trusted(req)) return json(res, 403, { error: "only the demo page on this machine may call /demo/" });
      const body = await readJson(req);
      if (pathname === "/demo/network") {
        setOnline(body.online);
        return json(res, 200, { online });
      }
      if (pathname === "/demo/token") {
        return json(res, 200, { token: await mint(body) });
      }
      return json(res, 404, { error: "not found" });
    } catch (e) {
      return json(res, e instanceof RangeError || e instanceof SyntaxError ? 400 : 500, { error: e.message });
    }
  }

  return {
    url,
    handle,
    token: mint,
    get online() {
      return online;
    },
    setOnline,
    dropped,
    async close() {
      closing = true;
      for (const exchange of [...inFlight]) {
        exchange.upstream?.destroy();
        exchange.req.socket.destroy();
      }
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

function json(res, status, value) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(value));
  return true;
}

async function readJson(req) {
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 4096) throw new RangeError("request body too large");
  }
  const value = JSON.parse(text || "{}");
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new SyntaxError("the body must be a JSON object");
  return value;
}
