// 4. Scans and queries over a large store.

import { expectEqual, expectTrue } from "../checks.mjs";
import { fixtureShape } from "../fixtures.mjs";
import { rotate } from "../runs.mjs";

const LIMIT = 50;

export default {
  id: "scan",
  title: "4. Scans and queries over the large store",
  baselines:
    "Stores of N events (100,000 in a full run) built with batches of 1,000; N/100 aggregates with 100 events each, taken round-robin so an aggregate's events are spread over the whole log; 10 event types, also round-robin. " +
    "**Full scan** — raw cursor: one `openCursor()` over the store in one read transaction; raw getAll: `getAll(lowerBound(last seq, open), 1000)` pages, one read transaction each; Dexie: `table.each()`; annal: `for await (const e of store.iterate())`. " +
    "**Aggregate query** (one id at a time, distinct ids) — raw: `index('aggregateId').getAll(id)`; Dexie: `where('aggregateId').equals(id).toArray()`; annal: `store.aggregate(id)`. Each returns the aggregate's 100 events. " +
    `**Event-type query** — raw: \`index('eventType').getAll(type, ${LIMIT})\`; Dexie: \`where('eventType').equals(type).limit(${LIMIT}).toArray()\`; annal: \`store.events({ eventType, limit: ${LIMIT} })\`.`,
  databases: () => ({ main: [] }),

  async run(ctx, r) {
    const n = ctx.sizes.store;
    const { aggregates, types } = fixtureShape(n);
    const q = ctx.sizes.queries;
    // Distinct aggregates in each run, spread over the id space.
    const ids = Array.from({ length: q }, (_, i) => `patient-${(r * q + i) * 7 % aggregates}`);
    const typeKeys = Array.from({ length: q }, (_, i) => `type-${i % types}`);
    const perAggregate = n / aggregates;
    const db = { raw: await ctx.fixtures.get("raw"), dexie: await ctx.fixtures.get("dexie"), annal: await ctx.fixtures.get("plain") };
    const m = {};
    const checks = [];
    const steps = {
      raw: async () => {
        m.rawCursor = await ctx.call("raw.cursorScan", db.raw);
        m.rawGetAll = await ctx.call("raw.getAllScan", db.raw);
        m.rawAggregate = await ctx.call("raw.indexQuery", db.raw, "aggregateId", ids);
        m.rawType = await ctx.call("raw.indexQuery", db.raw, "eventType", typeKeys, { limit: LIMIT });
      },
      dexie: async () => {
        m.dexieScan = await ctx.call("dexie.scan", db.dexie);
        m.dexieAggregate = await ctx.call("dexie.indexQuery", db.dexie, "aggregateId", ids);
        m.dexieType = await ctx.call("dexie.indexQuery", db.dexie, "eventType", typeKeys, { limit: LIMIT });
      },
      annal: async () => {
        m.annalIterate = await ctx.call("annal.iterate", db.annal);
        m.annalAggregate = await ctx.call("annal.aggregateQuery", db.annal, ids);
        m.annalType = await ctx.call("annal.typeQuery", db.annal, typeKeys, { limit: LIMIT });
      },
    };
    for (const k of rotate(Object.keys(steps), r)) await steps[k]();
    for (const k of ["rawCursor", "rawGetAll", "dexieScan", "annalIterate"]) checks.push(expectEqual(`${k} saw every event`, m[k].events, n));
    for (const k of ["rawAggregate", "dexieAggregate", "annalAggregate"])
      checks.push(expectTrue(`${k} returned ${perAggregate} events per aggregate`, m[k].sizes.every((s) => s === perAggregate), JSON.stringify(m[k].sizes)));
    const want = Math.min(LIMIT, n / types);
    for (const k of ["rawType", "dexieType", "annalType"]) checks.push(expectTrue(`${k} returned ${want} events per query`, m[k].sizes.every((s) => s === want), JSON.stringify(m[k].sizes)));
    return { m, checks };
  },

  figures: [
    { id: "scan.annal.rate", label: "annal iterate()", unit: "events/s", better: "higher", get: (m) => m.annalIterate.perSec },
    { id: "scan.rawCursor.rate", label: "raw cursor", unit: "events/s", better: "higher", get: (m) => m.rawCursor.perSec },
    { id: "scan.rawGetAll.rate", label: "raw getAll pages of 1,000", unit: "events/s", better: "higher", get: (m) => m.rawGetAll.perSec },
    { id: "scan.dexie.rate", label: "Dexie each()", unit: "events/s", better: "higher", get: (m) => m.dexieScan.perSec },
    { id: "aggregate.annal.p95", label: "annal aggregate(id) p95", unit: "ms", better: "lower", get: (m) => m.annalAggregate.latency.p95 },
    { id: "aggregate.annal.p50", label: "annal aggregate(id) p50", unit: "ms", better: "lower", get: (m) => m.annalAggregate.latency.p50 },
    { id: "aggregate.raw.p95", label: "raw index getAll(id) p95", unit: "ms", better: "lower", get: (m) => m.rawAggregate.latency.p95 },
    { id: "aggregate.dexie.p95", label: "Dexie where(id) p95", unit: "ms", better: "lower", get: (m) => m.dexieAggregate.latency.p95 },
    { id: "type.annal.p95", label: `annal events({ eventType, limit: ${LIMIT} }) p95`, unit: "ms", better: "lower", get: (m) => m.annalType.latency.p95 },
    { id: "type.raw.p95", label: `raw index getAll(type, ${LIMIT}) p95`, unit: "ms", better: "lower", get: (m) => m.rawType.latency.p95 },
    { id: "type.dexie.p95", label: `Dexie where(type).limit(${LIMIT}) p95`, unit: "ms", better: "lower", get: (m) => m.dexieType.latency.p95 },
  ],
  ratios: [
    { id: "scan.annal/rawCursor", label: "annal iterate() ÷ raw cursor", num: "scan.annal.rate", den: "scan.rawCursor.rate" },
    { id: "scan.annal/rawGetAll", label: "annal iterate() ÷ raw getAll pages", num: "scan.annal.rate", den: "scan.rawGetAll.rate" },
    { id: "scan.annal/dexie", label: "annal iterate() ÷ Dexie each()", num: "scan.annal.rate", den: "scan.dexie.rate" },
    { id: "aggregate.annal/raw.p95", label: "annal aggregate p95 ÷ raw index p95", num: "aggregate.annal.p95", den: "aggregate.raw.p95" },
    { id: "aggregate.annal/dexie.p95", label: "annal aggregate p95 ÷ Dexie p95", num: "aggregate.annal.p95", den: "aggregate.dexie.p95" },
    { id: "type.annal/raw.p95", label: "annal event-type query p95 ÷ raw index p95", num: "type.annal.p95", den: "type.raw.p95" },
    { id: "type.annal/dexie.p95", label: "annal event-type query p95 ÷ Dexie p95", num: "type.annal.p95", den: "type.dexie.p95" },
  ],
  targets: [
    { on: "scan.annal/rawCursor", op: ">=", value: 0.5, text: "scan throughput ≥ 0.5× the raw cursor scan" },
    { on: "aggregate.annal/raw.p95", op: "<=", value: 2, text: "aggregate query p95 ≤ 2× raw index query" },
    { on: "aggregate.annal.p95", op: "<", value: 50, text: "floor: view queries under 50 ms (aggregate)" },
    { on: "type.annal.p95", op: "<", value: 50, text: "floor: view queries under 50 ms (event type, limit 50)" },
  ],
};
