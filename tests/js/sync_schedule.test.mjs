// When sync runs by itself, in one page of headless Chromium, with a
// FakeClock from annal/testing driving every timer of the schedule and a
// fault-injecting proxy (netproxy.mjs) in front of a real annal-server on
// 127.0.0.1: the debounce after appends, the `online` and visibility
// triggers, the interval, the retry schedule under a 500 storm (with and
// without Retry-After), cancelSync(), the status and progress events, and
// the events for quarantined and conflicting events. Requests are counted
// at the proxy; what reached the server is checked on the server.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, startAnnalServer, startServer, waitFor } from "./harness.mjs";
import { startNetProxy } from "./netproxy.mjs";

let pages, server, proxy, browser, page;

before(async () => {
  pages = await startServer();
  server = await startAnnalServer({ origin: pages.url, tenant: "t-sched", args: ["--max-schema", "noted=1"] });
  proxy = await startNetProxy({ target: server.url, keepAlive: false });
  browser = await launch();
  page = await openPage(await browser.newContext(), pages.url, "/sync.html");
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  pages?.server.close();
  await server?.close();
});

const PUSH = "POST /v1/events";
const PULL = /^GET \/v1\/events\?/;

/** Opens a fresh store synced through the proxy on a FakeClock, with automatic sync on. */
async function autoStore(name, user, options = {}) {
  const token = await server.token(user, "own", { tenant: "t-sched" });
  await page.evaluate(
    async ({ name, user, url, token, options }) => {
      const store = await h.open(name, user, "t-sched");
      self.clock = new testing.FakeClock(Date.UTC(2026, 11, 1));
      self.seen = [];
      self.stopRecording = h.record(store, ["syncstatus", "syncprogress", "syncerror", "rejected", "conflict"], self.seen);
      store.configureSync({ serverUrl: url, getToken: async () => token, clock: self.clock, debounceMs: 1_000, intervalMs: 3_600_000, ...options });
      self.store = store;
      if (options.auto !== false) await h.until(async () => (await store.syncStatus()).leader, 5_000, "leadership");
      await h.settled(store);
    },
    { name, user, url: proxy.url, token, options },
  );
  return token;
}

/** Moves the page's FakeClock on by `ms`, then waits for passes to settle. */
async function advance(ms) {
  await page.evaluate(async (ms) => {
    await self.clock.advance(ms, 5);
    await h.settled(self.store);
  }, ms);
}

/** Waits (real time) until the proxy has seen `n` requests matching `match`. */
function requests(match, n) {
  return waitFor(() => proxy.count(match) >= n, 10_000, `${n} × ${match}`);
}

async function status() {
  return page.evaluate(() => self.store.syncStatus());
}

/** Lets the page run for `ms` of real time (no fake time passes). */
const idle = (ms) => new Promise((ok) => setTimeout(ok, ms));

