/**
 * Tamper drills: the edits an attacker with access to the device could make
 * to a store's IndexedDB, applied behind annal's back so that `verify()`
 * can be shown to catch them (or, for the two an unkeyed chain cannot see,
 * shown not to). For test suites and for demonstrations to auditors; never
 * import this into production code.
 *
 * On an encrypted store (docs/FORMAT.md §8.4) the drills play two
 * attackers. One without any key moves, removes or damages sealed records
 * as opaque bytes, guided by their clear headers. One holding a data key
 * (`{ keys }` from `openKeys`) decrypts records, edits them,
 * re-encrypts them with fresh nonces and re-blinds the index values, but
 * cannot recompute the head MAC, whose key it lacks.
 */

import {
  canonicalEnvelope,
  decodePage,
  decodeSealedPage,
  encodeSealedPage,
  type Envelope,
  type LocatedSealedRecord,
  type LooseRecord,
  pageOf,
  parseEnvelope,
  sealEnvelope,
  type SealedHead,
  sha256Hex,
  type StoreKeys,
  type StoredPage,
} from "./format.js";
import { committed, idbRequest, openRaw } from "./idb.js";
import type { BreakReason } from "../types.js";

/** One named edit. Sequence numbers are `deviceSeq`s of an intact log. */
export type Mutation =
  | { kind: "flipPayloadByte"; seq: number }
  | { kind: "changeField"; seq: number }
  | { kind: "deleteEvent"; seq: number }
  | { kind: "swapEvents"; a: number; b: number }
  | { kind: "insertForged"; seq: number }
  | { kind: "truncateTail"; count: number }
  | { kind: "truncateTailFixHead"; count: number }
  | { kind: "rehashSuffix"; from: number }
  /** Encrypted stores: flip the last byte of record `seq`'s ciphertext (its tag). */
  | { kind: "flipCiphertextByte"; seq: number }
  /** Encrypted stores: swap nonce and ciphertext of records `a` and `b`, keeping their headers. */
  | { kind: "swapCiphertexts"; a: number; b: number }
  /** Encrypted stores: cut the page holding record `seq` short in the middle of its ciphertext. */
  | { kind: "cutRecord"; seq: number };

/** The mutations that only make sense on an encrypted store. */
const SEALED_ONLY = new Set<Mutation["kind"]>(["flipCiphertextByte", "swapCiphertexts", "cutRecord"]);
/** The mutations an attacker without keys can make to sealed records: they move or drop them whole. */
const OPAQUE = new Set<Mutation["kind"]>(["deleteEvent", "swapEvents", "truncateTail", ...SEALED_ONLY]);

/** What `verify()` reports after a mutation. */
export type Expectation = { detected: true; firstBadSeq: number; reason: BreakReason } | { detected: false };

/** Options of {@link expectation}. */
export interface ExpectationOptions {
  /**
   * The store is encrypted: its head MAC catches the tail truncation and
   * suffix rewrite that an unkeyed chain cannot see (the attacker holds a
   * data key but not the head-MAC key).
   */
  encrypted?: boolean;
}

/**
 * The threat model of docs/FORMAT.md §9, as data: the outcome of `verify()`
 * for a log of `length` events, plain or (`{ encrypted: true }`) encrypted.
 */
