// 1. Append latency: sequential single appends, each awaited until durable.

import { expectEqual } from "../checks.mjs";
import { rotate } from "../runs.mjs";

const DB = { raw: "bench-append-raw", dexie: "bench-append-dexie", plain: "bench-append-plain", encrypted: "bench-append-encrypted" };

export default {
  id: "append",
  title: "1. Append latency (sequential, strict durability)",
  baselines:
    "n sequential writes of one 1 KiB event each, every one awaited until durable. " +
    "**raw**: one readwrite transaction per record (`durability: 'strict'`), one `put()` of the record into the `events` store " +
    "(keyPath `seq`, indexes on aggregateId, aggregateType, eventType), `commit()`, then wait for `complete`. " +
    "**Dexie**: `table.add(record)` on the same schema with `chromeTransactionDurability: 'strict'`. " +
    "**annal**: `store.append(event)`, plain and encrypted (a non-extractable AES-GCM `keyEncryptionKey`).",
  databases: () => ({ main: [DB.raw, DB.dexie, `annal:${DB.plain}`, `annal:${DB.encrypted}`] }),

  async run(ctx, r) {
    const n = ctx.sizes.appends;
    const evs = ctx.ev(0, n);
    const m = {};
    const checks = [];
    const steps = {
      raw: async () => {
        await ctx.call("raw.create", DB.raw);
        m.raw = await ctx.call("raw.singleLatency", DB.raw, evs);
        checks.push(expectEqual("raw records written", await ctx.call("raw.count", DB.raw), n));
        await ctx.call("raw.remove", DB.raw);
      },
      dexie: async () => {
        await ctx.call("dexie.create", DB.dexie);
        m.dexie = await ctx.call("dexie.singleLatency", DB.dexie, evs);
        checks.push(expectEqual("Dexie records written", await ctx.call("dexie.count", DB.dexie), n));
        await ctx.call("dexie.remove", DB.dexie);
      },
      plain: () => annalRun(ctx, m, checks, "plain", false, evs, n),
      encrypted: () => annalRun(ctx, m, checks, "encrypted", true, evs, n),
    };
    for (const k of rotate(Object.keys(steps), r)) await steps[k]();
    return { m, checks };
  },

  figures: [
    ...["raw", "dexie", "plain", "encrypted"].flatMap((s) =>
      ["p50", "p95", "p99"].map((q) => ({ id: `append.${s}.${q}`, label: `${name(s)} ${q}`, unit: "ms", better: "lower", get: (m) => m[s].latency[q] })),
    ),
  ],
  ratios: [
    { id: "append.plain/raw.p95", label: "annal p95 ÷ raw p95", num: "append.plain.p95", den: "append.raw.p95" },
    { id: "append.plain/dexie.p95", label: "annal p95 ÷ Dexie p95", num: "append.plain.p95", den: "append.dexie.p95" },
    { id: "append.plain/raw.p50", label: "annal p50 ÷ raw p50", num: "append.plain.p50", den: "append.raw.p50" },
    { id: "append.plain/dexie.p50", label: "annal p50 ÷ Dexie p50", num: "append.plain.p50", den: "append.dexie.p50" },
    { id: "append.plain/raw.p99", label: "annal p99 ÷ raw p99", num: "append.plain.p99", den: "append.raw.p99" },
    { id: "append.plain/dexie.p99", label: "annal p99 ÷ Dexie p99", num: "append.plain.p99", den: "append.dexie.p99" },
    { id: "append.encrypted/raw.p95", label: "annal encrypted p95 ÷ raw p95", num: "append.encrypted.p95", den: "append.raw.p95" },
    { id: "append.encrypted/dexie.p95", label: "annal encrypted p95 ÷ Dexie p95", num: "append.encrypted.p95", den: "append.dexie.p95" },
    { id: "append.encrypted/plain.p95", label: "annal encrypted p95 ÷ annal plain p95", num: "append.encrypted.p95", den: "append.plain.p95" },
  ],
  targets: [
    { on: "append.plain/raw.p95", op: "<=", value: 1.5, text: "append p95 ≤ 1.5× the raw strict single-record transaction" },
    { on: "append.encrypted/plain.p95", op: "<=", value: 1.1, text: "encryption adds ≤ 10% to append p95" },
    { on: "append.plain.p95", op: "<", value: 10, text: "floor: event creation under 10 ms p95" },
    { on: "append.encrypted.p95", op: "<", value: 10, text: "floor: event creation under 10 ms p95 (encrypted)" },
  ],
};

function name(s) {
  return { raw: "raw", dexie: "Dexie", plain: "annal", encrypted: "annal encrypted" }[s];
}

async function annalRun(ctx, m, checks, key, encrypted, evs, n) {
  const db = DB[key];
  await ctx.call("annal.create", db, { encrypted });
  m[key] = await ctx.call("annal.appendLatency", db, evs);
  checks.push(expectEqual(`annal ${key} events appended`, await ctx.call("annal.count", db), n));
  await ctx.call("annal.remove", db);
}
