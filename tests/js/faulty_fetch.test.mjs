// FaultyFetch from annal/testing, the fault-injecting fetch apps use in
// their own sync tests, in headless Chromium against a real annal-server
// (SQLite) on 127.0.0.1: first that each fault does what it says, seen
// from the page and from the server; then sync through it, where what the
// tests say about the server is checked on the server.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startSyncEnv } from "./harness.mjs";

const TENANT = "t-faulty";
let server, page, env;

before(async () => ({ server, page } = env = await startSyncEnv({ tenant: TENANT })));
after(() => env?.close());

const PUSH = { method: "POST", path: "/v1/events" };

/** The server's copy of `user`'s ledger: device seqs and outcomes. */
async function onServer(user) {
  const ledger = await server.pull(await server.token(user, "own", { tenant: TENANT }));
  return ledger.items.map((i) => ({ deviceSeq: i.event.envelope.device_seq, hash: i.event.envelope.hash, outcome: i.entry.outcome }));
}

describe("FaultyFetch: each fault does what it says", () => {
  test("untouched requests, failNth, fail, respondWith, delay, hang, loseResponses and duplicate", async () => {
    const token = await server.token("p-self", "own", { tenant: TENANT });
    const r = await page.evaluate(
      async ({ url, token }) => {
        const net = new testing.FaultyFetch();
        const get = () => net.fetch(new Request(`${url}/v1/schema`, { headers: { authorization: `Bearer ${token}` } }));
        const out = {};
        out.plain = (await get()).status;
        net.failNth(2);
        out.nth = [await h.caught(get), await h.caught(get), await h.caught(get)].map((x) => (x.threw ? x.name : x.value.status));
        net.fail({ count: 2, match: { path: "/v1/events" } });
        out.failOnlyMatching = (await get()).status;
        net.respondWith(429, { retryAfter: 7 });
        const limited = await get();
        out.limited = { status: limited.status, retryAfter: limited.headers.get("retry-after"), body: await limited.json() };
        net.clear();
        net.delay(300);
        const t0 = performance.now();
        await get();
        out.delayedMs = performance.now() - t0;
        net.hang();
        const abort = new AbortController();
        const hung = net.fetch(new Request(`${url}/v1/schema`, { signal: abort.signal }));
        setTimeout(() => abort.abort(), 200);
        out.hung = await h.caught(() => hung);
        // A push whose answer is lost: the server has it anyway.
        const store = await h.open("ff-self", "p-self", "t-faulty");
        await store.append(h.ev(1));
        h.configure(store, url, token, undefined, { fetch: net.fetch });
        net.loseResponses(1, { method: "POST", path: "/v1/events" });
        out.lost = await h.caught(() => store.sync());
        net.duplicate(1, { method: "POST", path: "/v1/events" });
        await store.append(h.ev(2));
        out.dup = await store.sync();
        out.log = net.log;
        out.badCount = await h.caught(() => net.fail({ count: 0 }));
        out.badStatus = await h.caught(() => net.respondWith(99));
        return out;
      },
      { url: server.url, token },
    );
    assert.equal(r.plain, 200);
    assert.deepEqual(r.nth, [200, "TypeError", 200], "only the second request fails, as fetch fails: a TypeError");
    assert.equal(r.failOnlyMatching, 200, "a fault for /v1/events leaves /v1/schema alone");
    assert.deepEqual(r.limited, { status: 429, retryAfter: "7", body: { code: "FAULTY_FETCH", message: "injected 429" } });
    assert.ok(r.delayedMs >= 290, `delayed ${r.delayedMs} ms`);
    assert.equal(r.hung.name, "AbortError", JSON.stringify(r.hung));
    assert.equal(r.lost.code, "ANNAL_OFFLINE", JSON.stringify(r.lost));
    assert.equal(r.dup.pushed, 2, "the first event (lost answer) and the second, duplicated");
    const ledger = await onServer("p-self");
    assert.deepEqual(
      ledger.map((e) => [e.deviceSeq, e.outcome]),
      [
        [1, "accepted"],
        [2, "accepted"],
      ],
      "the lost push was committed once; the duplicate was recognised, not stored twice",
    );
    const faults = r.log.filter((e) => e.fault).map((e) => `${e.fault} ${e.method} ${e.path} ${e.status ?? "-"}`);
    assert.deepEqual(faults, ["fail GET /v1/schema -", "status GET /v1/schema 429", "delay GET /v1/schema 200", "hang GET /v1/schema -", "lose POST /v1/events -", "duplicate POST /v1/events 200"]);
    assert.equal(r.badCount.name, "RangeError");
    assert.equal(r.badStatus.name, "RangeError");
  });
});

