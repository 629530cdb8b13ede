// Background sync from the app's service worker (`annal/sw`), in headless
// Chromium against a real annal-server (SQLite) on 127.0.0.1. The worker
// script (pages/sync-sw.js) is what an app writes: `registerAnnalSync`
// with a `getToken` that asks the app's own auth server (a test double
// here, minting real tokens), so nothing of the page is needed to sync.
//
// How the tests make the network "come back": the annal-server is stopped
// while the page appends, so the sync event Chromium fires at once when
// the page registers it fails (the worker reports ANNAL_OFFLINE, and the
// registration stays pending for a retry). Then the server is started
// again and the test fires the registration's `sync` event through the
// DevTools protocol (`ServiceWorker.dispatchSyncEvent`). That is what
// Chromium does by itself when connectivity returns to a device with a
// pending registration: it starts the worker if it was stopped and fires
// `sync` with the tag. The DevTools session lives in an about:blank tab,
// which is no page of the app's origin: every page of the app is closed.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, startAnnalServer, startAuthServer, startServer, waitFor } from "./harness.mjs";

const TENANT = "t-bg";
const STORES = { kek: "bg-kek", pass: "bg-pass", fallback: "bg-fallback" };

let pages, server, auth, browser, context, cdp, registrationId;

before(async () => {
  pages = await startServer();
  server = await startAnnalServer({ origin: pages.url, tenant: TENANT });
  auth = await startAuthServer({ annal: server, origin: pages.url });
  auth.register(STORES.kek, { user: "patient-kek" });
  auth.register(STORES.pass, { user: "patient-pass" });
  auth.register(STORES.fallback, { user: "patient-fallback" });
  browser = await launch();
  context = await browser.newContext();
  // The DevTools session: an about:blank tab, not a page of the app.
  const blank = await context.newPage();
  cdp = await context.newCDPSession(blank);
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => {
    const mine = e.registrations.find((r) => r.scopeURL === `${pages.url}/` && !r.isDeleted);
    if (mine) registrationId = mine.registrationId;
  });
  await cdp.send("ServiceWorker.enable");
});

after(async () => {
  await browser?.close();
  pages?.server.close();
  await auth?.close();
  await server?.close();
});

/** A page of the app, controlled by the app's service worker (`nosync`: one that plays a browser without Background Sync). */
async function appPage({ nosync = false } = {}) {
  const page = await openPage(context, pages.url);
  const names = Object.values(STORES).join(",");
  await page.evaluate(
    async ({ serverUrl, authUrl, names, nosync }) => {
      const script = `/sync-sw.js?server=${encodeURIComponent(serverUrl)}&auth=${encodeURIComponent(authUrl)}&names=${names}${nosync ? "&nosync" : ""}`;
      const current = await navigator.serviceWorker.getRegistration("/");
      if (current && !current.active?.scriptURL.endsWith(script)) {
        await current.unregister();
        registrationId = undefined;
      }
      await navigator.serviceWorker.register(script, { type: "module", scope: "/" });
      await navigator.serviceWorker.ready;
      if (!navigator.serviceWorker.controller) {
        await new Promise((ok) => navigator.serviceWorker.addEventListener("controllerchange", ok, { once: true }));
      }
    },
    { serverUrl: server.url, authUrl: auth.url, names, nosync },
  );
  return page;
}

/** Fires the registration's `sync` event, as Chromium does when the network returns. */
async function networkReturns() {
  await waitFor(() => registrationId !== undefined, 10_000, "the service worker registration");
  await cdp.send("ServiceWorker.dispatchSyncEvent", { origin: pages.url, registrationId, tag: "annal-sync", lastChance: false });
}

/** Stops every service worker, as the browser does with an idle one: its memory is gone. */
async function workerStops() {
  await cdp.send("ServiceWorker.stopAllWorkers");
}

function appPagesOpen() {
  return context.pages().filter((p) => p.url().startsWith(pages.url)).length;
}

/** The server's copy of `user`'s ledger: device seqs, hashes, ids, outcomes. */
async function onServer(user) {
  const ledger = await server.pull(await server.token(user, "own", { tenant: TENANT }));
  return ledger.items.map((i) => ({ deviceSeq: i.event.envelope.device_seq, hash: i.event.envelope.hash, eventId: i.event.envelope.event_id, outcome: i.entry.outcome }));
}

