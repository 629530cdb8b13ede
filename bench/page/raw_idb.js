// The raw IndexedDB baselines: the least work IndexedDB needs to do what an
// annal call does, so annal's figures can be read as multiples of the
// browser's own cost. One object store `events` keyed by `seq` with the
// three indexes annal's queries need (aggregateId, aggregateType,
// eventType), or, for the packed layout, one value per ~50 records with
// the same three as multi-entry indexes. Durability is `strict` unless a
// call says otherwise, and each write transaction is committed explicitly,
// as annal's are.

import { claim, drop } from "./guard.js";
import { pack, record } from "./records.js";
import { manyAtATime, now, oneAtATime, summarize, throughput } from "./stats.js";

const STORE = "events";
const INDEXES = [
  ["aggregateId", "aggregateId"],
  ["aggregateType", "aggregateType"],
  ["eventType", "eventType"],
];
/** Records per stored value in the packed layout (about 52 KiB of 1 KiB records). */
export const PER_PACK = 50;
/** Chromium keeps values above this in separate blob files; packs must stay below it. */
const BLOB_THRESHOLD = 64 * 1024;

const open = new Map();

const request = (r) =>
  new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });

const done = (tx) =>
  new Promise((ok, fail) => {
    tx.oncomplete = () => ok();
    tx.onerror = () => fail(tx.error);
    tx.onabort = () => fail(tx.error ?? new Error("transaction aborted"));
  });

/** Creates database `name`: separate records, or `packed` values of PER_PACK records. */
export async function create(name, { packed = false } = {}) {
  await claim(name);
  const req = indexedDB.open(name, 1);
  req.onupgradeneeded = () => {
    const os = req.result.createObjectStore(STORE, { keyPath: packed ? "first" : "seq" });
    for (const [index, path] of INDEXES) os.createIndex(index, packed ? `${path}s` : path, { multiEntry: packed });
  };
  const db = await request(req);
  db.onversionchange = () => db.close();
  open.set(name, { db, packed, next: 1 });
  return name;
}

/** Closes the connection and keeps the database. */
export function close(name) {
  open.get(name)?.db.close();
  open.delete(name);
}

export async function remove(name) {
  open.get(name)?.db.close();
  open.delete(name);
  await drop(name);
}

function writeTx(h, durability) {
  return h.db.transaction(STORE, "readwrite", { durability });
}

function commit(tx) {
  const finished = done(tx);
  tx.commit?.();
  return finished;
}

/** Assigns the next sequence numbers to `evs`, as stored records. */
function numbered(h, evs) {
  return evs.map((ev) => record(h.next++, ev));
}

/** One record per readwrite transaction, one `put` each, in sequence: latency per transaction. */
export async function singleLatency(name, evs, { durability = "strict" } = {}) {
  const h = open.get(name);
  return oneAtATime(numbered(h, evs), (r) => putOne(h, r, durability));
}

/** Single-record transactions with `inFlight` of them outstanding at once. */
export async function concurrent(name, evs, { inFlight = 64, durability = "strict" } = {}) {
  const h = open.get(name);
  return manyAtATime(numbered(h, evs), inFlight, (r) => putOne(h, r, durability));
}

/** One record in a readwrite transaction of its own, committed. */
function putOne(h, r, durability) {
  const tx = writeTx(h, durability);
  tx.objectStore(STORE).put(r);
  return commit(tx);
}

/**
 * Batches of `size` in one transaction each: separate `add()`s, or with
 * a packed database one `add()` per PER_PACK records.
 */
export async function batches(name, evs, { size, durability = "strict" } = {}) {
  const h = open.get(name);
  const steps = [];
  let bytes = 0;
  for (let i = 0; i < evs.length; i += size) {
    const rs = numbered(h, evs.slice(i, i + size));
    const values = h.packed ? packs(rs) : rs;
    const t0 = now();
    const tx = writeTx(h, durability);
    const os = tx.objectStore(STORE);
    for (const v of values) os.add(v);
    await commit(tx);
    steps.push(now() - t0);
    if (h.packed) bytes = Math.max(bytes, ...values.map((v) => JSON.stringify(v).length));
  }
  return { ...throughput(evs.length, steps.reduce((a, b) => a + b, 0), steps), largestValueBytes: bytes || undefined };
}

function packs(rs) {
  const out = [];
  for (let i = 0; i < rs.length; i += PER_PACK) {
    const p = pack(rs.slice(i, i + PER_PACK));
    // A pack that spilled into a blob file would measure another layout.
    if (JSON.stringify(p).length >= BLOB_THRESHOLD) throw new Error("a packed value reached Chromium's 64 KiB blob threshold");
    out.push(p);
  }
  return out;
}

/** How many events the database holds (counting the records inside packs). */
export async function count(name) {
  const h = open.get(name);
  const os = h.db.transaction(STORE).objectStore(STORE);
  if (!h.packed) return request(os.count());
  let n = 0;
  await cursorEach(os.openCursor(), (v) => (n += v.records.length));
  return n;
}

function cursorEach(req, f) {
  return new Promise((ok, fail) => {
    req.onsuccess = () => {
      const c = req.result;
      if (!c) return ok();
      f(c.value);
      c.continue();
    };
    req.onerror = () => fail(req.error);
  });
}

/** A full scan with one cursor in one read transaction, every value deserialized. */
export async function cursorScan(name) {
  const h = open.get(name);
  let n = 0;
  const t0 = now();
  await cursorEach(h.db.transaction(STORE).objectStore(STORE).openCursor(), () => n++);
  return throughput(n, now() - t0);
}

/** A full scan with `getAll` in pages of `pageSize` records, each page in its own read transaction. */
export async function getAllScan(name, { pageSize = 1000 } = {}) {
  const h = open.get(name);
  let n = 0;
  let after = 0;
  const t0 = now();
  for (;;) {
    const os = h.db.transaction(STORE).objectStore(STORE);
    const page = await request(os.getAll(IDBKeyRange.lowerBound(after, true), pageSize));
    if (page.length === 0) break;
    n += page.length;
    after = page.at(-1).seq;
  }
  return throughput(n, now() - t0);
}

/** `index(index).getAll(key, limit)` once per key, each in its own read transaction: latency and result sizes. */
export async function indexQuery(name, index, keys, { limit } = {}) {
  const h = open.get(name);
  const samples = [];
  const sizes = [];
  for (const key of keys) {
    const t0 = now();
    const rows = await request(h.db.transaction(STORE).objectStore(STORE).index(index).getAll(key, limit));
    samples.push(now() - t0);
    sizes.push(rows.length);
  }
  return { latency: summarize(samples), sizes };
}

/** `close()` then `indexedDB.open(name)` again, `times` times: the open latencies. */
export async function reopen(name, { times }) {
  const h = open.get(name);
  const samples = [];
  for (let i = 0; i < times; i++) {
    h.db.close();
    const t0 = now();
    h.db = await request(indexedDB.open(name));
    samples.push(now() - t0);
    h.db.onversionchange = () => h.db.close();
  }
  return { latency: summarize(samples), events: await count(name) };
}
