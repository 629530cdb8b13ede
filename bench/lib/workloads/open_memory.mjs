// 6. Opening a large store, and the wasm heap while iterating a very
// large one (1,000,000 events with --big; the large store otherwise).

import { expectEqual, expectTrue } from "../checks.mjs";
import { rotate } from "../runs.mjs";

const SAMPLE_EVERY = 1000;
/** Forced collections for the live heap (the baselines text says 10,000). */
const LIVE_EVERY = 10_000;
const MB = 1024 * 1024;

export default {
  id: "open",
  title: "6. Open time and memory",
  baselines:
    "**Open**: `close()` then open again, timed to the resolved promise, on the large store. raw: `indexedDB.open(name)`; Dexie: `new Dexie(name)` with the schema, `open()`; annal: `EventStore.open(options)`. " +
    `**Memory**: in a fresh tab (its own wasm instance), the store opened and a full \`iterate()\` sampling every ${SAMPLE_EVERY} events the size of annal's WebAssembly linear memory (\`wasmMemory()\` of annal/testing) and \`performance.memory.usedJSHeapSize\` ` +
    "(Chromium, `--enable-precise-memory-info`), garbage included, and every 10,000 events the live JS heap right after a forced `gc()` (`--js-flags=--expose-gc`); " +
    "each high-water mark is the largest sample. 1,000,000 events with `--big`, else the large store. The iteration rate while sampling includes the forced collections.",
  databases: () => ({ main: [] }),

  async run(ctx, r) {
    const m = {};
    const checks = [];
    const times = ctx.sizes.opens;
    const n = ctx.sizes.store;
    for (const s of rotate(["raw", "dexie", "annal"], r)) {
      const db = await ctx.fixtures.get(s === "annal" ? "plain" : s);
      m[`${s}Open`] = await ctx.call(`${s}.reopen`, db, { times });
      checks.push(expectEqual(`${s} store holds its events after reopening`, m[`${s}Open`].events, n));
    }
    const kind = ctx.options.big ? "big" : "plain";
    const big = ctx.fixtures.size(kind);
    const db = await ctx.fixtures.get(kind);
    // In a tab of its own: wasm memory only grows, so the main tab's would
    // show whatever building the stores needed.
    const tab = await ctx.session.openOrigin("main");
    try {
      const inTab = (path, ...args) => tab.evaluate(([p, a]) => window.benchCall(p, a), [path, args]);
      await inTab("annal.openExisting", db);
      m.memory = await inTab("annal.iterate", db, { sampleEvery: SAMPLE_EVERY, liveEvery: LIVE_EVERY });
      await inTab("annal.close", db);
    } finally {
      await tab.close();
    }
    checks.push(expectEqual(`iterate() of the ${big}-event store saw every event`, m.memory.events, big));
    checks.push(expectTrue("wasm memory was sampled", m.memory.memory.wasmMaxBytes !== null, "wasmMemory() of annal/testing gave nothing"));
    return { m, checks };
  },

  figures: [
    { id: "open.annal.p50", label: "annal EventStore.open p50", unit: "ms", better: "lower", get: (m) => m.annalOpen.latency.p50 },
    { id: "open.annal.max", label: "annal EventStore.open max", unit: "ms", better: "lower", get: (m) => m.annalOpen.latency.max },
    { id: "open.raw.p50", label: "raw indexedDB.open p50", unit: "ms", better: "lower", get: (m) => m.rawOpen.latency.p50 },
    { id: "open.dexie.p50", label: "Dexie open p50", unit: "ms", better: "lower", get: (m) => m.dexieOpen.latency.p50 },
    { id: "memory.events", label: "events iterated for the memory figures", unit: "events", better: "higher", get: (m) => m.memory.events },
    { id: "memory.wasm.max", label: "wasm linear memory, high-water", unit: "MB", better: "lower", get: (m) => mb(m.memory.memory.wasmMaxBytes) },
    { id: "memory.wasm.before", label: "wasm linear memory before iterating", unit: "MB", better: "lower", get: (m) => mb(m.memory.memory.before.wasm) },
    { id: "memory.js.max", label: "JS heap used, high-water", unit: "MB", better: "lower", get: (m) => mb(m.memory.memory.jsHeapMaxBytes) },
    { id: "memory.live.max", label: "JS heap live after GC, high-water", unit: "MB", better: "lower", get: (m) => mb(m.memory.memory.liveJsHeapMaxBytes) },
    { id: "memory.total.max", label: "wasm + live JS heap high-water", unit: "MB", better: "lower", get: (m) => mb((m.memory.memory.wasmMaxBytes ?? 0) + (m.memory.memory.liveJsHeapMaxBytes ?? 0)) },
    { id: "memory.iterate.rate", label: "annal iterate() while sampling", unit: "events/s", better: "higher", get: (m) => m.memory.perSec },
  ],
  ratios: [
    { id: "open.annal/raw.p50", label: "annal open p50 ÷ raw open p50", num: "open.annal.p50", den: "open.raw.p50" },
    { id: "open.annal/dexie.p50", label: "annal open p50 ÷ Dexie open p50", num: "open.annal.p50", den: "open.dexie.p50" },
  ],
  targets: [
    { on: "memory.wasm.max", op: "<", value: 64, text: "a 1,000,000-event iterate with the wasm heap under 64 MB", needs: { figure: "memory.events", atLeast: 1_000_000, flag: "--big" } },
    { on: "memory.events", op: ">", value: 10_000, text: "floor: more than 10,000 events (the store iterated)" },
    { on: "memory.total.max", op: "<", value: 50, text: "floor: under 50 MB of memory (wasm + live JS heap while iterating)" },
  ],
};

function mb(bytes) {
  return bytes === null || bytes === undefined ? null : Math.round((bytes / MB) * 10) / 10;
}
