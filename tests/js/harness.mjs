// Shared helpers for the package tests: a loopback server for the packed
// package and test pages, and headless Chromium through playwright-core.

import { chromium } from "playwright-core";
import { after, before } from "node:test";
import { execFile, spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../../www/serve.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const PACKAGE_DIR = join(ROOT, "target/npm/package");
export const VERIFY_BIN = join(ROOT, "target/release/annal-verify");
export const SERVER_BIN = join(ROOT, "target/release/annal-server");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** The flags every Chromium in these tests runs with. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Serves the test pages at / and the packed package at /annal/. */
export async function startServer() {
  return serve({ mounts: { "/": join(ROOT, "tests/js/pages"), "/annal/": PACKAGE_DIR } });
}

/** A fresh headless Chromium with a fresh profile; `args` are extra flags. */
export async function launch({ args = [] } = {}) {
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...args] });
}

/** A page of `url` with the package loaded as `window.annal` (and `window.testing`). */
export async function openPage(context, url, path = "/index.html") {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(url + path);
  await page.waitForFunction(() => window.annalReady === true);
  return page;
}

/**
 * Chromium started by hand on a given profile, so a test can SIGKILL it the
 * way a crash or a power cut ends a browser, then start it again on the
 * same profile.
 */
export async function launchKillable(profileDir) {
  const proc = spawn(CHROMIUM, [...CHROMIUM_ARGS, `--user-data-dir=${profileDir}`, "--remote-debugging-port=0", "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"],
    // Its own process group, so the kill takes every Chromium process at once.
    detached: true,
  });
  const endpoint = await new Promise((ok, fail) => {
    let err = "";
    const timer = setTimeout(() => fail(new Error(`chromium did not start: ${err}`)), 30000);
    proc.stderr.on("data", (d) => {
      err += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    proc.once("exit", (code) => fail(new Error(`chromium exited with ${code}: ${err}`)));
  });
  const browser = await chromium.connectOverCDP(endpoint);
  return {
    browser,
    context: browser.contexts()[0],
    kill: () =>
      new Promise((ok) => {
        proc.once("exit", ok);
        process.kill(-proc.pid, "SIGKILL");
      }),
  };
}

/** A temporary folder, removed by the returned cleanup. */
export async function tempDir(prefix) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export { readFile };

/**
 * Registers before/after hooks for a test file: a server, a browser, a
 * context and a page with the package loaded. Fields are filled in before
 * the first test runs.
 */
export function useBrowser() {
  const env = {};
  before(async () => {
    env.server = await startServer();
    env.url = env.server.url;
    env.browser = await launch();
    env.context = await env.browser.newContext();
    env.page = await openPage(env.context, env.url);
  });
  after(async () => {
    await env.browser?.close();
    env.server?.server.close();
  });
  return env;
}

/**
 * What the sync tests run on: the test pages' server, a real annal-server
 * (`serverOptions` as for {@link startAnnalServer}), a fresh Chromium and
 * a page of `/sync.html`, whose helpers (`self.h`) are in
 * pages/sync-helpers.js. `close()` ends them all.
 */
export async function startSyncEnv(serverOptions = {}) {
  const pages = await startServer();
  const server = await startAnnalServer({ origin: pages.url, ...serverOptions });
  const browser = await launch();
  const page = await openPage(await browser.newContext(), pages.url, "/sync.html");
  return {
    pages,
    server,
    browser,
    page,
    async close() {
      await browser.close();
      pages.server.close();
      await server.close();
    },
  };
}

/**
 * A real annal-server (target/release/annal-server, built by `make build`)
 * on a fresh SQLite file and token secret, listening on 127.0.0.1 on a free
 * port and allowing CORS from `origin` (the test pages' server). Resolves
 * once `/v1/health` answers.
 *
 * - `url`: its base URL; the port stays the same across restarts.
 * - `token(user, scope?, { tenant, ttl }?)`: a token minted by the CLI;
 *   scope `"own"` (default) or `"tenant"`, for `tenant` (default the one
 *   given here).
 * - `expiredToken(user, scope?, { tenant }?)`: a correctly signed token that
 *   expired an hour ago (the CLI cannot mint one).
 * - `freeze()`: SIGSTOP, so a request sent now stays unanswered;
 * - `kill()`: SIGKILL, the way a crash ends it; `stop()`: SIGTERM, a clean
 *   shutdown; `restart()`: start it again on the same database and port.
 * - `pull(token, after?)`: the whole ledger the token reads, from Node.
 * - `metric(name)`: a number from its `/metrics`.
 * - `exportLedger(tenant, out, user?)`: `annal-server export` to a file.
 *
 * `args` are extra `serve` arguments, e.g. `["--max-schema", "noted=1"]`.
 * The server is killed when the test process exits.
 */
export async function startAnnalServer({ origin, args = [], tenant = "study-1" } = {}) {
  if (!origin) throw new Error("startAnnalServer needs the origin of the test pages");
  await access(SERVER_BIN).catch(() => {
    throw new Error(`${SERVER_BIN} is missing; run \`make build\``);
  });
  const { dir, cleanup } = await tempDir("annal-server-");
  const secretFile = join(dir, "jwt-secret");
  const secret = randomBytes(32).toString("hex");
  await writeFile(secretFile, secret, { mode: 0o600 });
  const database = `sqlite:${join(dir, "annal.db")}`;
  let listen = "127.0.0.1:0";
  let proc = null;
  let url = null;
  const killOnExit = () => proc?.kill("SIGKILL");
  process.on("exit", killOnExit);

  async function start() {
    const child = spawn(
      SERVER_BIN,
      ["serve", "--database-url", database, "--jwt-secret-file", secretFile, "--listen", listen, "--cors-origin", origin, ...args],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const address = await new Promise((ok, fail) => {
      let err = "";
      const timer = setTimeout(() => fail(new Error(`annal-server did not start: ${err}`)), 30000);
      child.stderr.on("data", (d) => {
        err += d;
        const m = /listening on http:\/\/(\S+)\s/.exec(err);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      });
      child.once("error", (e) => fail(e));
      child.once("exit", (code) => fail(new Error(`annal-server exited with ${code}: ${err}`)));
    });
    // Keep draining stderr so the server never blocks on a full pipe.
    child.stderr.resume();
    proc = child;
    listen = address;
    url = `http://${address}`;
    for (let i = 0; ; i++) {
      const health = await fetch(`${url}/v1/health`).catch(() => null);
      if (health?.ok) break;
      if (i > 100) throw new Error(`annal-server at ${url} is not healthy`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }

  async function end(signal) {
    const child = proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    proc = null;
    await new Promise((ok) => {
      child.once("exit", ok);
      child.kill(signal);
    });
  }

  function run(...cliArgs) {
    return new Promise((ok, fail) =>
      execFile(SERVER_BIN, cliArgs, (error, stdout, stderr) => (error ? fail(new Error(`${error.message}\n${stderr}`)) : ok(stdout.trim()))),
    );
  }

  await start();
  const handle = {
    get url() {
      return url;
    },
    /** A temporary folder of this server's, removed by `close()`. */
    dir,
    tenant,
    token(user, scope = "own", { tenant: t = tenant, ttl = "1h" } = {}) {
      return run("token", "--tenant", t, "--user", user, "--scope", scope, "--ttl", ttl, "--jwt-secret-file", secretFile);
    },
    expiredToken(user, scope = "own", { tenant: t = tenant } = {}) {
      const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
      const exp = Math.floor(Date.now() / 1000) - 3600;
      const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, tenant: t, exp, aud: "annal", scope })}`;
      return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
    },
    async pull(token, after = 0) {
      const items = [];
      let ledger;
      for (;;) {
        const res = await fetch(`${url}/v1/events?after=${after}&limit=1000`, { headers: { authorization: `Bearer ${token}` } });
        if (!res.ok) throw new Error(`pull: ${res.status} ${await res.text()}`);
        const page = await res.json();
        ledger = page.ledger;
        items.push(...page.items);
        if (!page.has_more) return { ledger, items };
        after = page.next_after;
      }
    },
    /** The value of a Prometheus metric of `/metrics` (the first line that starts with `name`). */
    async metric(name) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return line === undefined ? undefined : Number(line.split(" ").at(-1));
    },
    /** Writes a ledger export (docs/FORMAT.md §11.6) to `out`: the tenant ledger, or `user`'s. */
    exportLedger(t, out, user) {
      return run("export", "--database-url", database, "--tenant", t, ...(user ? ["--user", user] : []), "--out", out);
    },
    kill: () => end("SIGKILL"),
    /** SIGSTOP: the process stays, with its sockets open, but handles nothing until killed. */
    freeze: () => proc?.kill("SIGSTOP"),
    stop: () => end("SIGTERM"),
    async restart() {
      await end("SIGKILL");
      await start();
    },
    async close() {
      await end("SIGKILL");
      process.off("exit", killOnExit);
      await cleanup();
    },
  };
  return handle;
}

/**
 * The app's own auth server, as a service worker's `getToken` reaches it:
 * `POST /token { name, refresh }` answers `{ token }` for the user and
 * tenant registered for store `name`, minted by `annal`'s CLI; and
 * `POST /report { name, ... }` keeps what a worker reports about a pass.
 * Loopback only, CORS for `origin`.
 *
 * - `register(name, { user, tenant, scope })`: whose tokens store `name` gets;
 * - tokens are cached per store, as an app caches its access token: a
 *   request with `refresh: false` gets the cached one, `refresh: true` a
 *   newly minted one (which is then cached);
 * - `expireCached(name)`: the cached token of `name` becomes an expired one
 *   (correctly signed), as a token kept while the device was offline;
 * - `calls`: every token request `{ name, refresh, expired }` (whether
 *   the token handed out had expired);
 * - `reports(name)`: what was reported for `name`, oldest first;
 *   `waitReport(name, predicate, ms)`: the first one that matches, waiting.
 */
export async function startAuthServer({ annal, origin }) {
  const users = new Map();
  const cache = new Map();
  const calls = [];
  const reports = [];
  const cors = {
    "access-control-allow-origin": origin,
    "access-control-allow-methods": "POST",
    "access-control-allow-headers": "content-type",
  };
  const server = createServer(async (req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { ...cors, "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "OPTIONS") {
      res.writeHead(204, cors);
      return res.end();
    }
    let body;
    try {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return reply(400, { error: "not JSON" });
    }
    const path = new URL(req.url, "http://x").pathname;
    if (req.method === "POST" && path === "/report") {
      reports.push({ ...body, at: Date.now() });
      return reply(200, {});
    }
    if (req.method === "POST" && path === "/token") {
      const who = users.get(body.name);
      if (!who) return reply(404, { error: `no user for store ${body.name}` });
      const refresh = body.refresh === true;
      if (refresh || !cache.has(body.name)) {
        cache.set(body.name, { token: await annal.token(who.user, who.scope, { tenant: who.tenant }), expired: false });
      }
      const { token, expired } = cache.get(body.name);
      calls.push({ name: body.name, refresh, expired });
      return reply(200, { token });
    }
    reply(404, { error: "not found" });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    calls,
    register(name, { user, tenant = annal.tenant, scope = "own" }) {
      users.set(name, { user, tenant, scope });
    },
    expireCached(name) {
      const who = users.get(name);
      cache.set(name, { token: annal.expiredToken(who.user, who.scope, { tenant: who.tenant }), expired: true });
    },
    reports: (name) => reports.filter((r) => r.name === name),
    async waitReport(name, predicate = () => true, ms = 30_000) {
      return waitFor(() => reports.find((r) => r.name === name && predicate(r)), ms, `a report for ${name}`);
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** Polls `f` until it returns something truthy; fails after `ms` with `what`. */
export async function waitFor(f, ms = 30_000, what = "the condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await f();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}
