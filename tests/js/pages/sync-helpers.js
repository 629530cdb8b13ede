// Page-side helpers of the sync tests, installed as `self.h` by sync.html
// (pages) and sync-worker.js (a dedicated worker). Runs in the browser.
import * as annal from "/annal/dist/index.js";
import * as testing from "/annal/dist/testing/index.js";

const request = (r) =>
  new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });

async function openRaw(dbName) {
  return request(indexedDB.open(dbName));
}

export const h = {
  /**
   * Rewrites the first event of the first `remote` row as layout 2 stored
   * pulled events, one row each (`{ device_id, device_seq, record }` keyed
   * by its ledger seq), leaving the rest of that row a layout-3 pack.
   */
  async splitFirstRemoteRow(dbName) {
    const db = await openRaw(dbName);
    const tx = db.transaction(["remote"], "readwrite");
    const store = tx.objectStore("remote");
    const [key] = await request(store.getAllKeys(null, 1));
    const row = await request(store.get(key));
    const first = row.records.slice(0, row.lens[0]);
    store.delete(key);
    store.put({ device_id: row.device_ids[0], device_seq: row.device_seqs[0], record: first }, row.seqs[0]);
    if (row.seqs.length > 1) {
      const rest = {
        seqs: row.seqs.slice(1),
        device_ids: row.device_ids.slice(1),
        device_seqs: row.device_seqs.slice(1),
        lens: row.lens.slice(1),
        records: row.records.slice(row.lens[0]),
      };
      store.put(rest, rest.seqs[0]);
    }
    await new Promise((ok, fail) => Object.assign(tx, { oncomplete: ok, onabort: () => fail(tx.error) }));
    db.close();
  },
  /** The data key id of every record in `remote`, rows of both layouts. */
  async remoteKeyIds(dbName) {
    const db = await openRaw(dbName);
    const rows = await request(db.transaction(["remote"]).objectStore("remote").getAll());
    db.close();
    return rows.flatMap((row) => testing.decodeSealedPage(row.record ?? row.records).map((r) => r.keyId));
  },
  /** Open stores, by name, so a test can use them across evaluate() calls. */
  stores: {},
  /** What an error is, as plain data a test can assert on. */
  describe(e) {
    return {
      threw: true,
      isError: e instanceof Error,
      isAnnalError: e instanceof annal.AnnalError,
      isSchemaIncompatible: e instanceof annal.AnnalSchemaIncompatibleError,
      name: e?.name,
      code: e?.code,
      message: String(e?.message ?? e),
      field: e?.field,
    };
  },
  /** Runs `f`: `{ threw: false, value }`, or what it threw. */
  async caught(f) {
    try {
      return { threw: false, value: await f() };
    } catch (e) {
      return h.describe(e);
    }
  },
  ev(i, extra = {}) {
    return { aggregateType: "diary", aggregateId: `patient-${i % 3}`, eventType: "symptom-recorded", payload: { i }, ...extra };
  },
  /** A fresh store (its database deleted first), remembered as `h.stores[name]`. */
  async open(name, userId, tenantId, extra = {}) {
    h.stores[name]?.close();
    await annal.EventStore.destroy(name);
    const store = await annal.EventStore.open({ name, userId, tenantId, ...extra });
    h.stores[name] = store;
    return store;
  },
  /** An existing store, opened again in this context (no delete). */
  async reopen(name, extra = {}) {
    h.stores[name]?.close();
    const store = await annal.EventStore.open({ name, ...extra });
    h.stores[name] = store;
    return store;
  },
  /** Closes and deletes every store this context opened. */
  async destroyAll() {
    for (const [name, store] of Object.entries(h.stores)) {
      store.close();
      await annal.EventStore.destroy(name);
    }
    h.stores = {};
  },
  /** Sync with a fixed token; `auto: false` keeps background triggers off unless `extra` says otherwise. */
  configure(store, serverUrl, token, scope, extra = {}) {
    store.configureSync({ serverUrl, getToken: async () => token, auto: false, ...(scope ? { scope } : {}), ...extra });
  },
  /** `n` events in batches of `batch`, as one nurse's shift of offline work. */
  async appendMany(store, n, batch = 1000, from = 1) {
    for (let i = from; i < from + n; i += batch) {
      const size = Math.min(batch, from + n - i);
      await store.appendBatch(Array.from({ length: size }, (_, k) => h.ev(i + k)));
    }
  },
  /** `sync()` until it succeeds, at most `max` passes: the failures, then the report. */
  async syncUntilDone(store, max) {
    const failures = [];
    for (let n = 0; n < max; n++) {
      try {
        return { failures, report: await store.sync() };
      } catch (e) {
        failures.push(h.describe(e));
      }
    }
    return { failures, report: null };
  },
  /** Hashes of this store's events, in device order. */
  async hashes(store) {
    const out = [];
    for await (const e of store.iterate()) out.push(e.hash);
    return out;
  },
  /** A non-extractable AES-GCM 256 key from 32 known bytes. */
  kek(seed = 1) {
    const raw = Uint8Array.from({ length: 32 }, (_, i) => (i * 31 + seed * 7) & 0xff);
    return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  },
  /**
   * Whether `marker` occurs anywhere in IndexedDB database `dbName`: in
   * any key or value, strings and bytes (as Latin-1) alike.
   */
  async rawContains(dbName, marker) {
    const db = await openRaw(dbName);
    const texts = [];
    const walk = (v) => {
      if (typeof v === "string") texts.push(v);
      else if (v instanceof ArrayBuffer) texts.push(new TextDecoder("latin1").decode(v));
      else if (ArrayBuffer.isView(v)) texts.push(new TextDecoder("latin1").decode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
      else if (v instanceof Blob) texts.push("(blob)");
      else if (v && typeof v === "object") for (const x of Object.values(v)) walk(x);
    };
    try {
      for (const s of db.objectStoreNames) {
        const os = db.transaction(s).objectStore(s);
        walk(await request(os.getAll()));
        walk(await request(os.getAllKeys()));
      }
    } finally {
      db.close();
    }
    return texts.some((t) => t.includes(marker));
  },
  /** Overwrites the stored sync state of IndexedDB database `dbName` with text that is not JSON. */
  async corruptSyncState(dbName) {
    const db = await openRaw(dbName);
    try {
      const tx = db.transaction("sync", "readwrite");
      tx.objectStore("sync").put({ state: "not json" }, "state");
      await new Promise((ok, fail) => ((tx.oncomplete = ok), (tx.onerror = () => fail(tx.error))));
    } finally {
      db.close();
    }
  },
  /** The rows of the `receipts` store of IndexedDB database `dbName` (docs/FORMAT.md §8.1). */
  async receiptRows(dbName) {
    const db = await openRaw(dbName);
    try {
      const rows = await request(db.transaction("receipts").objectStore("receipts").getAll());
      // One per event: a row of a run of accepted events (`receipts`) is
      // spread out; where rows overlap, the greater key holds the newer receipt.
      const bySeq = new Map();
      for (const r of rows) {
        if (typeof r.receipts !== "string") {
          bySeq.set(r.device_seq, { ...r, receipt: typeof r.receipt === "string" ? JSON.parse(r.receipt) : r.receipt });
          continue;
        }
        const receipts = JSON.parse(r.receipts);
        if (receipts.length !== r.last_device_seq - r.device_seq + 1) throw new Error(`receipt row ${r.device_seq} holds ${receipts.length} receipts for ${r.device_seq}..${r.last_device_seq}`);
        receipts.forEach((receipt, i) => bySeq.set(r.device_seq + i, { device_seq: r.device_seq + i, outcome: r.outcome, receipt, row: r.device_seq }));
      }
      return [...bySeq.values()].sort((a, b) => a.device_seq - b.device_seq);
    } finally {
      db.close();
    }
  },
  /** Everything `store` fires of `types`, as plain data, into `into` (an array), until the returned stop(). */
  record(store, types, into) {
    const listeners = types.map((type) => {
      const f = (e) => {
        const entry = { type, at: Date.now() };
        if (type === "syncstatus") entry.status = e.status;
        if (type === "syncprogress") Object.assign(entry, { verified: e.verified, seq: e.seq, more: e.more });
        if (type === "syncerror") entry.error = h.describe(e.error);
        if (type === "rejected" || type === "conflict") entry.items = e.items;
        if (type === "lockchange") entry.locked = e.locked;
        into.push(entry);
      };
      store.addEventListener(type, f);
      return [type, f];
    });
    return () => listeners.forEach(([type, f]) => store.removeEventListener(type, f));
  },
  /** Waits until `f()` is truthy (real time), at most `ms`. */
  async until(f, ms = 10_000, what = "the condition") {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((ok) => setTimeout(ok, 20));
    }
  },
  /** Waits until no pass runs for `store` in any context. */
  async settled(store, ms = 10_000) {
    return h.until(async () => {
      const s = await store.syncStatus();
      return s.state !== "syncing" && s;
    }, ms, "sync to settle");
  },
};

export function install() {
  self.annal = annal;
  self.testing = testing;
  self.h = h;
}
