// 7. Size: the bundle an app ships, and bytes on disk per event.
//
// Each disk subject writes into a fresh origin of its own (another
// loopback port) in each run, so that origin's IndexedDB folder in the
// profile holds that one database and nothing else to compact.

import { bundleSize } from "../bundle.mjs";
import { expectEqual } from "../checks.mjs";
import { originIndexedDbBytes, settledIndexedDbBytes } from "../disk.mjs";
import { DEXIE_DIR, PACKAGE_DIR } from "../paths.mjs";
import { rotate } from "../runs.mjs";

const BATCH = 1000;
const SUBJECTS = {
  raw: { module: "raw", db: "bench-size-raw", label: "raw separate records" },
  packed: { module: "raw", db: "bench-size-packed", label: "raw packed", options: { packed: true } },
  dexie: { module: "dexie", db: "bench-size-dexie", label: "Dexie" },
  plain: { module: "annal", db: "bench-size-plain", label: "annal, appendBatch of 1,000" },
  encrypted: { module: "annal", db: "bench-size-encrypted", label: "annal encrypted, appendBatch of 1,000", options: { encrypted: true } },
  single: { module: "annal", db: "bench-size-single", label: "annal, single appends (one event per page)", single: true },
};
const idb = (s) => (s.module === "annal" ? `annal:${s.db}` : s.db);
/**
 * Each subject writes twice per run, each time in an origin of its own, and
 * the smaller reading counts: LevelDB now and then keeps a finished
 * compaction's input files beside its output for a long while (readings
 * about twice the data, seen in about one write in six, not reproducible
 * on purpose). Both readings are kept in results.json.
 */
const WRITES = ["a", "b"];
const origin = (key, r, w) => `size-${key}-${r}-${w}`;