describe("sync through FaultyFetch", () => {
  test("responses lost three times in a row: one copy on the server, and the server's original receipts stored", async () => {
    const user = "p-lost";
    const token = await server.token(user, "own", { tenant: TENANT });
    const r = await page.evaluate(
      async ({ url, token, user }) => {
        const net = new testing.FaultyFetch();
        const store = await h.open("ff-lost", user, "t-faulty");
        await h.appendMany(store, 30, 10);
        h.configure(store, url, token, undefined, { fetch: net.fetch });
        net.loseResponses(3, { method: "POST", path: "/v1/events" });
        const run = await h.syncUntilDone(store, 10);
        return { run, rows: await h.receiptRows("annal:ff-lost"), status: await store.syncStatus(), hashes: await h.hashes(store), lost: net.count({ method: "POST", path: "/v1/events" }, "lose") };
      },
      { url: server.url, token, user },
    );
    assert.equal(r.lost, 3);
    assert.deepEqual(
      r.run.failures.map((f) => f.code),
      ["ANNAL_OFFLINE", "ANNAL_OFFLINE", "ANNAL_OFFLINE"],
    );
    assert.equal(r.status.pending, 0);
    const ledger = await onServer(user);
    assert.deepEqual(
      ledger.map((e) => e.hash),
      r.hashes,
      "each event once, in device order",
    );
    const receipts = (await server.pull(token)).items.map((i) => i.receipt);
    assert.deepEqual(
      r.rows.map((row) => row.receipt),
      receipts,
      "the receipts of the first (lost) delivery",
    );
  });

  test("a request that hangs times out after timeoutMs as ANNAL_OFFLINE; the Nth request failing leaves the order intact", async () => {
    const user = "p-hang";
    const token = await server.token(user, "own", { tenant: TENANT });
    const r = await page.evaluate(
      async ({ url, token, user }) => {
        const net = new testing.FaultyFetch();
        const store = await h.open("ff-hang", user, "t-faulty");
        await h.appendMany(store, 1250, 250);
        h.configure(store, url, token, undefined, { fetch: net.fetch, timeoutMs: 300 });
        net.hang({ match: { method: "POST" } });
        const t0 = performance.now();
        const hung = await h.caught(() => store.sync());
        const hungMs = performance.now() - t0;
        // Third push of the next pass (events 1001–1250) fails after two went through.
        net.failNth(3, { method: "POST", path: "/v1/events" });
        const partial = await h.caught(() => store.sync());
        const mid = await store.syncStatus();
        const done = await store.sync();
        return { hung, hungMs, partial, mid, done, hashes: await h.hashes(store) };
      },
      { url: server.url, token, user },
    );
    assert.equal(r.hung.code, "ANNAL_OFFLINE", JSON.stringify(r.hung));
    assert.ok(r.hungMs >= 280 && r.hungMs < 5_000, `timed out after ${r.hungMs} ms`);
    assert.equal(r.partial.code, "ANNAL_OFFLINE");
    assert.equal(r.mid.acked, 1000, "two batches of 500 went through before the failure");
    assert.equal(r.mid.pending, 250);
    assert.equal(r.done.acked, 1250);
    assert.deepEqual(
      (await onServer(user)).map((e) => e.hash),
      r.hashes,
    );
  });

  test("a push answered with a body that is not UTF-8 is ANNAL_OFFLINE, and the events wait; the next pass sends them", async () => {
    const user = "p-utf8";
    const token = await server.token(user, "own", { tenant: TENANT });
    const r = await page.evaluate(
      async ({ url, token, user }) => {
        const store = await h.open("ff-utf8", user, "t-faulty");
        await h.appendMany(store, 20, 20);
        let spoil = true;
        const spoiling = async (request) => {
          const answer = await fetch(request);
          if (!spoil || !new URL(request.url).pathname.startsWith("/v1/events")) return answer;
          spoil = false;
          // The server's answer with one byte no UTF-8 text can hold.
          const bytes = new Uint8Array(await answer.arrayBuffer());
          bytes[bytes.length - 2] = 0xff;
          return new Response(bytes, { status: answer.status, headers: answer.headers });
        };
        h.configure(store, url, token, undefined, { fetch: spoiling });
        const failed = await h.caught(() => store.sync());
        const mid = await store.syncStatus();
        const done = await store.sync();
        return { failed, mid, done, hashes: await h.hashes(store) };
      },
      { url: server.url, token, user },
    );
    assert.equal(r.failed.code, "ANNAL_OFFLINE", JSON.stringify(r.failed));
    assert.match(r.failed.message, /not UTF-8/);
    assert.equal(r.mid.acked, 0, "an answer that cannot be read acknowledges nothing");
    assert.equal(r.mid.pending, 20);
    assert.equal(r.done.acked, 20);
    assert.deepEqual((await onServer(user)).map((e) => e.hash), r.hashes, "each event once on the server");
  });

  test("a 500 with Retry-After from FaultyFetch schedules the retry no sooner", async () => {
    const token = await server.token("p-500", "own", { tenant: TENANT });
    const r = await page.evaluate(
      async ({ url, token }) => {
        const net = new testing.FaultyFetch();
        const clock = new testing.FakeClock(Date.UTC(2026, 11, 1));
        const store = await h.open("ff-500", "p-500", "t-faulty");
        await store.append(h.ev(1));
        h.configure(store, url, token, undefined, { fetch: net.fetch, clock });
        net.respondWith(500, { retryAfter: 42, match: { method: "POST" } });
        const failed = await h.caught(() => store.sync());
        const status = await store.syncStatus();
        return { failed, wait: status.nextAttemptAt - clock.now(), state: status.state };
      },
      { url: server.url, token },
    );
    assert.equal(r.failed.code, "ANNAL_OFFLINE");
    assert.equal(r.state, "offline");
    assert.ok(r.wait >= 42_000, `retry in ${r.wait} ms`);
  });
});