describe("background sync in the service worker", () => {
  test("an encrypted store (kept CryptoKey): a page appends offline and closes; the worker pushes everything once the network returns", async () => {
    const name = STORES.kek;
    await server.stop(); // no network
    const page = await appPage();
    const r = await page.evaluate(
      async ({ name, tenant }) => {
        const { EventStore, storeKeyEncryptionKey } = self.annal;
        const ev = (i) => ({ aggregateType: "diary", aggregateId: "diary-1", eventType: "symptom-recorded", payload: { i, note: "recorded offline" } });
        await EventStore.destroy(name);
        // The app's own non-extractable key, kept in IndexedDB for its worker.
        const kek = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
        await storeKeyEncryptionKey(name, kek);
        const store = await EventStore.open({ name, userId: "patient-kek", tenantId: tenant, keyEncryptionKey: kek });
        const appended = [];
        for (let i = 1; i <= 10; i++) appended.push(await store.append(ev(i)));
        const mode = await store.requestBackgroundSync();
        const status = await store.syncStatus();
        store.close();
        return { mode, status, appended: appended.map((e) => ({ deviceSeq: e.deviceSeq, hash: e.hash, eventId: e.eventId })) };
      },
      { name, tenant: TENANT },
    );
    assert.equal(r.mode, "sync", "Chromium has the Background Sync API");
    assert.equal(r.status.pending, 10);
    // Chromium fired the event at once; the worker tried and said why it failed.
    const failed = await auth.waitReport(name, (x) => !x.ok);
    assert.equal(failed.code, "ANNAL_OFFLINE", JSON.stringify(failed));

    await page.close();
    assert.equal(appPagesOpen(), 0, "no page of the app is open");
    await workerStops(); // and the worker has nothing in memory
    await server.restart();
    auth.expireCached(name); // the token the app kept expired meanwhile
    const callsBefore = auth.calls.length;
    await networkReturns();

    const done = await auth.waitReport(name, (x) => x.ok);
    assert.equal(done.report.pushed, 10, JSON.stringify(done));
    assert.equal(done.report.acked, 10);
    const ledger = await onServer("patient-kek");
    assert.deepEqual(
      ledger.map(({ deviceSeq, hash, eventId }) => ({ deviceSeq, hash, eventId })),
      r.appended,
      "every event, once, in device order, with the hashes the page computed",
    );
    assert.ok(ledger.every((e) => e.outcome === "accepted"));
    // The expired token was refreshed, never replayed.
    const calls = auth.calls.slice(callsBefore).filter((c) => c.name === name);
    const firstFresh = calls.findIndex((c) => !c.expired);
    assert.ok(firstFresh > 0, JSON.stringify(calls));
    assert.deepEqual(calls[firstFresh], { name, refresh: true, expired: false }, JSON.stringify(calls));
    assert.ok(calls.slice(firstFresh).every((c) => !c.expired), "once refused, the expired token is never sent again");

    // The next page finds the outbox empty.
    const again = await openPage(context, pages.url);
    const status = await again.evaluate(async (name) => {
      const { EventStore, loadKeyEncryptionKey } = self.annal;
      const store = await EventStore.open({ name, keyEncryptionKey: await loadKeyEncryptionKey(name) });
      const s = await store.syncStatus();
      store.close();
      return s;
    }, name);
    await again.close();
    assert.equal(status.pending, 0);
    assert.equal(status.acked, 10);
  });

  test("a passphrase store syncs in the worker only while a page has it unlocked; locked, it reports ANNAL_LOCKED and the events wait", async () => {
    const name = STORES.pass;
    const page = await appPage();
    const reportsBefore = auth.reports(name).length;
    const newReport = (predicate) => auth.waitReport(name, (x) => auth.reports(name).indexOf(x) >= reportsBefore && predicate(x));
    await page.evaluate(
      async ({ name, tenant }) => {
        const { EventStore } = self.annal;
        await EventStore.destroy(name);
        const make = (i) => ({ aggregateType: "diary", aggregateId: "diary-2", eventType: "symptom-recorded", payload: { i } });
        const store = await EventStore.open({ name, userId: "patient-pass", tenantId: tenant, passphrase: "correct horse battery" });
        self.passStore = store;
        self.make = make;
        for (let i = 1; i <= 3; i++) await store.append(make(i));
        // Hands the worker this unlock's session key, then registers the sync event.
        self.mode = await store.requestBackgroundSync();
      },
      { name, tenant: TENANT },
    );
    // The registration is still pending from the first test (its failed
    // event waits for Chromium's retry), so registering again fires nothing
    // by itself: fire it.
    await networkReturns();
    const first = await newReport((x) => x.ok && x.report.pushed > 0).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(auth.reports(name))}`);
    });
    assert.equal(first.report.pushed, 3);
    assert.equal((await onServer("patient-pass")).length, 3);

    // Two more, then the page locks: the worker forgets its session key.
    const locked = await page.evaluate(async () => {
      for (let i = 4; i <= 5; i++) await self.passStore.append(self.make(i));
      self.passStore.lock();
      return self.passStore.syncStatus();
    });
    assert.equal(locked.state, "locked");
    assert.equal(locked.pending, 2, "the locked store still counts what waits");
    const countBefore = auth.reports(name).length;
    await networkReturns();
    const refused = await auth.waitReport(name, (x) => auth.reports(name).indexOf(x) >= countBefore && !x.ok);
    assert.equal(refused.code, "ANNAL_LOCKED");
    assert.match(refused.message, /storeKeyEncryptionKey|requestBackgroundSync/);
    assert.equal((await onServer("patient-pass")).length, 3, "nothing was pushed while locked");

    // Unlocked again in the page: the worker gets a new session and syncs.
    const afterUnlock = auth.reports(name).length;
    await page.evaluate(async () => {
      await self.passStore.unlock("correct horse battery");
      await self.passStore.requestBackgroundSync();
    });
    await networkReturns();
    const second = await auth.waitReport(name, (x) => auth.reports(name).indexOf(x) >= afterUnlock && x.ok);
    assert.equal(second.report.pushed, 2);

    // An idle worker that stops loses the session: the next pass is ANNAL_LOCKED again.
    await page.evaluate(() => self.passStore.append(self.make(6)));
    await workerStops();
    const afterStop = auth.reports(name).length;
    await networkReturns();
    const lost = await auth.waitReport(name, (x) => auth.reports(name).indexOf(x) >= afterStop);
    assert.equal(lost.ok, false);
    assert.equal(lost.code, "ANNAL_LOCKED");
    const ledger = await onServer("patient-pass");
    assert.equal(ledger.length, 5);
    const local = await page.evaluate(async () => {
      const events = await self.passStore.events();
      const status = await self.passStore.syncStatus();
      self.passStore.close();
      return { hashes: events.map((e) => e.hash), pending: status.pending };
    });
    assert.deepEqual(
      ledger.map((e) => e.hash),
      local.hashes.slice(0, 5),
    );
    assert.equal(local.pending, 1, "the sixth event waits for an unlock");
    await page.close();
  });

  test("periodicsync with tag annal-sync syncs too", async () => {
    const name = STORES.kek;
    const page = await appPage();
    await page.evaluate(async (name) => {
      const { EventStore, loadKeyEncryptionKey } = self.annal;
      const store = await EventStore.open({ name, keyEncryptionKey: await loadKeyEncryptionKey(name) });
      await store.append({ aggregateType: "diary", aggregateId: "diary-1", eventType: "symptom-recorded", payload: { periodic: true } });
      store.close();
    }, name);
    await page.close();
    const before = auth.reports(name).length;
    await waitFor(() => registrationId !== undefined, 10_000, "the service worker registration");
    await cdp.send("ServiceWorker.dispatchPeriodicSyncEvent", { origin: pages.url, registrationId, tag: "annal-sync" });
    const done = await auth.waitReport(name, (x) => auth.reports(name).indexOf(x) >= before && x.ok);
    assert.equal(done.report.pushed, 1);
    assert.equal((await onServer("patient-kek")).length, 11);
  });

  test("annal/sw refuses bad options with typed errors, and loads with no window, no dynamic import and no top-level await", async () => {
    const page = await appPage();
    const sw = context.serviceWorkers().find((w) => w.url().includes("/sync-sw.js"));
    assert.ok(sw, "the module worker that imports annal/sw started");
    const r = await sw.evaluate(async (kekStore) => {
      const m = self.annalSw;
      const caught = async (f) => {
        try {
          await f();
          return { threw: false };
        } catch (e) {
          return { isError: e instanceof Error, code: e.code, field: e.field, message: e.message };
        }
      };
      return {
        noWindow: typeof window === "undefined",
        noName: await caught(() => m.annalSync({ serverUrl: "http://127.0.0.1:1", getToken: () => "t" })),
        noToken: await caught(() => m.annalSync({ name: "x", serverUrl: "http://127.0.0.1:1" })),
        badUrl: await caught(() => m.annalSync({ name: kekStore, serverUrl: "ftp://x", getToken: () => "t" })),
        badOnResult: await caught(() => m.registerAnnalSync({ name: "x", serverUrl: "http://127.0.0.1:1", getToken: () => "t", onResult: 3 })),
        missingStore: await caught(() => m.annalSync({ name: "bg-never-opened", serverUrl: "http://127.0.0.1:1", getToken: () => "t" })),
        leftBehind: (await indexedDB.databases()).some((d) => d.name === "annal:bg-never-opened"),
      };
    }, STORES.kek);
    await page.close();
    assert.ok(r.noWindow);
    for (const [k, field] of [
      ["noName", "name"],
      ["noToken", "getToken"],
      ["badOnResult", "onResult"],
    ]) {
      assert.equal(r[k].isError, true, k);
      assert.equal(r[k].code, "ANNAL_VALIDATION", k);
      assert.equal(r[k].field, field, k);
    }
    assert.equal(r.missingStore.code, "ANNAL_VALIDATION", JSON.stringify(r.missingStore));
    assert.equal(r.missingStore.field, "name");
    assert.match(r.missingStore.message, /does not exist/);
    assert.equal(r.leftBehind, false, "a store the worker could not find is not created empty");
    assert.equal(r.badUrl.code, "ANNAL_VALIDATION", JSON.stringify(r.badUrl));
  });
  test("without Background Sync: requestBackgroundSync() messages the worker, which syncs now, and syncs again whenever it starts", async () => {
    const name = STORES.fallback;
    const page = await appPage({ nosync: true });
    const before = auth.reports(name).length;
    const mode = await page.evaluate(
      async ({ name, tenant }) => {
        const { EventStore } = self.annal;
        // This page plays the browser, too: no registration.sync, no periodicSync.
        for (const api of ["sync", "periodicSync"]) Object.defineProperty(ServiceWorkerRegistration.prototype, api, { get: () => undefined, configurable: true });
        await EventStore.destroy(name);
        const store = await EventStore.open({ name, userId: "patient-fallback", tenantId: tenant });
        self.fallbackStore = store;
        await store.append({ aggregateType: "diary", aggregateId: "d", eventType: "symptom-recorded", payload: { i: 1 } });
        await store.append({ aggregateType: "diary", aggregateId: "d", eventType: "symptom-recorded", payload: { i: 2 } });
        return store.requestBackgroundSync();
      },
      { name, tenant: TENANT },
    );
    assert.equal(mode, "message");
    const first = await auth.waitReport(name, (x) => auth.reports(name).indexOf(x) >= before && x.ok && x.report.pushed > 0);
    assert.equal(first.report.pushed, 2);

    // The worker stops; anything that starts it again (here a message of the app's own) syncs.
    await page.evaluate(() => self.fallbackStore.append({ aggregateType: "diary", aggregateId: "d", eventType: "symptom-recorded", payload: { i: 3 } }));
    await workerStops();
    const afterStop = auth.reports(name).length;
    await page.evaluate(() => navigator.serviceWorker.controller.postMessage({ app: "hello" }));
    const started = await auth.waitReport(name, (x) => auth.reports(name).indexOf(x) >= afterStop && x.ok && x.report.pushed > 0);
    assert.equal(started.report.pushed, 1);
    assert.deepEqual(
      (await onServer("patient-fallback")).map((e) => e.deviceSeq),
      [1, 2, 3],
    );
    await page.evaluate(() => self.fallbackStore.close());
    await page.close();
  });
});
