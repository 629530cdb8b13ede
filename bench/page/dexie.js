// The same work through Dexie (the npm package, unmodified), the library
// an app would otherwise pick: one table keyed by `seq` with the same three
// indexes as the raw baseline, and `chromeTransactionDurability: "strict"`
// so its writes are as durable as annal's.

import Dexie from "/dexie/dexie.mjs";
import { claim, drop } from "./guard.js";
import { record } from "./records.js";
import { manyAtATime, now, oneAtATime, summarize, throughput } from "./stats.js";

const open = new Map();

function database(name, durability) {
  const db = new Dexie(name, { chromeTransactionDurability: durability });
  db.version(1).stores({ events: "seq, aggregateId, aggregateType, eventType" });
  return db;
}

export async function create(name, { durability = "strict" } = {}) {
  await claim(name);
  const db = database(name, durability);
  await db.open();
  open.set(name, { db, durability, next: 1 });
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

function numbered(h, evs) {
  return evs.map((ev) => record(h.next++, ev));
}

/** `table.add()` one record at a time, in sequence. */
export async function singleLatency(name, evs) {
  const h = open.get(name);
  return oneAtATime(numbered(h, evs), (r) => h.db.events.add(r));
}

/** `add()` with `inFlight` outstanding at once (Dexie gives each its own transaction). */
export async function concurrent(name, evs, { inFlight = 64 } = {}) {
  const h = open.get(name);
  return manyAtATime(numbered(h, evs), inFlight, (r) => h.db.events.add(r));
}

/** `bulkAdd()` of `size` records at a time. */
export async function batches(name, evs, { size }) {
  const h = open.get(name);
  const steps = [];
  for (let i = 0; i < evs.length; i += size) {
    const rs = numbered(h, evs.slice(i, i + size));
    const t0 = now();
    await h.db.events.bulkAdd(rs);
    steps.push(now() - t0);
  }
  return throughput(evs.length, steps.reduce((a, b) => a + b, 0), steps);
}

export async function count(name) {
  return open.get(name).db.events.count();
}

/** A full scan with `table.each()` (one cursor). */
export async function scan(name) {
  const h = open.get(name);
  let n = 0;
  const t0 = now();
  await h.db.events.each(() => n++);
  return throughput(n, now() - t0);
}

/** `where(index).equals(key)` (with `.limit()` if given) `.toArray()` per key. */
export async function indexQuery(name, index, keys, { limit } = {}) {
  const h = open.get(name);
  const samples = [];
  const sizes = [];
  for (const key of keys) {
    const t0 = now();
    let q = h.db.events.where(index).equals(key);
    if (limit !== undefined) q = q.limit(limit);
    const rows = await q.toArray();
    samples.push(now() - t0);
    sizes.push(rows.length);
  }
  return { latency: summarize(samples), sizes };
}

/** `close()` then a new `Dexie(name).open()`, `times` times: the open latencies. */
export async function reopen(name, { times }) {
  const h = open.get(name);
  const samples = [];
  for (let i = 0; i < times; i++) {
    h.db.close();
    const t0 = now();
    h.db = database(name, h.durability);
    await h.db.open();
    samples.push(now() - t0);
  }
  return { latency: summarize(samples), events: await count(name) };
}
