// A fault-injecting HTTP proxy for the sync tests: it stands between the
// browser and a real annal-server, forwards every request (CORS preflights
// included, every header both ways) and can be told, per test, to lose a
// response after the server committed, answer 5xx/429 itself, run a hook
// while a request is in flight (e.g. SIGKILL the server), pretend to be an
// incompatible server, or serve a rewritten ledger like a malicious server.
//
// Also the ledger and event hashes of docs/FORMAT.md §4, §5 and §11.3 in
// Node, so a forged history can be made self-consistent.
//
// Loopback only: it listens on 127.0.0.1 and forwards to `target`.

import { createHash } from "node:crypto";
import http from "node:http";

export const GENESIS = "0".repeat(64);

// ---------------------------------------------------------------------------
// Hashing (docs/FORMAT.md §4, §5, §11.3)

/**
 * RFC 8785 (JCS) canonical form of a JSON value (§4): no whitespace, members
 * sorted by UTF-16 code units (what `Array.prototype.sort` compares),
 * strings and numbers as `JSON.stringify` writes them.
 */
export function jcs(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error("JCS: not a finite number");
    if (value === undefined) throw new Error("JCS: undefined");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  const keys = Object.keys(value)
    .filter((k) => value[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(",")}}`;
}

const sha256 = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

/** `payload_digest` (§4): hex(SHA-256(salt ‖ JCS(payload))), salt as 32 hex digits. */
export function payloadDigest(saltHex, payload) {
  return sha256(Buffer.from(saltHex, "hex"), Buffer.from(jcs(payload), "utf8"));
}

/** An envelope's `hash` (§5): SHA-256 of the JCS of the envelope without `hash`. */
export function eventHash(envelope) {
  const { hash: _, ...rest } = envelope;
  return sha256(Buffer.from(jcs(rest), "utf8"));
}

/** A ledger entry's `hash` (§11.3); `format` is added, `hash` left out. */
export function entryHash(entry) {
  const { tenant_id, ledger, seq, event_hash, outcome, received_at, prev } = entry;
  return sha256(Buffer.from(jcs({ format: "annal-ledger/1", tenant_id, ledger, seq, event_hash, outcome, received_at, prev }), "utf8"));
}

/**
 * Checks a list of pulled items (from seq 1) the way §11.4 says, in Node:
 * returns `null` when every entry, receipt and event hash agrees, or the
 * first problem as a string. Device chains are not followed.
 */
export function checkItems(items, { ledger, tenant } = {}) {
  let prev = GENESIS;
  for (const [n, { entry, receipt, event }] of items.entries()) {
    const at = `seq ${entry.seq}`;
    if (entry.seq !== n + 1) return `${at}: expected seq ${n + 1}`;
    if (ledger && entry.ledger !== ledger) return `${at}: ledger ${entry.ledger}`;
    if (tenant && entry.tenant_id !== tenant) return `${at}: tenant ${entry.tenant_id}`;
    if (entry.prev !== prev) return `${at}: prev`;
    if (entryHash(entry) !== entry.hash) return `${at}: entry hash`;
    const [rseq, rhash] = entry.ledger === "tenant" ? [receipt.server_seq, receipt.ledger_hash] : [receipt.user_seq, receipt.user_ledger_hash];
    if (rseq !== entry.seq || rhash !== entry.hash || receipt.received_at !== entry.received_at) return `${at}: receipt`;
    if (event) {
      if (eventHash(event.envelope) !== event.envelope.hash) return `${at}: event hash`;
      if (event.envelope.hash !== entry.event_hash) return `${at}: event_hash`;
      if (payloadDigest(event.salt, event.payload) !== event.envelope.payload_digest) return `${at}: payload_digest`;
    }
    prev = entry.hash;
  }
  return null;
}

/**
 * A malicious server's rewrite of a ledger (a list of pulled items from seq
 * 1, not modified): the event of entry `seq` gets the payload
 * `payload(old)`, and then every hash that depends on it is recomputed so
 * the result is self-consistent: the event's `payload_digest` and `hash`,
 * its entry's `event_hash`, and every entry's `hash` and `prev` from there
 * on, with the receipts' hashes for this ledger. With `deviceChain`, the
 * later events of the same device are re-linked too (`prev_hash`, `hash`,
 * their entries' `event_hash`), so not even the device chain shows it:
 * only an anchor (a checkpoint or receipt the client kept) does.
 */
export function forgeItems(items, { seq, payload = (p) => ({ ...p, forged: true }), deviceChain = false }) {
  const out = structuredClone(items);
  const at = out.findIndex((i) => i.entry.seq === seq);
  if (at < 0) throw new Error(`forgeItems: no entry ${seq}`);
  const target = out[at];
  if (!target.event) throw new Error(`forgeItems: entry ${seq} has no event`);
  const ev = target.event;
  ev.payload = payload(ev.payload);
  ev.envelope.payload_digest = payloadDigest(ev.salt, ev.payload);
  const renamed = new Map([[ev.envelope.hash, eventHash(ev.envelope)]]);
  ev.envelope.hash = renamed.get(ev.envelope.hash);
  target.entry.event_hash = ev.envelope.hash;
  const device = ev.envelope.device_id;
  let prev = target.entry.prev;
  for (const item of out.slice(at)) {
    const e = item.event?.envelope;
    if (deviceChain && item !== target && e?.device_id === device && renamed.has(e.prev_hash)) {
      const old = e.hash;
      e.prev_hash = renamed.get(e.prev_hash);
      e.hash = eventHash(e);
      renamed.set(old, e.hash);
      item.entry.event_hash = e.hash;
    }
    item.entry.prev = prev;
    item.entry.hash = entryHash(item.entry);
    if (item.entry.ledger === "tenant") item.receipt.ledger_hash = item.entry.hash;
    else item.receipt.user_ledger_hash = item.entry.hash;
    prev = item.entry.hash;
  }
  return out;
}

// ---------------------------------------------------------------------------
// The proxy

/**
 * Which requests a fault applies to: `"POST /v1/events"` (method and path,
 * query ignored), a RegExp tested on `"METHOD /path?query"`, or a function
 * of the request context. Preflights are `OPTIONS`, so they match only a
 * matcher that says so.
 */
function matcher(match) {
  if (typeof match === "function") return match;
  if (match instanceof RegExp) return (ctx) => match.test(`${ctx.method} ${ctx.url}`);
  if (typeof match === "string") {
    const [method, path] = match.split(" ");
    return (ctx) => ctx.method === method && ctx.path === path;
  }
  throw new Error(`netproxy: bad match ${match}`);
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"]);

/**
 * Starts the proxy. `target` is the annal-server base URL (127.0.0.1).
 * With `keepAlive: false` every answer closes its connection, so each
 * request comes on a fresh one: Chromium silently resends a request whose
 * reused keep-alive connection dropped before any answer (POSTs included),
 * which would hide a lost response from the page. The handle:
 *
 * - `url`: the proxy's base URL, to give the store as `serverUrl`.
 * - `log`: every request, `{ method, url, path, status, fault, forwarded, at, ms }`
 *   (`at` when it came, `ms` until it was answered);
 *   `count(match)` counts the matching ones.
 * - `loseResponses(n, match = "POST /v1/events")`: the next `n` matching
 *   requests reach the server, the proxy waits for its whole answer (so it
 *   committed), then destroys the client's connection instead of answering.
 * - `failWith(status, { retryAfter, count = 1, match = "POST /v1/events", expose = true })`:
 *   answers the next `count` matching requests itself with `status`, a
 *   `Retry-After: retryAfter` header (seconds) when given, and a JSON error,
 *   without forwarding. With `expose` the answer lets the page read
 *   `Retry-After` (Access-Control-Expose-Headers).
 * - `onRequest(match, hook, { when = "forwarded" })`: calls `await hook(ctx)`
 *   for every matching request, `ctx = { method, url, path, headers, body, n }`
 *   (`n` counts matching requests from 1): with `when: "forwarded"` once
 *   the request and its whole body were written to the server and before
 *   its answer is read (kill the server there to crash it mid-request), with
 *   `"before"` before anything is forwarded. A hook returning `"destroy"`
 *   drops the client's connection. Returns a function that removes it.
 * - `schema(body)`: answers `GET /v1/schema` with `body` (JSON); `null`
 *   forwards again.
 * - `forgeLedger({ seq, payload?, deviceChain? })`: from now on, pulls
 *   (`GET /v1/events`) serve the ledger rewritten by {@link forgeItems}.
 * - `dropLedgerEntry(seq)`: from now on, pull pages leave out entry `seq`
 *   (nothing else changes).
 * - `clear()`: removes every fault; `close()`: stops the proxy.
 *
 * When the server cannot be reached, the proxy drops the client's
 * connection, as a dead server would. `GET /v1/stream` (SSE) is passed
 * through as it comes; every other answer is read whole first.
 */
export async function startNetProxy({ target, keepAlive = true }) {
  const up = new URL(target);
  if (up.hostname !== "127.0.0.1") throw new Error("netproxy forwards to 127.0.0.1 only");
  const log = [];
  let faults = [];
  let schemaBody = null;
  let ledgerRewrites = [];
  const sockets = new Set();

  /** One request to the server: resolves `{ status, headers, body }`, or rejects. */
  function forward(ctx, afterSend) {
    return new Promise((ok, fail) => {
      const headers = { ...ctx.headers, host: up.host };
      delete headers["content-length"];
      if (ctx.body.length) headers["content-length"] = String(ctx.body.length);
      const req = http.request(
        { host: up.hostname, port: up.port, method: ctx.method, path: ctx.url, headers, agent: false },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on("error", fail);
          res.on("aborted", () => fail(new Error("the server's answer was cut")));
        },
      );
      req.on("error", fail);
      req.end(ctx.body, () => {
        // The whole request is written; the server may be handling it now.
        if (afterSend) afterSend().catch(fail);
      });
    });
  }

  /** The whole ledger the request's token reads, from the server. */
  async function wholeLedger(ctx) {
    const items = [];
    let after = 0;
    let ledger;
    for (;;) {
      const r = await forward({ ...ctx, method: "GET", url: `/v1/events?after=${after}&limit=1000`, body: Buffer.alloc(0) });
      if (r.status !== 200) return null;
      const page = JSON.parse(r.body);
      ledger = page.ledger;
      items.push(...page.items);
      if (!page.has_more || page.items.length === 0) return { ledger, items };
      after = page.next_after;
    }
  }

  /** A pull page served from a rewritten ledger, as the server pages it. */
  async function rewrittenPage(ctx) {
    const whole = await wholeLedger(ctx);
    if (!whole) return null;
    let items = whole.items;
    for (const rewrite of ledgerRewrites) items = rewrite(items);
    const q = new URL(ctx.url, "http://x").searchParams;
    const after = Number(q.get("after") ?? 0);
    const limit = Math.min(Math.max(Number(q.get("limit") ?? 100), 1), 1000);
    const rest = items.filter((i) => i.entry.seq > after);
    const page = rest.slice(0, limit);
    return {
      ledger: whole.ledger,
      items: page,
      next_after: page.length ? page.at(-1).entry.seq : after,
      has_more: rest.length > limit,
    };
  }

  function cors(ctx, expose) {
    const origin = ctx.headers.origin;
    return origin
      ? { "access-control-allow-origin": origin, vary: "origin", ...(expose ? { "access-control-expose-headers": "retry-after" } : {}) }
      : {};
  }

  function answer(res, status, headers, body) {
    const out = {};
    for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
    out["content-length"] = String(body.length);
    if (!keepAlive) out.connection = "close";
    res.writeHead(status, out);
    res.end(body);
  }

  function drop(req) {
    req.socket.destroy();
  }

  /**
   * Server-Sent Events pass through as they come (everything else is
   * buffered whole): when either side goes, so does the other.
   */
  function stream(ctx, entry, req, res) {
    entry.forwarded = true;
    const upstream = http.request(
      { host: up.hostname, port: up.port, method: "GET", path: ctx.url, headers: { ...ctx.headers, host: up.host }, agent: false },
      (r) => {
        entry.status = r.statusCode;
        const out = {};
        for (const [k, v] of Object.entries(r.headers)) if (!HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
        res.writeHead(r.statusCode, out);
        // The stream may say nothing for a while: the headers go now.
        res.flushHeaders();
        r.pipe(res);
        r.on("close", () => req.socket.destroy());
      },
    );
    upstream.on("error", (e) => {
      entry.fault = `unreachable: ${e.code ?? e.message}`;
      drop(req);
    });
    req.socket.on("close", () => upstream.destroy());
    upstream.end();
  }

  async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const url = req.url;
    const ctx = {
      method: req.method,
      url,
      path: url.split("?")[0],
      headers: { ...req.headers },
      body: Buffer.concat(chunks),
    };
    const entry = { method: ctx.method, url, path: ctx.path, status: null, fault: null, forwarded: false, at: Date.now(), ms: null };
    res.on("finish", () => (entry.ms = Date.now() - entry.at));
    log.push(entry);
    const active = (kind) => faults.filter((f) => f.kind === kind && f.remaining > 0 && f.match(ctx));

    const fail = active("fail")[0];
    if (fail) {
      fail.remaining--;
      entry.status = fail.status;
      entry.fault = "fail";
      const headers = { "content-type": "application/json", ...cors(ctx, fail.expose) };
      if (fail.retryAfter !== undefined) headers["retry-after"] = String(fail.retryAfter);
      return answer(res, fail.status, headers, Buffer.from(JSON.stringify({ code: "PROXY_FAULT", message: `injected ${fail.status}` })));
    }
    if (schemaBody !== null && ctx.method === "GET" && ctx.path === "/v1/schema") {
      entry.status = 200;
      entry.fault = "schema";
      return answer(res, 200, { "content-type": "application/json", ...cors(ctx, false) }, Buffer.from(JSON.stringify(schemaBody)));
    }
    const hooks = (when) =>
      active("hook")
        .filter((f) => f.when === when)
        .map((f) => () => f.hook({ ...ctx, n: ++f.seen }));
    for (const hook of hooks("before")) {
      if ((await hook()) === "destroy") {
        entry.fault = "destroyed";
        return drop(req);
      }
    }
    if (ctx.method === "GET" && ctx.path === "/v1/stream") return stream(ctx, entry, req, res);
    const lose = active("lose")[0];
    if (lose) lose.remaining--;
    const inFlight = hooks("forwarded");
    let destroy = false;
    let r;
    try {
      entry.forwarded = true;
      r = await forward(ctx, async () => {
        for (const hook of inFlight) if ((await hook()) === "destroy") destroy = true;
      });
    } catch (e) {
      entry.fault = `unreachable: ${e.code ?? e.message}`;
      return drop(req);
    }
    entry.status = r.status;
    if (lose || destroy) {
      entry.fault = lose ? "lost" : "destroyed";
      return drop(req);
    }
    let body = r.body;
    if (ledgerRewrites.length && ctx.method === "GET" && ctx.path === "/v1/events" && r.status === 200) {
      const page = await rewrittenPage(ctx).catch(() => null);
      if (!page) {
        entry.fault = "unreachable";
        return drop(req);
      }
      body = Buffer.from(JSON.stringify(page));
      entry.fault = "rewritten";
    }
    answer(res, r.status, r.headers, body);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      console.error("netproxy:", e);
      req.socket.destroy();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();

  const proxy = {
    url: `http://127.0.0.1:${port}`,
    log,
    count(match) {
      const m = matcher(match);
      return log.filter((e) => m({ ...e, headers: {} })).length;
    },
    loseResponses(n, match = "POST /v1/events") {
      const f = { kind: "lose", remaining: n, match: matcher(match) };
      faults.push(f);
      return f;
    },
    failWith(status, { retryAfter, count = 1, match = "POST /v1/events", expose = true } = {}) {
      const f = { kind: "fail", status, retryAfter, remaining: count, match: matcher(match), expose };
      faults.push(f);
      return f;
    },
    onRequest(match, hook, { when = "forwarded" } = {}) {
      if (when !== "forwarded" && when !== "before") throw new Error(`netproxy: when ${when}`);
      const f = { kind: "hook", remaining: Infinity, match: matcher(match), hook, when, seen: 0 };
      faults.push(f);
      return () => {
        faults = faults.filter((x) => x !== f);
      };
    },
    schema(body) {
      schemaBody = body;
    },
    forgeLedger(options) {
      ledgerRewrites.push((items) => (items.some((i) => i.entry.seq === options.seq) ? forgeItems(items, options) : items));
    },
    dropLedgerEntry(seq) {
      ledgerRewrites.push((items) => items.filter((i) => i.entry.seq !== seq));
    },
    clear() {
      faults = [];
      schemaBody = null;
      ledgerRewrites = [];
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((ok) => server.close(() => ok()));
    },
  };
  return proxy;
}
