// 3. appendBatch throughput, against bulk writes of the same events.

import { expectEqual } from "../checks.mjs";
import { rotate } from "../runs.mjs";

const DB = { raw: "bench-batch-raw", packed: "bench-batch-packed", dexie: "bench-batch-dexie", plain: "bench-batch-plain", encrypted: "bench-batch-encrypted" };
const SUBJECTS = ["raw", "packed", "dexie", "plain", "encrypted"];
const LABEL = { raw: "raw separate adds", packed: "raw packed", dexie: "Dexie bulkAdd", plain: "annal", encrypted: "annal encrypted" };

export default {
  id: "batch",
  title: "3. Batch append throughput (strict durability)",
  baselines:
    "The same 1 KiB events written in batches of 100 and of 1,000, one transaction (one call) per batch, strict durability; throughput is events over the summed commit times. " +
    "**raw separate adds**: one readwrite transaction per batch with one `add()` per record into the three-index store. " +
    "**raw packed**: one `add()` per 50 records, each value `{ first, last, aggregateIds, aggregateTypes, eventTypes, records }` (about 52 KiB, under Chromium's 64 KiB blob threshold, checked) " +
    "into a store with the same three indexes as multi-entry indexes over those arrays: the layout annal's pages use, without hashing, encoding or encryption. " +
    "**Dexie**: `table.bulkAdd(records)`. **annal**: `store.appendBatch(events)`, plain and encrypted.",
  databases: () => ({ main: [DB.raw, DB.packed, DB.dexie, `annal:${DB.plain}`, `annal:${DB.encrypted}`] }),

  async run(ctx, r) {
    const m = {};
    const checks = [];
    for (const size of ctx.sizes.batchSizes) {
      const n = Math.max(size, ctx.sizes.batchTotal);
      const evs = ctx.ev(0, n);
      const at = (m[size] = {});
      const steps = {
        raw: () => rawRun(ctx, at, checks, "raw", evs, n, size),
        packed: () => rawRun(ctx, at, checks, "packed", evs, n, size),
        dexie: async () => {
          await ctx.call("dexie.create", DB.dexie);
          at.dexie = await ctx.call("dexie.batches", DB.dexie, evs, { size });
          checks.push(expectEqual(`Dexie records written (batches of ${size})`, await ctx.call("dexie.count", DB.dexie), n));
          await ctx.call("dexie.remove", DB.dexie);
        },
        plain: () => annalRun(ctx, at, checks, "plain", evs, n, size),
        encrypted: () => annalRun(ctx, at, checks, "encrypted", evs, n, size),
      };
      for (const k of rotate(SUBJECTS, r)) await steps[k]();
    }
    return { m, checks };
  },

  figures: [100, 1000].flatMap((size) =>
    SUBJECTS.map((s) => ({ id: `batch${size}.${s}.rate`, label: `${LABEL[s]}, batches of ${size}`, unit: "events/s", better: "higher", get: (m) => m[size]?.[s]?.perSec ?? null })),
  ),
  ratios: [100, 1000].flatMap((size) => [
    { id: `batch${size}.plain/dexie`, label: `annal ÷ Dexie bulkAdd, batches of ${size}`, num: `batch${size}.plain.rate`, den: `batch${size}.dexie.rate` },
    { id: `batch${size}.plain/packed`, label: `annal ÷ raw packed, batches of ${size}`, num: `batch${size}.plain.rate`, den: `batch${size}.packed.rate` },
    { id: `batch${size}.plain/raw`, label: `annal ÷ raw separate adds, batches of ${size}`, num: `batch${size}.plain.rate`, den: `batch${size}.raw.rate` },
    { id: `batch${size}.encrypted/raw`, label: `annal encrypted ÷ raw separate adds, batches of ${size}`, num: `batch${size}.encrypted.rate`, den: `batch${size}.raw.rate` },
    { id: `batch${size}.encrypted/dexie`, label: `annal encrypted ÷ Dexie bulkAdd, batches of ${size}`, num: `batch${size}.encrypted.rate`, den: `batch${size}.dexie.rate` },
    // Time per event, encrypted over plain: "adds ≤ 25%" is a bound on this.
    { id: `batch${size}.plain/encrypted`, label: `annal encrypted time per event ÷ plain (plain rate ÷ encrypted rate), batches of ${size}`, num: `batch${size}.plain.rate`, den: `batch${size}.encrypted.rate` },
  ]),
  targets: [100, 1000].flatMap((size) => [
    { on: `batch${size}.plain/dexie`, op: ">=", value: 1.5, text: `batch append ≥ 1.5× Dexie bulkAdd (batches of ${size})` },
    { on: `batch${size}.plain/packed`, op: ">=", value: 0.5, text: `batch append ≥ 0.5× the raw packed-value rate (batches of ${size})` },
    { on: `batch${size}.plain/encrypted`, op: "<=", value: 1.25, text: `encryption adds ≤ 25% to batch throughput (batches of ${size})` },
  ]),
};

async function rawRun(ctx, at, checks, key, evs, n, size) {
  await ctx.call("raw.create", DB[key], { packed: key === "packed" });
  at[key] = await ctx.call("raw.batches", DB[key], evs, { size });
  checks.push(expectEqual(`${LABEL[key]}: records written (batches of ${size})`, await ctx.call("raw.count", DB[key]), n));
  await ctx.call("raw.remove", DB[key]);
}

async function annalRun(ctx, at, checks, key, evs, n, size) {
  await ctx.call("annal.create", DB[key], { encrypted: key === "encrypted" });
  at[key] = await ctx.call("annal.batches", DB[key], evs, { size });
  checks.push(expectEqual(`${LABEL[key]}: events appended (batches of ${size})`, await ctx.call("annal.count", DB[key]), n));
  await ctx.call("annal.remove", DB[key]);
}
