// The large stores that workloads 4–6 read: built once per session, in
// chunks so the page never holds more than CHUNK events, reused by every
// run, and deleted once the last workload that reads them is done.
//
// Events are those of page/records.js with `store / 100` aggregates, so
// each aggregate has exactly 100 events, spread over the whole log.

import { expectEqual } from "./checks.mjs";

const CHUNK = 10_000;
const BATCH = 1000;

const KINDS = {
  raw: { db: "bench-store-raw", idb: "bench-store-raw", module: "raw" },
  dexie: { db: "bench-store-dexie", idb: "bench-store-dexie", module: "dexie" },
  plain: { db: "bench-store-plain", idb: "annal:bench-store-plain", module: "annal" },
  encrypted: { db: "bench-store-encrypted", idb: "annal:bench-store-encrypted", module: "annal", options: { encrypted: true } },
  big: { db: "bench-store-big", idb: "annal:bench-store-big", module: "annal", big: true },
};

/** The IndexedDB names of the fixtures a run may build. */
export function fixtureDatabases({ big }) {
  return Object.values(KINDS)
    .filter((k) => big || !k.big)
    .map((k) => k.idb);
}

/** The event shape of a fixture of `n` events. */
export function fixtureShape(n) {
  return { aggregates: Math.max(1, Math.floor(n / 100)), types: 10 };
}

export class Fixtures {
  constructor(ctx) {
    this.ctx = ctx;
    this.built = new Map();
    /** How each was built: events, ms, events/s (one build per session). */
    this.builds = {};
  }

  /** Size of fixture `kind`. */
  size(kind) {
    return KINDS[kind].big ? this.ctx.sizes.bigStore : this.ctx.sizes.store;
  }

  /** The database handle name of fixture `kind`, building it first if needed. */
  async get(kind) {
    const k = KINDS[kind];
    if (!this.built.has(kind)) {
      const n = this.size(kind);
      const shape = fixtureShape(n);
      this.ctx.log(`building the ${n}-event ${kind} store`);
      await this.ctx.call(`${k.module}.create`, k.db, k.options ?? {});
      let ms = 0;
      for (let from = 0; from < n; from += CHUNK) {
        const r = await this.ctx.call(`${k.module}.batches`, k.db, this.ctx.ev(from, Math.min(CHUNK, n - from), shape), { size: BATCH });
        ms += r.ms;
      }
      expectEqual(`${kind} store size`, await this.ctx.call(`${k.module}.count`, k.db), n);
      this.builds[kind] = { events: n, batch: BATCH, ms: Math.round(ms), perSec: Math.round((n * 1000) / ms) };
      this.built.set(kind, k.db);
    }
    return k.db;
  }

  /** Deletes the fixtures built so far. */
  async dropAll() {
    for (const kind of this.built.keys()) await this.ctx.call(`${KINDS[kind].module}.remove`, KINDS[kind].db);
    this.built.clear();
  }
}
