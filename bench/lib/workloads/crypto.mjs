// 8. AES-GCM: annal's Rust path next to WebCrypto.
//
// annal exposes no way to time its AES-GCM alone, so its cost is the
// difference between encrypted and plain appendBatch of the same events
// with relaxed durability (which takes the disk flush out of both), per
// payload byte. That difference also holds the blind-index HMACs and the
// record framing of an encrypted store: it is an upper bound on the AES
// cost, not a measurement of AES alone.

import { expectEqual } from "../checks.mjs";
import { rotate } from "../runs.mjs";

const DB = { plain: "bench-crypto-plain", encrypted: "bench-crypto-encrypted" };
const SIZES = [
  { key: "1k", bytes: 1024, batch: 1000, events: (s) => s.cryptoEvents1k, webcrypto: (s) => s.webcrypto1k },
  { key: "64k", bytes: 64 * 1024, batch: 16, events: (s) => s.cryptoEvents64k, webcrypto: (s) => s.webcrypto64k },
];

export default {
  id: "crypto",
  title: "8. AES-GCM throughput",
  baselines:
    "**annal (derived)**: `appendBatch` of the same events into a plain and an encrypted store, `durability: 'relaxed'`, 1 KiB payloads in batches of 1,000 and 64 KiB payloads in batches of 16; " +
    "annal's encryption cost is (encrypted time − plain time) ÷ payload bytes, reported as MB/s. It includes the blind-index HMACs and framing, so it bounds AES-GCM from above; annal has no hook to time its AES alone. " +
    "**WebCrypto**: sequential awaited `crypto.subtle.encrypt({ name: 'AES-GCM' })` with a 256-bit key on 1 KiB and 64 KiB buffers in the same page. MB = 10^6 bytes.",
  databases: () => ({ main: [`annal:${DB.plain}`, `annal:${DB.encrypted}`] }),

  async run(ctx, r) {
    const m = {};
    const checks = [];
    for (const size of SIZES) {
      const n = Math.max(size.batch, size.events(ctx.sizes));
      const evs = ctx.ev(0, n, { bytes: size.bytes });
      const at = (m[size.key] = {});
      for (const kind of rotate(["plain", "encrypted"], r)) {
        await ctx.call("annal.create", DB[kind], { encrypted: kind === "encrypted", durability: "relaxed" });
        at[kind] = await ctx.call("annal.batches", DB[kind], evs, { size: size.batch });
        checks.push(expectEqual(`${kind} store, ${size.key} payloads: events appended`, await ctx.call("annal.count", DB[kind]), n));
        await ctx.call("annal.remove", DB[kind]);
      }
      const extraMs = at.encrypted.ms - at.plain.ms;
      at.annalMbPerSec = extraMs > 0 ? round1((n * size.bytes) / 1e6 / (extraMs / 1000)) : null;
      at.webcrypto = await ctx.call("webcrypto.encrypt", { bytes: size.bytes, n: size.webcrypto(ctx.sizes) });
    }
    return { m, checks };
  },

  figures: SIZES.flatMap(({ key }) => [
    { id: `crypto.${key}.plain.rate`, label: `annal plain appendBatch, ${key} payloads, relaxed`, unit: "events/s", better: "higher", get: (m) => m[key].plain.perSec },
    { id: `crypto.${key}.encrypted.rate`, label: `annal encrypted appendBatch, ${key} payloads, relaxed`, unit: "events/s", better: "higher", get: (m) => m[key].encrypted.perSec },
    { id: `crypto.${key}.annal.mbps`, label: `annal encryption cost as throughput, ${key} (derived)`, unit: "MB/s", better: "higher", get: (m) => m[key].annalMbPerSec },
    { id: `crypto.${key}.webcrypto.mbps`, label: `WebCrypto AES-GCM encrypt, ${key}`, unit: "MB/s", better: "higher", get: (m) => m[key].webcrypto.mbPerSec },
    { id: `crypto.${key}.webcrypto.ops`, label: `WebCrypto AES-GCM encrypt, ${key}`, unit: "ops/s", better: "higher", get: (m) => m[key].webcrypto.perSec },
  ]),
  ratios: SIZES.flatMap(({ key }) => [
    { id: `crypto.${key}.annal/webcrypto`, label: `annal encryption (derived) ÷ WebCrypto, ${key}`, num: `crypto.${key}.annal.mbps`, den: `crypto.${key}.webcrypto.mbps` },
    { id: `crypto.${key}.encrypted/plain`, label: `annal encrypted ÷ plain appendBatch rate, ${key}, relaxed`, num: `crypto.${key}.encrypted.rate`, den: `crypto.${key}.plain.rate` },
  ]),
  targets: [],
};

function round1(x) {
  return Math.round(x * 10) / 10;
}