export default {
  id: "size",
  title: "7. Size",
  baselines:
    "**Bundle**: every file the main entry `annal` (dist/index.js) reaches through its imports, plus the .wasm it loads, each gzipped at level 9 with node:zlib, from target/npm/package; Dexie: its minified build, gzipped the same way (raw IndexedDB ships nothing). " +
    "**Disk**: each subject writes the same 1 KiB events (batches of 1,000, strict; the single-append subject one `append()` each) into a fresh origin, closes, and the bytes of that origin's IndexedDB folders in the profile " +
    "(`Default/IndexedDB/http_127.0.0.1_<port>.indexeddb.*`, LevelDB plus blobs, read once the total has stayed the same for three readings 0.7 s apart, so no compaction is half done; each subject writes twice per run in two origins and the smaller reading counts, because LevelDB sometimes keeps a finished compaction's inputs for a long while) are divided by the events; `navigator.storage.estimate()` deltas are recorded too. " +
    "raw separate: one record per event with three indexes; raw packed: 50 records per value with three multi-entry indexes; Dexie: `bulkAdd`, same schema as raw.",
  databases: (o) => Object.fromEntries(Array.from({ length: o.runs }, (_, r) => Object.entries(SUBJECTS).flatMap(([key, s]) => WRITES.map((w) => [origin(key, r, w), [idb(s)]]))).flat()),

  async run(ctx, r) {
    const m = {
      bundle: await bundleSize(PACKAGE_DIR, "dist/index.js"),
      testingBundle: await bundleSize(PACKAGE_DIR, "dist/testing/index.js"),
      dexieBundle: await bundleSize(DEXIE_DIR, "dexie.min.js"),
      disk: {},
    };
    delete m.testingBundle.files;
    const checks = [];
    for (const w of WRITES) {
      for (const key of rotate(Object.keys(SUBJECTS), r)) {
        const one = await measure(ctx, SUBJECTS[key], origin(key, r, w), checks, this.pages);
        const prev = m.disk[key];
        m.disk[key] = !prev || one.bytesPerEvent < prev.bytesPerEvent ? { ...one, writes: [...(prev?.writes ?? []), one.bytesPerEvent] } : { ...prev, writes: [...prev.writes, one.bytesPerEvent] };
      }
    }
    return { m, checks };
  },

  // Deleting a database makes LevelDB compact, and compactions share one
  // background thread: a delete while another origin's writes are being
  // compacted leaves that folder half compacted (up to twice its size) for
  // seconds. So the subjects' databases are all deleted only at the end,
  // and the measurements start once the main origin (whose large stores
  // were just deleted) has gone quiet.
  async setup(ctx) {
    this.pages = [];
    if (ctx.sizes.settleDisk) await settledIndexedDbBytes(ctx.session.profileDir, ctx.session.main.port, { maxMs: 60_000 });
  },

  async teardown(ctx) {
    for (const { page, s } of this.pages) {
      await page.evaluate(([p, a]) => window.benchCall(p, a), [`${s.module}.remove`, [s.db]]).catch(() => {});
      const left = await ctx.session.cleanup(page).catch((e) => String(e));
      await page.close();
      if (left.length) throw new Error(`bench bug: ${s.db}'s origin still had ${left} to clean up`);
    }
  },

  figures: [
    { id: "bundle.gzip", label: "main entry, wasm + JS, gzipped", unit: "kB", better: "lower", get: (m) => kb(m.bundle.gzip) },
    { id: "bundle.wasmGzip", label: "… of which wasm", unit: "kB", better: "lower", get: (m) => kb(m.bundle.wasmGzip) },
    { id: "bundle.jsGzip", label: "… of which JS", unit: "kB", better: "lower", get: (m) => kb(m.bundle.jsGzip) },
    { id: "bundle.bytes", label: "main entry, uncompressed", unit: "kB", better: "lower", get: (m) => kb(m.bundle.bytes) },
    { id: "bundle.dexie.gzip", label: "Dexie (dist/dexie.min.js), gzipped", unit: "kB", better: "lower", get: (m) => kb(m.dexieBundle.gzip) },
    { id: "bundle.testing.gzip", label: "annal/testing entry (separate), gzipped", unit: "kB", better: "lower", get: (m) => kb(m.testingBundle.gzip) },
    ...Object.entries(SUBJECTS).map(([key, s]) => ({ id: `disk.${key}`, label: `${s.label}, on disk`, unit: "bytes/event", better: "lower", get: (m) => m.disk[key].bytesPerEvent })),
    ...Object.entries(SUBJECTS).map(([key, s]) => ({ id: `estimate.${key}`, label: `${s.label}, storage.estimate()`, unit: "bytes/event", better: "lower", get: (m) => m.disk[key].estimatePerEvent })),
  ],
  ratios: [
    { id: "bundle.annal/dexie", label: "annal bundle ÷ Dexie bundle (gzipped)", num: "bundle.gzip", den: "bundle.dexie.gzip" },
    { id: "disk.plain/raw", label: "annal bytes/event ÷ raw separate records", num: "disk.plain", den: "disk.raw" },
    { id: "disk.plain/dexie", label: "annal bytes/event ÷ Dexie", num: "disk.plain", den: "disk.dexie" },
    { id: "disk.plain/packed", label: "annal bytes/event ÷ raw packed", num: "disk.plain", den: "disk.packed" },
    { id: "disk.encrypted/plain", label: "annal encrypted bytes/event ÷ annal plain", num: "disk.encrypted", den: "disk.plain" },
    { id: "disk.single/raw", label: "annal single appends bytes/event ÷ raw separate records", num: "disk.single", den: "disk.raw" },
  ],
  targets: [{ on: "bundle.gzip", op: "<=", value: 300, text: "bundle ≤ 300 KB gzipped (kB = 1,000 bytes)" }],
};

/** Writes subject `s`'s events in a fresh origin and measures what they add on disk; the open page goes to `pages`. */
async function measure(ctx, s, originKey, checks, pages) {
  const n = s.single ? ctx.sizes.sizeSingleEvents : ctx.sizes.sizeEvents;
  const page = await ctx.session.openOrigin(originKey);
  pages.push({ page, s });
  const port = ctx.session.server(originKey).port;
  const call = (path, ...args) => page.evaluate(([p, a]) => window.benchCall(p, a), [path, args]);
  const evs = ctx.ev(0, n);
  await call(`${s.module}.create`, s.db, s.options ?? {});
  // The empty database is the zero: only what the events add is counted.
  const before = { disk: await originIndexedDbBytes(ctx.session.profileDir, port), estimate: (await call("storage.usage")).indexedDB };
  if (s.single) await call("annal.appendLatency", s.db, evs);
  else await call(`${s.module}.batches`, s.db, evs, { size: BATCH });
  checks.push(expectEqual(`${s.label}: events stored`, await call(`${s.module}.count`, s.db), n));
  await call(`${s.module}.close`, s.db);
  const disk = ctx.sizes.settleDisk ? settledIndexedDbBytes : originIndexedDbBytes;
  const after = { disk: await disk(ctx.session.profileDir, port), estimate: (await call("storage.usage")).indexedDB };
  return {
    events: n,
    before,
    after,
    bytesPerEvent: Math.round((after.disk - before.disk) / n),
    estimatePerEvent: after.estimate === null ? null : Math.round((after.estimate - before.estimate) / n),
  };
}

function kb(bytes) {
  return Math.round(bytes / 100) / 10;
}
