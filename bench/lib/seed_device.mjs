// A minimal second device of the sync user, in Node: it builds the events
// of page/records.js into a valid device chain by docs/FORMAT.md (§2
// envelopes, §4 payload digests, §5 hashes, with the package tests'
// implementation in tests/js/netproxy.mjs) and pushes them to
// annal-server over HTTP in batches of 500, as annal does
// (src/sync/outbox.rs, BATCH_EVENTS).
//
// It fills the server's ledger for the initial-pull workload far faster
// than a browser store would (the drain figure shows why), and its push
// rate is a second yardstick next to the server's own ingest figure: the
// same server over real HTTP with almost no client.

import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { eventHash, GENESIS, payloadDigest } from "../../tests/js/netproxy.mjs";
import { event } from "../page/records.js";
import { CheckError } from "./checks.mjs";

const BATCH = 500;

/** A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version 7, variant 10, random bits. */
function uuid7() {
  const b = randomBytes(16);
  b.writeUIntBE(Date.now(), 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Pushes `n` events of a new device of `user` to the server at `url`, on
 * aggregates named with `aggregatePrefix` (versions are per tenant, so
 * another device's aggregates would conflict); every one must be accepted. Resolves with `{ deviceId, events, ms,
 * perSec }`, the time being that of the HTTP requests only.
 */
export async function seedDevice({ url, token, tenant, user, n, aggregatePrefix }) {
  const deviceId = uuid7();
  const versions = new Map();
  let prev = GENESIS;
  let ms = 0;
  for (let from = 0; from < n; from += BATCH) {
    const events = [];
    for (let i = from; i < Math.min(n, from + BATCH); i++) {
      const ev = event(i, { aggregatePrefix });
      const salt = randomBytes(16).toString("hex");
      const version = (versions.get(ev.aggregateId) ?? 0) + 1;
      versions.set(ev.aggregateId, version);
      const envelope = {
        format: "annal/1",
        event_id: uuid7(),
        tenant_id: tenant,
        aggregate_type: ev.aggregateType,
        aggregate_id: ev.aggregateId,
        event_type: ev.eventType,
        schema_version: 1,
        payload_digest: payloadDigest(salt, ev.payload),
        user_id: user,
        device_id: deviceId,
        device_seq: i + 1,
        created_at: new Date().toISOString(),
        aggregate_version: version,
        prev_hash: prev,
      };
      envelope.hash = eventHash(envelope);
      prev = envelope.hash;
      events.push({ envelope, salt, payload: ev.payload });
    }
    const body = JSON.stringify({ events });
    const t0 = performance.now();
    const res = await fetch(`${url}/v1/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
    const answer = await res.json();
    ms += performance.now() - t0;
    const refused = res.ok ? answer.results.filter((r) => r.status !== "accepted") : [answer];
    if (refused.length) throw new CheckError(`the seeding device's push was not accepted (${res.status}): ${JSON.stringify(refused[0])}`);
  }
  return { deviceId, events: n, batch: BATCH, ms: Math.round(ms), perSec: Math.round((n * 1000) / ms) };
}