describe("automatic sync on a fake clock", () => {
  test("appends are pushed once the debounce ends, together, and not before", async () => {
    proxy.clear();
    const token = await autoStore("sched-debounce", "p-debounce");
    const pushesBefore = proxy.count(PUSH);
    await page.evaluate(async () => {
      for (let i = 1; i <= 5; i++) await self.store.append(h.ev(i));
    });
    await idle(300);
    assert.equal(proxy.count(PUSH), pushesBefore, "nothing is pushed while appends keep coming");
    await advance(999);
    assert.equal(proxy.count(PUSH), pushesBefore, "nor before the debounce ends");
    await advance(1);
    await requests(PUSH, pushesBefore + 1);
    assert.equal(proxy.count(PUSH), pushesBefore + 1, "the five go in one request");
    const s = await status();
    assert.equal(s.pending, 0);
    assert.equal(s.state, "idle");
    assert.equal((await server.pull(token)).items.length, 5);
  });

  test("the interval pulls even when nothing was appended", async () => {
    proxy.clear();
    await autoStore("sched-interval", "p-interval", { intervalMs: 60_000 });
    const pulls = proxy.count(PULL);
    await advance(59_999);
    assert.equal(proxy.count(PULL), pulls);
    await advance(1);
    await requests(PULL, pulls + 1);
    await advance(60_000);
    await requests(PULL, pulls + 2);
  });

  test("a 500 storm with Retry-After: retries keep device order, wait at least Retry-After and within the jittered ceiling, then drain", async () => {
    proxy.clear();
    const token = await autoStore("sched-storm", "p-storm");
    const pushesAtStart = proxy.count(PUSH);
    proxy.failWith(500, { retryAfter: 7, count: 5, match: PUSH });
    await page.evaluate(async () => {
      for (let i = 1; i <= 3; i++) await self.store.append(h.ev(i));
    });
    const delays = [];
    await advance(1_000); // the debounce: the first attempt
    for (let attempt = 1; attempt <= 5; attempt++) {
      const failedAt = await page.evaluate(() => self.clock.now());
      const s = await status();
      assert.equal(s.state, "offline", JSON.stringify(s));
      assert.equal(s.pending, 3, "nothing is lost while the server fails");
      const delay = s.nextAttemptAt - failedAt;
      delays.push(delay);
      const ceiling = Math.min(300_000, 1_000 * 2 ** (attempt - 1));
      assert.ok(delay >= 7_000, `attempt ${attempt}: ${delay} ms is sooner than Retry-After`);
      assert.ok(delay <= Math.max(7_000, ceiling), `attempt ${attempt}: ${delay} ms is above the ceiling ${ceiling}`);
      const pushes = proxy.count(PUSH);
      await advance(delay - 1);
      assert.equal(proxy.count(PUSH), pushes, `attempt ${attempt}: no retry before nextAttemptAt`);
      await advance(1);
      await requests(PUSH, pushes + 1);
    }
    // The sixth attempt got through.
    const s = await status();
    assert.equal(s.pending, 0, JSON.stringify({ s, delays }));
    assert.equal(s.state, "idle");
    assert.equal(s.nextAttemptAt, null);
    assert.equal(proxy.count(PUSH) - pushesAtStart, 6, "five failures, then the one that went through");
    assert.deepEqual(
      (await server.pull(token)).items.map((i) => i.event.envelope.device_seq),
      [1, 2, 3],
      "once each, in device order",
    );
    const seen = await page.evaluate(() => self.seen.filter((e) => e.type === "syncerror").map((e) => e.error.code));
    assert.deepEqual(seen, ["ANNAL_OFFLINE", "ANNAL_OFFLINE", "ANNAL_OFFLINE", "ANNAL_OFFLINE", "ANNAL_OFFLINE"], "each automatic failure is told, none silently");
  });

  test("a 503 storm without Retry-After: full jitter under an exponential ceiling", async () => {
    proxy.clear();
    await autoStore("sched-jitter", "p-jitter");
    proxy.failWith(503, { count: 8, match: PUSH });
    await page.evaluate(() => self.store.append(h.ev(1)));
    await advance(1_000);
    const ratios = [];
    for (let attempt = 1; attempt <= 8; attempt++) {
      const failedAt = await page.evaluate(() => self.clock.now());
      const s = await status();
      const delay = s.nextAttemptAt - failedAt;
      const ceiling = Math.min(300_000, 1_000 * 2 ** (attempt - 1));
      assert.ok(delay >= 0 && delay <= ceiling, `attempt ${attempt}: ${delay} not in [0, ${ceiling}]`);
      ratios.push(delay / ceiling);
      const pushes = proxy.count(PUSH);
      await advance(delay);
      await requests(PUSH, pushes + 1);
    }
    assert.ok(new Set(ratios.map((r) => r.toFixed(3))).size > 1, `jittered, not fixed: ${ratios}`);
    assert.equal((await status()).pending, 0);
  });

  test("`online` syncs at once, whatever the retry schedule says; a visible page syncs when due", async () => {
    proxy.clear();
    const token = await autoStore("sched-online", "p-online");
    proxy.failWith(503, { retryAfter: 3_600, count: 1, match: PUSH });
    await page.evaluate(() => self.store.append(h.ev(1)));
    await advance(1_000);
    const s = await status();
    assert.equal(s.state, "offline");
    assert.ok(s.nextAttemptAt - (await page.evaluate(() => self.clock.now())) >= 3_600_000);
    const pushes = proxy.count(PUSH);
    // Becoming visible does not jump the schedule...
    await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await idle(300);
    assert.equal(proxy.count(PUSH), pushes, "visibility waits for nextAttemptAt");
    // ...the network coming back does.
    await page.evaluate(() => window.dispatchEvent(new Event("online")));
    await requests(PUSH, pushes + 1);
    await page.evaluate(() => h.settled(self.store));
    assert.equal((await status()).pending, 0);
    assert.equal((await server.pull(token)).items.length, 1);
    // With nothing scheduled, becoming visible syncs (here: a pull).
    const pulls = proxy.count(PULL);
    assert.equal(await page.evaluate(() => document.visibilityState), "visible");
    await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await requests(PULL, pulls + 1);
  });

  test("cancelSync() aborts the pass in flight with ANNAL_CANCELLED, loses nothing, and stops automatic sync until sync() or configureSync()", async () => {
    proxy.clear();
    const token = await autoStore("sched-cancel", "p-cancel");
    let release;
    const held = new Promise((ok) => (release = ok));
    const unhook = proxy.onRequest(PUSH, () => held, { when: "before" });
    await page.evaluate(() => {
      self.store.append(h.ev(1));
      self.store.append(h.ev(2));
    });
    const pushes = proxy.count(PUSH);
    const direct = page.evaluate(() => h.caught(() => self.store.sync()));
    await waitFor(() => proxy.count(PUSH) > pushes, 10_000, "the push in flight");
    await idle(100);
    const during = await status();
    assert.equal(during.state, "syncing");
    await page.evaluate(() => self.store.cancelSync());
    const result = await direct;
    assert.equal(result.code, "ANNAL_CANCELLED", JSON.stringify(result));
    assert.equal(result.isError, true);
    unhook();
    release();
    const after = await page.evaluate(() => h.settled(self.store));
    assert.equal(after.pending, 2, "nothing acknowledged, nothing lost");
    assert.equal(after.state, "idle", "a cancelled pass is no failure of the server");
    assert.equal(after.nextAttemptAt, null);
    assert.equal(after.leader, false, "the sync lock was given up");
    // No automatic pass any more.
    const count = proxy.count(PUSH);
    await page.evaluate(() => self.store.append(h.ev(3)));
    await advance(10_000);
    assert.equal(proxy.count(PUSH), count);
    // A direct sync() still works and pushes everything once.
    const report = await page.evaluate(() => self.store.sync());
    assert.equal(report.acked, 3);
    assert.deepEqual(
      (await server.pull(token)).items.map((i) => i.event.envelope.device_seq),
      [1, 2, 3],
    );
  });

  test("status events tell each change; a long pull reports its progress page by page", async () => {
    proxy.clear();
    const user = "p-progress";
    const token = await server.token(user, "own", { tenant: "t-sched" });
    // Another device of the user pushes 1,200 events (three pull pages of 500).
    await page.evaluate(
      async ({ url, token, user }) => {
        const other = await h.open("sched-progress-other", user, "t-sched");
        await h.appendMany(other, 1_200);
        h.configure(other, url, token);
        await other.sync();
      },
      { url: server.url, token, user },
    );
    await autoStore("sched-progress", user, { auto: false });
    const r = await page.evaluate(async () => {
      self.seen.length = 0;
      const report = await self.store.sync();
      await new Promise((ok) => setTimeout(ok, 100));
      return { report, seen: self.seen };
    });
    assert.equal(r.report.pulled, 1_200);
    const progress = r.seen.filter((e) => e.type === "syncprogress");
    assert.deepEqual(
      progress.map((e) => [e.verified, e.seq, e.more]),
      [
        [500, 500, true],
        [1_000, 1_000, true],
        [1_200, 1_200, false],
      ],
    );
    const states = r.seen.filter((e) => e.type === "syncstatus").map((e) => e.status.state);
    assert.equal(states[0], "syncing", JSON.stringify(states));
    assert.equal(states.at(-1), "idle");
    const last = r.seen.filter((e) => e.type === "syncstatus").at(-1).status;
    assert.equal(last.checkpoint.seq, 1_200);
  });

  test("quarantined and conflicting events fire `rejected` and `conflict` with the server's reasons", async () => {
    proxy.clear();
    const user = "p-outcomes";
    const token = await server.token(user, "own", { tenant: "t-sched" });
    await page.evaluate(
      async ({ url, token, user }) => {
        const other = await h.open("sched-outcomes-other", user, "t-sched");
        await other.append(h.ev(1, { aggregateId: "shared" }));
        h.configure(other, url, token);
        await other.sync();
      },
      { url: server.url, token, user },
    );
    await autoStore("sched-outcomes", user, { auto: false });
    const r = await page.evaluate(async () => {
      self.seen.length = 0;
      const clash = await self.store.append(h.ev(2, { aggregateId: "shared" }));
      const bad = await self.store.append(h.ev(3, { eventType: "noted", schemaVersion: 2 }));
      const report = await self.store.sync();
      await h.until(() => self.seen.some((e) => e.type === "rejected") && self.seen.some((e) => e.type === "conflict"), 5_000, "the outcome events");
      return { clash, bad, report, seen: self.seen, rejected: await self.store.rejected(), conflicts: await self.store.conflicts() };
    });
    assert.equal(r.report.rejected, 1);
    assert.equal(r.report.conflicts, 1);
    const rejected = r.seen.find((e) => e.type === "rejected").items;
    const conflict = r.seen.find((e) => e.type === "conflict").items;
    assert.deepEqual(rejected, r.rejected);
    assert.deepEqual(conflict, r.conflicts);
    assert.equal(rejected[0].eventId, r.bad.eventId);
    assert.ok(rejected[0].code && rejected[0].message, JSON.stringify(rejected[0]));
    assert.equal(conflict[0].eventId, r.clash.eventId);
    assert.equal((await server.pull(token)).items.length, 3, "both kept on the server too");
  });

  test("bad sync options, filters and callbacks are typed errors that say what to do", async () => {
    const r = await page.evaluate(async () => {
      const store = await h.open("sched-bad", "p-bad", "t-sched");
      const getToken = async () => "t";
      const serverUrl = "http://127.0.0.1:1";
      const c = (f) => h.caught(f);
      return {
        unknown: await c(() => store.configureSync({ serverUrl, getToken, serverURL: serverUrl })),
        auto: await c(() => store.configureSync({ serverUrl, getToken, auto: "yes" })),
        interval: await c(() => store.configureSync({ serverUrl, getToken, intervalMs: 10 })),
        debounce: await c(() => store.configureSync({ serverUrl, getToken, debounceMs: -1 })),
        timeout: await c(() => store.configureSync({ serverUrl, getToken, timeoutMs: 1.5 })),
        clock: await c(() => store.configureSync({ serverUrl, getToken, clock: { now: () => 1 } })),
        subscribeFilter: await c(() => store.subscribe({ aggregateID: "x" }, () => {})),
        subscribeSource: await c(() => store.subscribe({ source: "server" }, () => {})),
        subscribeCallback: await c(() => store.subscribe({}, "not a function")),
        liveFirst: await c(() => store.live({}, () => {})),
        noWorker: await c(() => store.requestBackgroundSync()),
      };
    });
    const expect = {
      unknown: "serverURL",
      auto: "auto",
      interval: "intervalMs",
      debounce: "debounceMs",
      timeout: "timeoutMs",
      clock: "clock",
      subscribeFilter: "aggregateID",
      subscribeSource: "source",
      subscribeCallback: "callback",
      liveFirst: "sync",
      noWorker: "serviceWorker",
    };
    for (const [k, field] of Object.entries(expect)) {
      assert.equal(r[k].isError, true, k);
      assert.equal(r[k].code, "ANNAL_VALIDATION", `${k}: ${JSON.stringify(r[k])}`);
      assert.equal(r[k].field, field, `${k}: ${JSON.stringify(r[k])}`);
      assert.ok(r[k].message.length > 20, k);
    }
  });
});
