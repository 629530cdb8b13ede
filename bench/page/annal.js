// annal's side of every workload, through the packed npm package exactly
// as an app uses it. Stores are named `bench-…` (IndexedDB `annal:bench-…`).

import { EventStore } from "/annal/dist/index.js";
import { claim, drop } from "./guard.js";
import { jsHeap, liveJsHeap, wasmMemory } from "./memory.js";
import { manyAtATime, now, oneAtATime, summarize, throughput } from "./stats.js";

export const USER = "bench-user";
export const TENANT = "bench";
const open = new Map();

export const dbName = (name) => `annal:${name}`;

/** A non-extractable AES-GCM key-encryption key, as an app's WebAuthn PRF or platform key would be. */
export function newKek() {
  return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/**
 * Creates store `name` (plain, or `encrypted` under a fresh KEK kept in
 * this page to reopen it) with `durability`; `user` defaults to USER.
 */
export async function create(name, { encrypted = false, durability = "strict", user = USER } = {}) {
  await claim(dbName(name));
  const kek = encrypted ? await newKek() : undefined;
  const options = { name, userId: user, tenantId: TENANT, durability, ...(kek ? { keyEncryptionKey: kek } : {}) };
  open.set(name, { store: await EventStore.open(options), options });
  return name;
}

export const store = (name) => open.get(name).store;

/**
 * Opens plain store `name`, which the bench created in another tab of this
 * origin, in this tab: this tab's wasm instance then starts from nothing,
 * so its memory figures are this store's alone.
 */
export async function openExisting(name) {
  const options = { name, userId: USER, tenantId: TENANT };
  open.set(name, { store: await EventStore.open(options), options });
  return name;
}

/** Closes the store and keeps its database. */
export function close(name) {
  open.get(name)?.store.close();
  open.delete(name);
}

export async function remove(name) {
  open.get(name)?.store.close();
  open.delete(name);
  await drop(dbName(name));
}

/** How many events the store holds. */
export async function count(name) {
  return (await store(name).head()).deviceSeq;
}

/** `append()` in sequence: latency of each, from call to durable. */
export async function appendLatency(name, evs) {
  const s = store(name);
  return oneAtATime(evs, (ev) => s.append(ev));
}

/** `Promise.all` of `inFlight` appends at a time: throughput and each append's latency. */
export async function concurrent(name, evs, { inFlight = 64 } = {}) {
  const s = store(name);
  return manyAtATime(evs, inFlight, (ev) => s.append(ev));
}

/** `appendBatch()` of `size` events at a time. */
export async function batches(name, evs, { size }) {
  const s = store(name);
  const steps = [];
  for (let i = 0; i < evs.length; i += size) {
    const batch = evs.slice(i, i + size);
    const t0 = now();
    await s.appendBatch(batch);
    steps.push(now() - t0);
  }
  return throughput(evs.length, steps.reduce((a, b) => a + b, 0), steps);
}

/**
 * A full `iterate()`. With `sampleEvery`, samples wasm linear memory and
 * the JS heap every that many events, and the live JS heap (after a
 * forced GC, which takes time: the rate is not a figure then) every
 * `liveEvery`: `wasmMaxBytes` is the high-water mark (linear memory never
 * shrinks, so the last sample is the largest).
 */
export async function iterate(name, { sampleEvery = 0, liveEvery = 0 } = {}) {
  const s = store(name);
  const before = { wasm: wasmMemory(), js: jsHeap(), live: sampleEvery ? liveJsHeap() : null };
  let wasmMax = before.wasm;
  let jsMax = before.js;
  let liveMax = before.live;
  let n = 0;
  const t0 = now();
  for await (const e of s.iterate()) {
    n++;
    if (e.deviceSeq !== n) throw new Error(`iterate() gave #${e.deviceSeq} as the ${n}th event`);
    if (sampleEvery && n % sampleEvery === 0) {
      wasmMax = max(wasmMax, wasmMemory());
      jsMax = max(jsMax, jsHeap());
    }
    if (liveEvery && n % liveEvery === 0) liveMax = max(liveMax, liveJsHeap());
  }
  const result = throughput(n, now() - t0);
  if (sampleEvery) {
    const after = { wasm: wasmMemory(), js: jsHeap(), live: liveJsHeap() };
    result.memory = { before, wasmMaxBytes: max(wasmMax, after.wasm), jsHeapMaxBytes: max(jsMax, after.js), liveJsHeapMaxBytes: max(liveMax, after.live), after };
  }
  return result;
}

/** The larger of two readings, either of which may be null (unreachable). */
function max(a, b) {
  return a === null || b === null ? (a ?? b) : Math.max(a, b);
}

/** `aggregate(id)` per id: latency, and the versions found. */
export async function aggregateQuery(name, ids) {
  const s = store(name);
  const samples = [];
  const sizes = [];
  for (const id of ids) {
    const t0 = now();
    const a = await s.aggregate(id);
    samples.push(now() - t0);
    if (a.version !== a.events.length) throw new Error(`aggregate ${id}: version ${a.version} with ${a.events.length} events`);
    sizes.push(a.events.length);
  }
  return { latency: summarize(samples), sizes };
}

/** `events({ eventType, limit })` per type. */
export async function typeQuery(name, types, { limit }) {
  const s = store(name);
  const samples = [];
  const sizes = [];
  for (const eventType of types) {
    const t0 = now();
    const rows = await s.events({ eventType, limit });
    samples.push(now() - t0);
    if (rows.some((e) => e.eventType !== eventType)) throw new Error(`events({ eventType: ${eventType} }) returned another type`);
    sizes.push(rows.length);
  }
  return { latency: summarize(samples), sizes };
}

/** `verify()`: throughput, and its report. */
export async function verify(name) {
  const t0 = now();
  const report = await store(name).verify();
  return { ...throughput(report.checked, now() - t0), report };
}

/** `close()` then `EventStore.open()` again, `times` times: the open latencies. */
export async function reopen(name, { times }) {
  const h = open.get(name);
  const samples = [];
  for (let i = 0; i < times; i++) {
    h.store.close();
    const t0 = now();
    h.store = await EventStore.open(h.options);
    samples.push(now() - t0);
  }
  return { latency: summarize(samples), events: await count(name) };
}
