// Upgrading a store written at layout 2 (docs/FORMAT.md §8.1) to layout 3,
// where aggregate versions live in page metadata. The layout-2 database is
// built the way annal 0.1 at layout 2 wrote it: the same object stores and
// indexes, pages without `aggregate_heads`, and one `aggregates` record per
// aggregate. It is made from a store annal wrote, so every hash is real.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, startServer } from "./harness.mjs";

let server, browser, page;

before(async () => {
  server = await startServer();
  browser = await launch();
  page = await openPage(await browser.newContext(), server.url);
  await page.evaluate(() => {
    const request = (req) =>
      new Promise((ok, fail) => {
        req.onsuccess = () => ok(req.result);
        req.onerror = () => fail(req.error);
      });
    const done = (tx) =>
      new Promise((ok, fail) => {
        tx.oncomplete = () => ok();
        tx.onabort = () => fail(tx.error);
      });
    const STORES = ["meta", "pages", "aggregates", "idempotency", "sync", "receipts", "remote"];
    /** Everything in database `name`, store by store: `{ version, stores: { s: { keys, values } } }`. */
    async function dump(dbName) {
      const db = await request(indexedDB.open(dbName));
      const tx = db.transaction(STORES, "readonly");
      const stores = {};
      for (const s of STORES) {
        stores[s] = { keys: await request(tx.objectStore(s).getAllKeys()), values: await request(tx.objectStore(s).getAll()) };
      }
      const out = { version: db.version, stores, indexes: [...tx.objectStore("pages").indexNames] };
      db.close();
      return out;
    }
    /**
     * Rewrites store `name` as layout 2 had it: pages lose `aggregate_heads`
     * and each aggregate's newest head becomes its `aggregates` record
     * `{ aggregate_type, version, last_device_seq }`.
     */
    async function toLayout2(name) {
      const dbName = `annal:${name}`;
      const { stores } = await dump(dbName);
      const aggregates = new Map();
      for (const p of stores.pages.values) {
        for (const [id, version, type, last] of p.aggregate_heads) {
          aggregates.set(id, { aggregate_type: type, version, last_device_seq: last });
        }
        delete p.aggregate_heads;
      }
      await request(indexedDB.deleteDatabase(dbName));
      const open = indexedDB.open(dbName, 2);
      open.onupgradeneeded = () => {
        const db = open.result;
        for (const s of ["meta", "aggregates", "idempotency", "sync", "remote"]) db.createObjectStore(s);
        const pages = db.createObjectStore("pages", { keyPath: "first_device_seq" });
        for (const [index, path] of [
          ["by_aggregate_id", "aggregate_ids"],
          ["by_aggregate_type", "aggregate_types"],
          ["by_event_type", "event_types"],
          ["by_time_bucket", "time_buckets"],
        ]) {
          pages.createIndex(index, path, { multiEntry: true });
        }
        db.createObjectStore("receipts").createIndex("by_outcome", "outcome");
      };
      const db = await request(open);
      const tx = db.transaction(STORES, "readwrite");
      for (const s of STORES) {
        if (s === "aggregates") continue;
        const { keys, values } = stores[s];
        values.forEach((v, i) => (s === "pages" ? tx.objectStore(s).add(v) : tx.objectStore(s).add(v, keys[i])));
      }
      for (const [id, record] of aggregates) tx.objectStore("aggregates").add(record, id);
      await done(tx);
      db.close();
      return { aggregates: Object.fromEntries(aggregates) };
    }
    /** Sets the version of `aggregates` record `id` behind annal's back. */
    async function editAggregate(name, id, version) {
      const db = await request(indexedDB.open(`annal:${name}`));
      const tx = db.transaction(["aggregates"], "readwrite");
      const store = tx.objectStore("aggregates");
      store.put({ ...(await request(store.get(id))), version }, id);
      await done(tx);
      db.close();
    }
    globalThis.layout = { dump, toLayout2, editAggregate };
  });
});

after(async () => {
  await browser?.close();
  server?.server.close();
});

const VARIANTS = [
  ["plain", {}],
  ["encrypted, blind indexes", { passphrase: "correct horse battery staple" }],
];

