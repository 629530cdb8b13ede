// annal's sync against a real annal-server on 127.0.0.1: draining the
// outbox, and the first pull of a fresh device, which verifies every
// ledger entry it takes.

import { store } from "./annal.js";
import { now, throughput } from "./stats.js";

/**
 * Configures sync with a fixed token and a `fetch` that times every
 * request, so a figure can be split into time waiting for the server
 * (network and server) and time in the client. `auto: false`: only the
 * measured sync() calls talk to the server.
 */
function configure(s, serverUrl, token) {
  const http = { requests: 0, ms: 0, byMethod: {} };
  const timedFetch = async (request, init) => {
    const method = (request instanceof Request ? request.method : init?.method) ?? "GET";
    const m = (http.byMethod[method] ??= { requests: 0, ms: 0, bytes: 0 });
    const t0 = now();
    try {
      const res = await fetch(request, init);
      // The body is read by annal after this returns; clone so the read is timed here.
      const body = await res.clone().arrayBuffer();
      http.bytes = (http.bytes ?? 0) + body.byteLength;
      m.bytes += body.byteLength;
      return res;
    } finally {
      const ms = now() - t0;
      http.requests++;
      http.ms += ms;
      m.requests++;
      m.ms += ms;
    }
  };
  s.configureSync({ serverUrl, getToken: async () => token, auto: false, fetch: timedFetch });
  return http;
}

/** `sync()` until the outbox is empty (at most `maxPasses` passes): push throughput. */
export async function drain(name, { serverUrl, token, maxPasses = 10 }) {
  const s = store(name);
  const before = await s.syncStatus();
  const http = configure(s, serverUrl, token);
  let pushed = 0;
  let passes = 0;
  const t0 = now();
  while (passes < maxPasses) {
    const report = await s.sync();
    pushed += report.pushed;
    passes++;
    if (report.pushed === 0 || pushed >= before.pending) break;
  }
  const ms = now() - t0;
  const after = await s.syncStatus();
  const hashes = [];
  for await (const e of s.iterate()) hashes.push(e.hash);
  return { ...throughput(pushed, ms), http: rounded(http), passes, pendingBefore: before.pending, pendingAfter: after.pending, acked: after.acked, deviceId: s.identity.deviceId, hashes };
}

/** A fresh store's `sync()` until its checkpoint reaches `expected` ledger entries: pull and verify throughput. */
export async function pull(name, { serverUrl, token, expected, maxPasses = 10 }) {
  const s = store(name);
  const http = configure(s, serverUrl, token);
  let pulled = 0;
  let verified = 0;
  let passes = 0;
  const t0 = now();
  while (passes < maxPasses) {
    const report = await s.sync();
    pulled += report.pulled;
    verified += report.verified;
    passes++;
    if (report.pulled === 0 || pulled >= expected) break;
  }
  const ms = now() - t0;
  const status = await s.syncStatus();
  return { ...throughput(pulled, ms), seconds: Math.round(ms) / 1000, http: rounded(http), passes, verified, checkpointSeq: status.checkpoint?.seq ?? 0 };
}

function rounded(http) {
  return { ...http, ms: Math.round(http.ms) };
}