export function expectation(m: Mutation, length: number, options: ExpectationOptions = {}): Expectation {
  switch (m.kind) {
    case "flipPayloadByte":
      return { detected: true, firstBadSeq: m.seq, reason: "PAYLOAD_DIGEST_MISMATCH" };
    case "changeField":
      return { detected: true, firstBadSeq: m.seq, reason: "HASH_MISMATCH" };
    case "deleteEvent":
      return { detected: true, firstBadSeq: m.seq, reason: "MISSING_EVENT" };
    case "swapEvents":
      return { detected: true, firstBadSeq: Math.min(m.a, m.b), reason: "OUT_OF_ORDER" };
    case "insertForged":
      return { detected: true, firstBadSeq: m.seq, reason: "BROKEN_LINK" };
    case "truncateTail":
      return { detected: true, firstBadSeq: length - m.count + 1, reason: "TRUNCATED" };
    case "truncateTailFixHead":
      // The MAC proves the head is not genuine, reported at the head's own device_seq.
      return options.encrypted ? { detected: true, firstBadSeq: length - m.count, reason: "HEAD_MAC_MISMATCH" } : { detected: false };
    case "rehashSuffix":
      return options.encrypted ? { detected: true, firstBadSeq: length, reason: "HEAD_MAC_MISMATCH" } : { detected: false };
    case "flipCiphertextByte":
      return { detected: true, firstBadSeq: m.seq, reason: "DECRYPT_FAILED" };
    case "swapCiphertexts":
      return { detected: true, firstBadSeq: Math.min(m.a, m.b), reason: "DECRYPT_FAILED" };
    case "cutRecord":
      return { detected: true, firstBadSeq: m.seq, reason: "MALFORMED" };
  }
}

/** Options of {@link tamper}. */
export interface TamperOptions {
  /**
   * The keys of an encrypted store, from `openKeys(name, credential)`. Needed for the
   * mutations that edit a record's contents (`flipPayloadByte`,
   * `changeField`, `insertForged`, `truncateTailFixHead`, `rehashSuffix`);
   * with them, `deleteEvent`, `swapEvents` and `truncateTail` also repack
   * and re-blind the pages instead of moving opaque records.
   */
  keys?: StoreKeys;
}

/** A record being edited, with the data key it was sealed under (encrypted stores). */
type Editable = LooseRecord & { keyId?: number };

/**
 * Applies `mutation` to the stored log of store `name`. The store may be
 * open. On an encrypted store, pass `{ keys }` for mutations that change a
 * record's contents.
 */
export async function tamper(name: string, mutation: Mutation, options: TamperOptions = {}): Promise<void> {
  const db = await openRaw(name);
  try {
    const read = db.transaction(["pages", "meta"], "readonly");
    const [pages, store, head] = (await Promise.all([
      idbRequest(read.objectStore("pages").getAll()),
      idbRequest(read.objectStore("meta").get("store")),
      idbRequest(read.objectStore("meta").get("head")),
    ])) as [StoredPage[], { layout?: number } | undefined, SealedHead | undefined];
    const encrypted = store?.layout === 2;
    if (!encrypted) {
      if (SEALED_ONLY.has(mutation.kind)) throw new Error(`${mutation.kind} applies to encrypted stores only; ${name} is plain`);
      const edited = await edit(
        pages.flatMap((p) => decodePage(p.records)),
        mutation,
        name,
      );
      await writeBack(db, edited.records, edited.rewriteDerived);
      return;
    }
    const keys = options.keys;
    if (OPAQUE.has(mutation.kind) && (keys === undefined || SEALED_ONLY.has(mutation.kind))) {
      await tamperOpaque(db, pages, mutation, name);
      return;
    }
    if (keys === undefined) {
      throw new Error(`${mutation.kind} edits a record's contents: on encrypted store ${name} it needs { keys } from openKeys()`);
    }
    const loose: Editable[] = [];
    for (const p of pages) {
      for (const r of decodeSealedPage(p.records)) loose.push({ ...(await keys.open(r)), keyId: r.keyId });
    }
    const edited = await edit(loose, mutation, name);
    await writeBackSealed(db, edited.records, edited.rewriteDerived, keys, head);
  } finally {
    db.close();
  }
}