describe("a layout-2 store opened by layout 3", () => {
  VARIANTS.forEach(([label, extra], v) => {
    test(`${label}: keeps every event, continues every aggregate's versions and verifies`, async () => {
      const r = await page.evaluate(
        async ([name, extra]) => {
          await annal.EventStore.destroy(name);
          const e = (id, i) => ({ aggregateType: "diary", aggregateId: id, eventType: "noted", payload: { i } });
          let s = await annal.EventStore.open({ name, userId: "u-1", ...extra });
          for (let i = 1; i <= 6; i++) await s.append(e(`p-${i % 3}`, i));
          await s.appendBatch([e("p-1", 7), e("p-2", 8), { ...e("p-0", 9), idempotencyKey: "k-9" }, e("p-1", 10)]);
          const before = await s.events();
          s.close();
          const legacy = await layout.toLayout2(name);
          const asWritten = await layout.dump(`annal:${name}`);

          s = await annal.EventStore.open({ name, userId: "u-1", ...extra });
          const upgraded = await layout.dump(`annal:${name}`);
          const out = {
            legacy,
            versionBefore: asWritten.version,
            versionAfter: upgraded.version,
            indexes: upgraded.indexes,
            samePages: JSON.stringify(upgraded.stores.pages.values.map((p) => [p.first_device_seq, [...p.records]])) ===
              JSON.stringify(asWritten.stores.pages.values.map((p) => [p.first_device_seq, [...p.records]])),
            sameEvents: JSON.stringify(await s.events()) === JSON.stringify(before),
            verified: await s.verify(),
            versions: {},
          };
          for (const id of ["p-0", "p-1", "p-2"]) out.versions[id] = (await s.aggregate(id)).version;
          // An aggregate's version continues from its aggregates record.
          const next = await s.append({ ...e("p-1", 11), expectedVersion: out.versions["p-1"] });
          const conflict = await s.append({ ...e("p-2", 12), expectedVersion: out.versions["p-2"] - 1 }).catch((err) => err);
          const fresh = await s.append(e("p-9", 13));
          const retry = await s.append({ ...e("p-0", 9), idempotencyKey: "k-9" });
          const afterAppends = await layout.dump(`annal:${name}`);
          out.next = { seq: next.deviceSeq, version: next.aggregateVersion };
          out.conflict = { isError: conflict instanceof Error, code: conflict.code, message: conflict.message };
          out.fresh = fresh.aggregateVersion;
          out.retry = retry.deviceSeq;
          out.newPages = afterAppends.stores.pages.values.slice(asWritten.stores.pages.values.length).map((p) => p.aggregate_heads?.length);
          out.aggregatesUnchanged = JSON.stringify(afterAppends.stores.aggregates) === JSON.stringify(asWritten.stores.aggregates);
          out.verifiedAfter = await s.verify();
          s.close();
          // A second context, with nothing cached, finds the new versions.
          s = await annal.EventStore.open({ name, userId: "u-1", ...extra });
          out.again = (await s.append(e("p-1", 14))).aggregateVersion;
          out.againFresh = (await s.append(e("p-9", 15))).aggregateVersion;
          // p-2 is unseen here and presumed new, but has its aggregates record.
          out.againLegacy = (await s.append(e("p-2", 20))).aggregateVersion;
          s.close();
          // One more, in one commit: aggregates known only by their
          // aggregates record (p-0, p-2), by their heads (p-1) and not at all.
          s = await annal.EventStore.open({ name, userId: "u-1", ...extra });
          const batch = await s.appendBatch([e("p-0", 16), e("p-2", 17), e("p-1", 18), e("p-new", 19)]);
          out.batch = batch.map((ev) => ev.aggregateVersion);
          out.verifiedLast = await s.verify();
          s.close();
          return out;
        },
        [`upgrade-${v}`, extra],
      );
      assert.equal(r.versionBefore, 2);
      assert.equal(r.versionAfter, 3);
      assert.ok(r.indexes.includes("by_aggregate_head"), r.indexes.join());
      assert.equal(Object.keys(r.legacy.aggregates).length, 3);
      assert.ok(r.samePages, "the upgrade rewrites no page");
      assert.ok(r.sameEvents, "every event reads back as before");
      assert.deepEqual([r.verified.ok, r.verified.checked], [true, 10], r.verified.message);
      assert.deepEqual(r.versions, { "p-0": 3, "p-1": 4, "p-2": 3 });
      assert.deepEqual(r.next, { seq: 11, version: 5 });
      assert.deepEqual([r.conflict.isError, r.conflict.code], [true, "ANNAL_VERSION_CONFLICT"]);
      assert.match(r.conflict.message, /version 3, not the expected 2/);
      assert.equal(r.fresh, 1);
      assert.equal(r.retry, 9, "an idempotency key used at layout 2 still answers with its event");
      assert.deepEqual(r.newPages, [1, 1], "pages written at layout 3 carry aggregate_heads");
      assert.ok(r.aggregatesUnchanged, "layout 3 never writes the aggregates object store");
      assert.deepEqual([r.verifiedAfter.ok, r.verifiedAfter.checked], [true, 12], r.verifiedAfter.message);
      assert.deepEqual([r.again, r.againFresh, r.againLegacy], [6, 2, 4]);
      assert.deepEqual(r.batch, [4, 5, 7, 1], "one commit finds legacy, layout-3 and new aggregates alike");
      assert.deepEqual([r.verifiedLast.ok, r.verifiedLast.checked], [true, 19], r.verifiedLast.message);
    });

    test(`${label}: an edited aggregates record from layout 2 is caught by verify()`, async () => {
      const r = await page.evaluate(
        async ([name, extra]) => {
          await annal.EventStore.destroy(name);
          const e = (id, i) => ({ aggregateType: "diary", aggregateId: id, eventType: "noted", payload: { i } });
          let s = await annal.EventStore.open({ name, userId: "u-1", ...extra });
          for (let i = 1; i <= 4; i++) await s.append(e(`p-${i % 2}`, i));
          s.close();
          const { aggregates } = await layout.toLayout2(name);
          s = await annal.EventStore.open({ name, userId: "u-1", ...extra });
          await s.append(e("p-1", 5));
          const ok = await s.verify();
          // p-0 was last appended at layout 2: its record is what counts.
          const id = Object.keys(aggregates).find((k) => aggregates[k].last_device_seq === 4);
          await layout.editAggregate(name, id, 7);
          const bad = await s.verify();
          s.close();
          return { ok, bad };
        },
        [`upgrade-edit-${v}`, extra],
      );
      assert.equal(r.ok.ok, true, r.ok.message);
      assert.equal(r.bad.ok, false);
      assert.equal(r.bad.reason, "INDEX_MISMATCH", r.bad.message);
      assert.equal(r.bad.firstBadSeq, 4);
      assert.match(r.bad.message, /aggregates object store/);
    });
  });
});
