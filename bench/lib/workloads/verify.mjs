// 5. verify() throughput over the large store, plain and encrypted.

import { expectEqual } from "../checks.mjs";
import { rotate } from "../runs.mjs";

export default {
  id: "verify",
  title: "5. verify() throughput",
  baselines:
    "`store.verify()` over the large store (every hash and link recomputed, page metadata and aggregate versions checked; on the encrypted store every record decrypted and the head MAC checked). " +
    "Neither IndexedDB nor Dexie verifies anything, so the yardsticks are what merely reading the same number of records costs, measured again in the same run: the raw cursor scan and Dexie `each()` of workload 4.",
  databases: () => ({ main: [] }),

  async run(ctx, r) {
    const n = ctx.sizes.store;
    const m = {};
    const checks = [];
    const steps = {
      plain: async () => (m.plain = await ctx.call("annal.verify", await ctx.fixtures.get("plain"))),
      encrypted: async () => (m.encrypted = await ctx.call("annal.verify", await ctx.fixtures.get("encrypted"))),
      raw: async () => (m.rawCursor = await ctx.call("raw.cursorScan", await ctx.fixtures.get("raw"))),
      dexie: async () => (m.dexieScan = await ctx.call("dexie.scan", await ctx.fixtures.get("dexie"))),
    };
    for (const k of rotate(Object.keys(steps), r)) await steps[k]();
    for (const kind of ["plain", "encrypted"]) checks.push(expectEqual(`verify() of the ${kind} store`, m[kind].report, { ok: true, checked: n }));
    return { m, checks };
  },

  figures: [
    { id: "verify.plain.rate", label: "annal verify()", unit: "events/s", better: "higher", get: (m) => m.plain.perSec },
    { id: "verify.encrypted.rate", label: "annal encrypted verify()", unit: "events/s", better: "higher", get: (m) => m.encrypted.perSec },
    { id: "verify.rawCursor.rate", label: "raw cursor scan (reading only)", unit: "events/s", better: "higher", get: (m) => m.rawCursor.perSec },
    { id: "verify.dexie.rate", label: "Dexie each() (reading only)", unit: "events/s", better: "higher", get: (m) => m.dexieScan.perSec },
  ],
  ratios: [
    { id: "verify.plain/rawCursor", label: "annal verify() ÷ raw cursor scan", num: "verify.plain.rate", den: "verify.rawCursor.rate" },
    { id: "verify.plain/dexie", label: "annal verify() ÷ Dexie each()", num: "verify.plain.rate", den: "verify.dexie.rate" },
    { id: "verify.encrypted/rawCursor", label: "annal encrypted verify() ÷ raw cursor scan", num: "verify.encrypted.rate", den: "verify.rawCursor.rate" },
    { id: "verify.encrypted/plain", label: "annal encrypted verify() ÷ plain", num: "verify.encrypted.rate", den: "verify.plain.rate" },
  ],
  targets: [{ on: "verify.plain.rate", op: ">=", value: 100_000, text: "verify() ≥ 100,000 events/s plain" }],
};
