// The records every subject writes: the same logical event (aggregate,
// types, a JSON payload of exactly `bytes` bytes) for annal, Dexie and raw
// IndexedDB. Payload text is pseudo-random and different in every event,
// so that a storage engine that compresses gets no easier job from one
// subject than from another.

export const PAYLOAD_BYTES = 1024;

const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;-";

/**
 * `length` characters of text unique to `seed` (xorshift32 seeded from it):
 * deterministic, so every run and subject stores the same bytes, and never
 * repeated across events, so a page or block holding many events does not
 * compress better than one holding a few.
 */
function text(seed, length) {
  let x = (Math.imul(seed + 1, 0x9e3779b1) ^ 0x85ebca6b) >>> 0 || 1;
  const out = new Array(length);
  for (let k = 0; k < length; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[k] = ALPHABET[(x >>> 0) % ALPHABET.length];
  }
  return out.join("");
}

/** A JSON object whose `JSON.stringify` is exactly `bytes` long (ASCII). */
export function payload(i, bytes = PAYLOAD_BYTES) {
  const shell = { i, severity: i % 5, note: "" };
  const room = bytes - JSON.stringify(shell).length;
  if (room < 0) throw new Error(`payload of ${bytes} bytes is too small`);
  return { ...shell, note: text(i, room) };
}

/**
 * The i-th event of a log with `aggregates` aggregates and `types` event
 * types, taken round-robin: an aggregate's events are spread over the whole
 * log, as a patient's diary entries arrive between other patients'.
 * `aggregatePrefix` keeps devices that sync to one tenant apart: the
 * server versions aggregates per tenant, so the same aggregate appended
 * on two devices would be a conflict.
 */
export function event(i, { aggregates = 1000, types = 10, bytes = PAYLOAD_BYTES, aggregatePrefix = "" } = {}) {
  return {
    aggregateType: "diary",
    aggregateId: aggregatePrefix + aggregateId(i % aggregates),
    eventType: eventType(i % types),
    payload: payload(i, bytes),
  };
}

export const aggregateId = (k) => `patient-${k}`;
export const eventType = (k) => `type-${k}`;

/** Events `from` .. `from + n - 1`. */
export function events(from, n, shape) {
  return Array.from({ length: n }, (_, k) => event(from + k, shape));
}

/** What the raw and Dexie baselines store for an event: the event plus its sequence number and time. */
export function record(seq, ev) {
  return { seq, ...ev, createdAt: Date.now() };
}

/**
 * One stored value holding several records (the "packed" baseline), with
 * the distinct index values of its records for multi-entry indexes, as
 * annal's pages keep them.
 */
export function pack(records) {
  const distinct = (f) => [...new Set(records.map(f))];
  return {
    first: records[0].seq,
    last: records.at(-1).seq,
    aggregateIds: distinct((r) => r.aggregateId),
    aggregateTypes: distinct((r) => r.aggregateType),
    eventTypes: distinct((r) => r.eventType),
    records,
  };
}
