// Several contexts of one origin sharing a store, in headless Chromium
// against a real annal-server (SQLite) on 127.0.0.1, through a proxy
// (netproxy.mjs) that passes the SSE stream through: one context syncs at
// a time (the Web Lock holder), every page and worker hears about local
// and pulled events over BroadcastChannel, closing the syncing tab hands
// sync over, subscriptions and live streams leave nothing behind, and
// live() follows the server in real time across a server crash.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, startAnnalServer, startServer, waitFor } from "./harness.mjs";
import { startNetProxy } from "./netproxy.mjs";

const TENANT = "t-tabs";
let pages, server, proxy, browser, context;

before(async () => {
  pages = await startServer();
  server = await startAnnalServer({ origin: pages.url, tenant: TENANT });
  proxy = await startNetProxy({ target: server.url, keepAlive: false });
  // --expose-gc: the leak tests collect garbage on purpose.
  browser = await launch({ args: ["--js-flags=--expose-gc"] });
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  pages?.server.close();
  await server?.close();
});

const tab = () => openPage(context, pages.url, "/sync.html");

/** A dedicated worker of `page` with the helpers loaded. */
async function worker(page) {
  const created = page.waitForEvent("worker");
  await page.evaluate(() => {
    self.w = new Worker("/sync-worker.js", { type: "module" });
    return new Promise((ok) => (self.w.onmessage = ok));
  });
  return created;
}

/** In `ctx` (a page or worker): opens store `name` and records what its subscription hears as `self.heard`. */
function openShared(ctx, { name, user, fresh, sync }) {
  return ctx.evaluate(
    async ({ name, user, tenant, fresh, sync }) => {
      const store = fresh ? await h.open(name, user, tenant) : await h.reopen(name);
      self.store = store;
      self.heard = [];
      self.unsubscribe = store.subscribe({}, (events, { source }) => {
        for (const e of events) self.heard.push({ source, deviceSeq: e.deviceSeq, deviceId: e.deviceId, hash: e.hash });
      });
      self.tokenCalls = 0;
      if (sync) {
        store.configureSync({
          serverUrl: sync.url,
          getToken: async () => {
            self.tokenCalls++;
            return sync.token;
          },
          debounceMs: 50,
        });
      }
    },
    { name, user, tenant: TENANT, fresh, sync },
  );
}

const leaderOf = (ctx) => ctx.evaluate(async () => (await self.store.syncStatus()).leader);

