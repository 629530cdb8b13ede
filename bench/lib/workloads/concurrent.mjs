// 2. Concurrent appends: 64 in flight, which annal can group-commit.

import { expectEqual } from "../checks.mjs";
import { rotate } from "../runs.mjs";

const IN_FLIGHT = 64;
const DB = { raw: "bench-concurrent-raw", dexie: "bench-concurrent-dexie", annal: "bench-concurrent-plain" };

export default {
  id: "concurrent",
  title: `2. Concurrent appends (${IN_FLIGHT} in flight, strict durability)`,
  baselines:
    `Rounds of \`Promise.all\` over ${IN_FLIGHT} writes of one 1 KiB event, repeated; throughput is events over wall time, latency each write's own. ` +
    "**raw sequential**: the single-record strict transaction of workload 1, one at a time (the rate the issue's target divides by). " +
    `**raw ${IN_FLIGHT} in flight**: the same single-record transactions, ${IN_FLIGHT} outstanding (IndexedDB serializes them; no batching). ` +
    `**Dexie**: ${IN_FLIGHT} outstanding \`table.add()\`. **annal**: ${IN_FLIGHT} outstanding \`store.append()\`.`,
  databases: () => ({ main: [DB.raw, DB.dexie, `annal:${DB.annal}`] }),

  async run(ctx, r) {
    const n = ctx.sizes.concurrent;
    const sequential = Math.min(n, ctx.sizes.appends);
    const m = {};
    const checks = [];
    const steps = {
      raw: async () => {
        await ctx.call("raw.create", DB.raw);
        m.rawSequential = await ctx.call("raw.singleLatency", DB.raw, ctx.ev(0, sequential));
        m.raw = await ctx.call("raw.concurrent", DB.raw, ctx.ev(sequential, n), { inFlight: IN_FLIGHT });
        checks.push(expectEqual("raw records written", await ctx.call("raw.count", DB.raw), sequential + n));
        await ctx.call("raw.remove", DB.raw);
      },
      dexie: async () => {
        await ctx.call("dexie.create", DB.dexie);
        m.dexie = await ctx.call("dexie.concurrent", DB.dexie, ctx.ev(0, n), { inFlight: IN_FLIGHT });
        checks.push(expectEqual("Dexie records written", await ctx.call("dexie.count", DB.dexie), n));
        await ctx.call("dexie.remove", DB.dexie);
      },
      annal: async () => {
        await ctx.call("annal.create", DB.annal);
        m.annal = await ctx.call("annal.concurrent", DB.annal, ctx.ev(0, n), { inFlight: IN_FLIGHT });
        checks.push(expectEqual("annal events appended", await ctx.call("annal.count", DB.annal), n));
        await ctx.call("annal.remove", DB.annal);
      },
    };
    for (const k of rotate(Object.keys(steps), r)) await steps[k]();
    return { m, checks };
  },

  figures: [
    { id: "concurrent.annal.rate", label: "annal", unit: "events/s", better: "higher", get: (m) => m.annal.perSec },
    { id: "concurrent.annal.p95", label: "annal per-append p95", unit: "ms", better: "lower", get: (m) => m.annal.latency.p95 },
    { id: "concurrent.rawSequential.rate", label: "raw sequential single-record", unit: "events/s", better: "higher", get: (m) => m.rawSequential.perSec },
    { id: "concurrent.raw.rate", label: `raw ${IN_FLIGHT} in flight`, unit: "events/s", better: "higher", get: (m) => m.raw.perSec },
    { id: "concurrent.raw.p95", label: `raw ${IN_FLIGHT} in flight p95`, unit: "ms", better: "lower", get: (m) => m.raw.latency.p95 },
    { id: "concurrent.dexie.rate", label: `Dexie ${IN_FLIGHT} in flight`, unit: "events/s", better: "higher", get: (m) => m.dexie.perSec },
    { id: "concurrent.dexie.p95", label: `Dexie ${IN_FLIGHT} in flight p95`, unit: "ms", better: "lower", get: (m) => m.dexie.latency.p95 },
  ],
  ratios: [
    { id: "concurrent.annal/rawSequential", label: "annal ÷ raw sequential single-record rate", num: "concurrent.annal.rate", den: "concurrent.rawSequential.rate" },
    { id: "concurrent.annal/raw", label: `annal ÷ raw ${IN_FLIGHT} in flight`, num: "concurrent.annal.rate", den: "concurrent.raw.rate" },
    { id: "concurrent.annal/dexie", label: `annal ÷ Dexie ${IN_FLIGHT} in flight`, num: "concurrent.annal.rate", den: "concurrent.dexie.rate" },
    { id: "concurrent.annal/raw.p95", label: `annal per-append p95 ÷ raw ${IN_FLIGHT} in flight p95`, num: "concurrent.annal.p95", den: "concurrent.raw.p95" },
    { id: "concurrent.annal/dexie.p95", label: `annal per-append p95 ÷ Dexie ${IN_FLIGHT} in flight p95`, num: "concurrent.annal.p95", den: "concurrent.dexie.p95" },
  ],
  targets: [
    { on: "concurrent.annal/rawSequential", op: ">=", value: 5, text: "concurrent append throughput ≥ 5× the raw strict single-record rate" },
    { on: "concurrent.annal.p95", op: "<", value: 10, text: "… with every append's p95 still under 10 ms" },
  ],
};