/** The plaintext edits, the same for plain and (decrypted) encrypted stores. */
async function edit(input: Editable[], mutation: Mutation, name: string): Promise<{ records: Editable[]; rewriteDerived: boolean }> {
  let records = input;
  const at = (seq: number) => {
    const i = records.findIndex((r) => parseEnvelope(r.envelope).device_seq === seq);
    if (i < 0) throw new Error(`event ${seq} is not in store ${name}`);
    return i;
  };
  let rewriteDerived = false;
  switch (mutation.kind) {
    case "flipPayloadByte": {
      const p = records[at(mutation.seq)]!.payload;
      p[p.length >> 1]! ^= 0x01;
      break;
    }
    case "changeField": {
      const i = at(mutation.seq);
      const e = parseEnvelope(records[i]!.envelope);
      e.event_type = `${e.event_type}-edited`;
      records[i] = { ...records[i]!, envelope: canonicalEnvelope(e) };
      break;
    }
    case "deleteEvent":
      records.splice(at(mutation.seq), 1);
      break;
    case "swapEvents": {
      const [i, j] = [at(mutation.a), at(mutation.b)];
      [records[i], records[j]] = [records[j]!, records[i]!];
      break;
    }
    case "insertForged": {
      const i = at(mutation.seq);
      const forged = await sealEnvelope({ ...parseEnvelope(records[i]!.envelope), prev_hash: "f".repeat(64) });
      records.splice(i, 0, { ...records[i]!, envelope: canonicalEnvelope(forged) });
      break;
    }
    case "truncateTail":
      records = records.slice(0, records.length - mutation.count);
      break;
    case "truncateTailFixHead":
      records = records.slice(0, records.length - mutation.count);
      rewriteDerived = true;
      break;
    case "rehashSuffix": {
      const start = at(mutation.from);
      let prev = start === 0 ? "0".repeat(64) : String(parseEnvelope(records[start - 1]!.envelope).hash);
      for (let i = start; i < records.length; i++) {
        const r = records[i]!;
        let e: Envelope = { ...parseEnvelope(r.envelope), prev_hash: prev };
        let payload = r.payload;
        if (i === start) {
          payload = new TextEncoder().encode('{"rewritten":true}');
          e.payload_digest = await sha256Hex(r.salt, payload);
        }
        e = await sealEnvelope(e);
        prev = String(e.hash);
        records[i] = { ...r, envelope: canonicalEnvelope(e), payload };
      }
      rewriteDerived = true;
      break;
    }
    case "flipCiphertextByte":
    case "swapCiphertexts":
    case "cutRecord":
      throw new Error(`${mutation.kind} works on sealed bytes, not on plaintext records`);
  }
  return { records, rewriteDerived };
}

/** The head the records end at. */
function headOf(records: LooseRecord[]): { device_seq: number; hash: string } {
  const last = records[records.length - 1];
  if (!last) return { device_seq: 0, hash: "0".repeat(64) };
  const e = parseEnvelope(last.envelope);
  return { device_seq: Number(e.device_seq), hash: String(e.hash) };
}

/**
 * Replaces every page with the edited records, four to a page with fresh
 * metadata, as a careful attacker would. Pages are keyed by position so
 * reordered or duplicated numbers cannot collide.
 */
async function writeBack(db: IDBDatabase, records: LooseRecord[], rewriteDerived: boolean): Promise<void> {
  const tx = db.transaction(["pages", "meta", "aggregates"], "readwrite");
  const pages = tx.objectStore("pages");
  pages.clear();
  for (let i = 0; i < records.length; i += 4) {
    pages.add({ ...pageOf(records.slice(i, i + 4)), first_device_seq: i + 1 });
  }
  if (rewriteDerived) {
    // Every page now carries aggregate_heads: records from before layout 3
    // would describe pages that are gone.
    tx.objectStore("aggregates").clear();
    tx.objectStore("meta").put(headOf(records), "head");
  }
  await committed(tx);
}

/**
 * {@link writeBack} for an encrypted store: every record is re-encrypted
 * under the data key it was under, with a fresh nonce, and index values
 * are re-blinded. The rewritten head keeps its old MAC: computing a new one
 * takes the head-MAC key, which a data key does not give.
 */
async function writeBackSealed(
  db: IDBDatabase,
  records: Editable[],
  rewriteDerived: boolean,
  keys: StoreKeys,
  oldHead: SealedHead | undefined,
): Promise<void> {
  // All encryption first: a transaction must not wait on WebCrypto.
  const values: StoredPage[] = [];
  for (let i = 0; i < records.length; i += 4) {
    const chunk = records.slice(i, i + 4);
    values.push({ ...(await keys.pageOf(chunk, chunk.map((r) => r.keyId))), first_device_seq: i + 1 });
  }
  let head: SealedHead | undefined;
  if (rewriteDerived) {
    head = headOf(records);
    if (oldHead?.mac !== undefined) head.mac = oldHead.mac;
  }
  const tx = db.transaction(["pages", "meta", "aggregates"], "readwrite");
  const pages = tx.objectStore("pages");
  pages.clear();
  for (const v of values) pages.add(v);
  if (head) {
    tx.objectStore("aggregates").clear();
    tx.objectStore("meta").put(head, "head");
  }
  await committed(tx);
}