describe("many tabs, one sync", () => {
  test("two tabs and a worker: one tab syncs for all, each hears every event, and closing the syncing tab hands sync over", async () => {
    const name = "mt-shared";
    const user = "patient-mt";
    const token = await server.token(user, "own", { tenant: TENANT });
    const sync = { url: proxy.url, token };
    const a = await tab();
    const b = await tab();
    await openShared(a, { name, user, fresh: true, sync });
    await openShared(b, { name, user, sync });
    const w = await worker(a);
    await openShared(w, { name, user });

    const leaders = await waitFor(async () => {
      const l = [await leaderOf(a), await leaderOf(b)];
      return l.some(Boolean) && l;
    }, 10_000, "a leader");
    assert.equal(leaders.filter(Boolean).length, 1, `exactly one tab holds the sync lock: ${leaders}`);
    const [leader, follower] = leaders[0] ? [a, b] : [b, a];

    // Appends from all three contexts.
    await a.evaluate(async () => {
      await self.store.append(h.ev(1));
      await self.store.append(h.ev(2));
    });
    await b.evaluate(() => self.store.appendBatch([h.ev(3), h.ev(4)]));
    await w.evaluate(() => self.store.append(h.ev(5)));

    // Everyone hears all five, as local events.
    for (const [who, ctx] of [
      ["tab a", a],
      ["tab b", b],
      ["worker", w],
    ]) {
      const heard = await waitFor(
        () => ctx.evaluate(() => (self.heard.filter((x) => x.source === "local").length >= 5 ? self.heard : null)),
        10_000,
        `${who} to hear the five appends`,
      );
      assert.deepEqual(
        heard.map((x) => x.deviceSeq).sort((p, q) => p - q),
        [1, 2, 3, 4, 5],
        `${who} heard each append once`,
      );
    }
    // The leader pushed them (debounced), and only the leader asked for a token.
    await waitFor(async () => (await server.pull(token)).items.length === 5, 10_000, "the server to hold five events");
    assert.ok((await leader.evaluate(() => self.tokenCalls)) > 0);
    assert.equal(await follower.evaluate(() => self.tokenCalls), 0, "the other tab never synced");
    const status = await follower.evaluate(() => h.settled(self.store));
    assert.equal(status.pending, 0, "the follower's status shows the leader's work");
    assert.ok(status.lastSyncAt > 0, "and when it last synced");
    assert.equal(status.leader, false);

    // Another device of the user pushes two events; sync() in the follower runs in the leader.
    await a.evaluate(
      async ({ url, token, user, tenant }) => {
        const other = await h.open("mt-other-device", user, tenant);
        await other.appendBatch([h.ev(10), h.ev(11)]);
        h.configure(other, url, token);
        await other.sync();
        other.close();
      },
      { url: server.url, token, user, tenant: TENANT },
    );
    const report = await follower.evaluate(() => self.store.sync());
    assert.equal(report.pulled, 2);
    assert.equal(await follower.evaluate(() => self.tokenCalls), 0, "forwarded to the lock holder");
    for (const [who, ctx] of [
      ["tab a", a],
      ["tab b", b],
      ["worker", w],
    ]) {
      const remote = await waitFor(
        () => ctx.evaluate(() => (self.heard.filter((x) => x.source === "remote").length >= 2 ? self.heard.filter((x) => x.source === "remote") : null)),
        10_000,
        `${who} to hear the pulled events`,
      );
      assert.deepEqual(
        remote.map((x) => x.deviceSeq),
        [1, 2],
        `${who} heard the other device's events`,
      );
    }

    // Closing the syncing tab hands sync to the other one.
    await leader.close();
    await waitFor(() => leaderOf(follower), 10_000, "the other tab to take over");
    await follower.evaluate(() => self.store.append(h.ev(6)));
    await waitFor(async () => (await server.pull(token)).items.length === 8, 10_000, "the new leader to push");
    assert.ok((await follower.evaluate(() => self.tokenCalls)) > 0);
    const mine = await follower.evaluate(async () => (await self.store.events()).map((e) => e.hash));
    assert.deepEqual(
      (await server.pull(token)).items.filter((i) => mine.includes(i.event.envelope.hash)).map((i) => i.event.envelope.device_seq),
      [1, 2, 3, 4, 5, 6],
      "every event of this device once, in device order",
    );
    await follower.evaluate(() => self.store.close());
    await follower.close();
  });

  test("subscribe(), live() and close() leave no listener and no callback behind", async () => {
    const page = await tab();
    const token = await server.token("patient-leak", "own", { tenant: TENANT });
    await page.evaluate(
      async ({ url, token, tenant }) => {
        const store = await h.open("mt-leak", "patient-leak", tenant);
        h.configure(store, url, token);
        self.store = store;
        self.refs = [];
        self.calls = 0;
        for (let i = 0; i < 200; i++) {
          const cb = () => self.calls++;
          self.refs.push(new WeakRef(cb));
          store.subscribe({}, cb)();
        }
        const liveCb = () => self.calls++;
        self.refs.push(new WeakRef(liveCb));
        self.live = store.live({}, liveCb);
        await h.until(() => self.live.connected, 10_000, "the live stream");
        // A subscription still held when the store closes.
        const held = () => self.calls++;
        self.refs.push(new WeakRef(held));
        store.subscribe({ eventType: "x" }, held);
      },
      { url: proxy.url, token, tenant: TENANT },
    );
    await waitFor(async () => (await server.metric("annal_open_streams")) === 1, 10_000, "the stream to open on the server");
    await page.evaluate(async () => {
      await self.store.append(h.ev(1));
      self.live.close();
      self.live.close(); // twice is fine
      self.store.close();
      self.live = self.store = undefined;
    });
    await waitFor(async () => (await server.metric("annal_open_streams")) === 0, 10_000, "the stream to close on the server");
    const alive = await waitFor(
      () =>
        page.evaluate(async () => {
          gc();
          await new Promise((ok) => setTimeout(ok, 50));
          gc();
          const n = self.refs.filter((r) => r.deref() !== undefined).length;
          return n === 0 ? "none" : null;
        }),
      10_000,
      "every callback to be collected",
    );
    assert.equal(alive, "none");
    assert.equal(await page.evaluate(() => self.calls), 0, "no unsubscribed callback was called");
    await page.close();
  });

  test("live(): other devices' events arrive verified as they reach the server, over fetch with the token in a header, across a server crash; close() ends the stream", async () => {
    const user = "patient-live";
    const token = await server.token(user, "own", { tenant: TENANT });
    const streams = [];
    const unhook = proxy.onRequest(
      "GET /v1/stream",
      (ctx) => {
        streams.push({ url: ctx.url, authorization: ctx.headers.authorization, lastEventId: ctx.headers["last-event-id"] });
      },
      { when: "before" },
    );
    const page = await tab();
    try {
      await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const follower = await h.open("mt-live-follower", user, tenant);
          h.configure(follower, url, token);
          self.got = [];
          self.live = follower.live({ eventType: "vitals" }, (events) => self.got.push(...events.map((e) => ({ hash: e.hash, eventType: e.eventType, deviceSeq: e.deviceSeq }))));
          await h.until(() => self.live.connected, 10_000, "the stream");
          const device = await h.open("mt-live-device", user, tenant);
          h.configure(device, url, token);
          self.device = device;
        },
        { url: proxy.url, token, tenant: TENANT, user },
      );
      const pushFromDevice = (from, n) =>
        page.evaluate(
          async ({ from, n }) => {
            const out = [];
            for (let i = from; i < from + n; i++) {
              out.push(await self.device.append(h.ev(i, { eventType: "vitals" })));
              await self.device.append(h.ev(i, { eventType: "diary-note" }));
            }
            await self.device.sync();
            return out.map((e) => ({ hash: e.hash, eventType: e.eventType, deviceSeq: e.deviceSeq }));
          },
          { from, n },
        );
      const first = await pushFromDevice(1, 3);
      const got1 = await waitFor(() => page.evaluate(() => (self.got.length >= 3 ? self.got : null)), 10_000, "the live events");
      assert.deepEqual(got1, first, "only vitals, in order, as the device stored them");

      // The server crashes; the device keeps writing; the server comes back.
      await server.kill();
      await waitFor(() => page.evaluate(() => !self.live.connected), 10_000, "the stream to drop");
      const offline = await page.evaluate(async () => {
        await self.device.append(h.ev(100, { eventType: "vitals" }));
        return h.caught(() => self.device.sync());
      });
      assert.equal(offline.code, "ANNAL_OFFLINE");
      await server.restart();
      const more = await page.evaluate(async () => {
        const report = await self.device.sync();
        return report.pushed;
      });
      assert.equal(more, 1);
      const second = await pushFromDevice(4, 1);
      const got2 = await waitFor(() => page.evaluate(() => (self.got.length >= 5 ? self.got : null)), 20_000, "the events after reconnecting");
      assert.deepEqual(
        got2.map((e) => e.deviceSeq),
        [...first.map((e) => e.deviceSeq), 7, second[0].deviceSeq],
        "nothing missed across the crash, nothing twice",
      );
      assert.ok(streams.length >= 2, `reconnected: ${JSON.stringify(streams)}`);
      for (const s of streams) {
        assert.equal(s.authorization, `Bearer ${token}`);
        assert.ok(!s.url.includes(token) && !/token|access/i.test(s.url), `no token in the URL: ${s.url}`);
        assert.match(s.url, /[?&]eventType=vitals(&|$)/, "the server narrows what it announces");
      }
      assert.ok(streams.slice(1).some((s) => s.lastEventId !== undefined), "a reconnection resumes with Last-Event-ID");

      await page.evaluate(() => self.live.close());
      await waitFor(async () => (await server.metric("annal_open_streams")) === 0, 10_000, "the stream to close on the server");
      const before = await page.evaluate(() => self.got.length);
      await pushFromDevice(10, 1);
      await new Promise((ok) => setTimeout(ok, 500));
      assert.equal(await page.evaluate(() => self.got.length), before, "nothing arrives after close()");
    } finally {
      unhook();
      await page.close();
    }
  });
});
