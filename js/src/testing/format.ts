/**
 * An independent, JavaScript reading of the at-rest layout documented in
 * docs/FORMAT.md: decoding page records, canonical JSON for envelopes, and
 * SHA-256 through WebCrypto. It shares no code with the Rust core, which
 * makes it a check that the document is exact.
 */

/** One record of a page. */
export interface LooseRecord {
  envelope: Uint8Array;
  salt: Uint8Array;
  payload: Uint8Array;
}

/** A stored `pages` value. */
export interface StoredPage {
  first_device_seq: number;
  last_device_seq: number;
  aggregate_ids: string[];
  aggregate_types: string[];
  event_types: string[];
  time_buckets: number[];
  records: Uint8Array;
}

/** The envelope fields, parsed. */
export type Envelope = Record<string, string | number>;

const KIND_PLAIN = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Splits page bytes into records: `kind | u32le len | envelope | salt(16) | u32le len | payload`. */
export function decodePage(bytes: Uint8Array): LooseRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: LooseRecord[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes[at] !== KIND_PLAIN) throw new Error(`unknown record kind ${bytes[at]} at byte ${at}`);
    const envelopeLen = view.getUint32(at + 1, true);
    const envelope = bytes.slice(at + 5, at + 5 + envelopeLen);
    at += 5 + envelopeLen;
    const salt = bytes.slice(at, at + 16);
    const payloadLen = view.getUint32(at + 16, true);
    const payload = bytes.slice(at + 20, at + 20 + payloadLen);
    at += 20 + payloadLen;
    out.push({ envelope, salt, payload });
  }
  return out;
}

/** Packs records into page bytes. */
export function encodePage(records: LooseRecord[]): Uint8Array {
  const size = records.reduce((n, r) => n + 1 + 4 + r.envelope.length + 16 + 4 + r.payload.length, 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const r of records) {
    bytes[at] = KIND_PLAIN;
    view.setUint32(at + 1, r.envelope.length, true);
    bytes.set(r.envelope, at + 5);
    at += 5 + r.envelope.length;
    bytes.set(r.salt, at);
    view.setUint32(at + 16, r.payload.length, true);
    bytes.set(r.payload, at + 20);
    at += 20 + r.payload.length;
  }
  return bytes;
}

export function parseEnvelope(bytes: Uint8Array): Envelope {
  return JSON.parse(decoder.decode(bytes)) as Envelope;
}

/**
 * JCS for envelopes, whose values are strings and safe integers only: keys
 * sorted by UTF-16 code units (JavaScript's default sort), no whitespace.
 */
export function canonicalEnvelope(envelope: Envelope, withoutHash = false): Uint8Array {
  const keys = Object.keys(envelope)
    .filter((k) => !(withoutHash && k === "hash"))
    .sort();
  return encoder.encode(`{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(envelope[k])}`).join(",")}}`);
}

export async function sha256Hex(...parts: Uint8Array[]): Promise<string> {
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Recomputes `hash` of an envelope: SHA-256 of its canonical form without `hash`. */
export async function sealEnvelope(envelope: Envelope): Promise<Envelope> {
  return { ...envelope, hash: await sha256Hex(canonicalEnvelope(envelope, true)) };
}

function byUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

function distinct(values: string[]): string[] {
  return [...new Set(values)].sort(byUtf8);
}

/** The index metadata of a page, derived from its records as annal does. */
export function pageOf(records: LooseRecord[]): StoredPage {
  const envelopes = records.map((r) => parseEnvelope(r.envelope));
  const buckets = [...new Set(envelopes.map((e) => Math.floor(Date.parse(String(e.created_at)) / 60000)))];
  return {
    first_device_seq: Number(envelopes[0]?.device_seq ?? 0),
    last_device_seq: Number(envelopes[envelopes.length - 1]?.device_seq ?? 0),
    aggregate_ids: distinct(envelopes.map((e) => String(e.aggregate_id))),
    aggregate_types: distinct(envelopes.map((e) => String(e.aggregate_type))),
    event_types: distinct(envelopes.map((e) => String(e.event_type))),
    time_buckets: buckets.sort((a, b) => a - b),
    records: encodePage(records),
  };
}