/** A stored page and its sealed records, for edits that need no key. */
interface OpaquePage {
  value: StoredPage;
  records: LocatedSealedRecord[];
  /** Replacement bytes, when the page was cut rather than re-encoded. */
  bytes?: Uint8Array;
  changed: boolean;
}

/**
 * The edits of an attacker without keys. Sealed records are moved, removed
 * or damaged as bytes, found by the `device_seq` of their clear headers;
 * each page keeps its index metadata (which only the blind-index key could
 * recompute), and a page left empty is deleted. Since the metadata stays,
 * `deleteEvent` and `truncateTail` are reported as the threat model says
 * when they take whole pages or the break comes first in its page (as in a
 * log appended one event at a time); otherwise the stale metadata of a
 * shortened page may be reported first, as `INDEX_MISMATCH`.
 */
async function tamperOpaque(db: IDBDatabase, stored: StoredPage[], mutation: Mutation, name: string): Promise<void> {
  const pages: OpaquePage[] = stored.map((value) => ({ value, records: decodeSealedPage(value.records), changed: false }));
  const find = (seq: number): [OpaquePage, number] => {
    for (const p of pages) {
      const i = p.records.findIndex((r) => r.deviceSeq === seq);
      if (i >= 0) return [p, i];
    }
    throw new Error(`event ${seq} is not in store ${name}`);
  };
  switch (mutation.kind) {
    case "flipCiphertextByte": {
      const [p, i] = find(mutation.seq);
      const r = p.records[i]!;
      r.ct[r.ct.length - 1]! ^= 0x01;
      p.changed = true;
      break;
    }
    case "swapCiphertexts": {
      const [pa, i] = find(mutation.a);
      const [pb, j] = find(mutation.b);
      const [a, b] = [pa.records[i]!, pb.records[j]!];
      [a.nonce, b.nonce] = [b.nonce, a.nonce];
      [a.ct, b.ct] = [b.ct, a.ct];
      pa.changed = pb.changed = true;
      break;
    }
    case "cutRecord": {
      const [p, i] = find(mutation.seq);
      const r = p.records[i]!;
      p.bytes = p.value.records.slice(0, r.ctOffset + (r.ct.length >> 1));
      p.changed = true;
      break;
    }
    case "deleteEvent": {
      const [p, i] = find(mutation.seq);
      p.records.splice(i, 1);
      p.changed = true;
      break;
    }
    case "swapEvents": {
      const [pa, i] = find(mutation.a);
      const [pb, j] = find(mutation.b);
      [pa.records[i], pb.records[j]] = [pb.records[j]!, pa.records[i]!];
      pa.changed = pb.changed = true;
      break;
    }
    case "truncateTail": {
      let left = mutation.count;
      for (let k = pages.length - 1; k >= 0 && left > 0; k--) {
        const p = pages[k]!;
        const take = Math.min(left, p.records.length);
        p.records.splice(p.records.length - take, take);
        p.changed = true;
        left -= take;
      }
      if (left > 0) throw new Error(`store ${name} has fewer than ${mutation.count} events`);
      break;
    }
    default:
      throw new Error(`${mutation.kind} needs the store's keys`);
  }
  const tx = db.transaction(["pages"], "readwrite");
  const store = tx.objectStore("pages");
  for (const p of pages) {
    if (!p.changed) continue;
    if (!p.bytes && p.records.length === 0) {
      store.delete(p.value.first_device_seq);
    } else {
      store.put({ ...p.value, records: p.bytes ?? encodeSealedPage(p.records) });
    }
  }
  await committed(tx);
}
