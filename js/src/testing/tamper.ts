/**
 * Tamper drills: the edits an attacker with access to the device could make
 * to a store's IndexedDB, applied behind annal's back so that `verify()`
 * can be shown to catch them (or, for the two an unkeyed chain cannot see,
 * shown not to). For test suites and for demonstrations to auditors; never
 * import this into production code.
 */

import {
  canonicalEnvelope,
  decodePage,
  type Envelope,
  type LooseRecord,
  pageOf,
  parseEnvelope,
  sealEnvelope,
  sha256Hex,
  type StoredPage,
} from "./format.js";
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
  | { kind: "rehashSuffix"; from: number };

/** What an unkeyed `verify()` reports after a mutation. */
export type Expectation = { detected: true; firstBadSeq: number; reason: BreakReason } | { detected: false };

/** The threat model of docs/FORMAT.md, as data: the outcome for a log of `length` events. */
export function expectation(m: Mutation, length: number): Expectation {
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
    case "rehashSuffix":
      return { detected: false };
  }
}

function idbRequest<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((ok, fail) => {
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
}

function openRaw(name: string): Promise<IDBDatabase> {
  return idbRequest(indexedDB.open(`annal:${name}`));
}

/** Applies `mutation` to the stored log of store `name`. The store may be open. */
export async function tamper(name: string, mutation: Mutation): Promise<void> {
  const db = await openRaw(name);
  try {
    const read = db.transaction(["pages"], "readonly");
    const pages = (await idbRequest(read.objectStore("pages").getAll())) as StoredPage[];
    let records: LooseRecord[] = pages.flatMap((p) => decodePage(p.records));
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
          records[i] = { envelope: canonicalEnvelope(e), salt: r.salt, payload };
        }
        rewriteDerived = true;
        break;
      }
    }
    await writeBack(db, records, rewriteDerived);
  } finally {
    db.close();
  }
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
    const aggregates = tx.objectStore("aggregates");
    aggregates.clear();
    let head = { device_seq: 0, hash: "0".repeat(64) };
    const latest = new Map<string, Envelope>();
    for (const r of records) {
      const e = parseEnvelope(r.envelope);
      head = { device_seq: Number(e.device_seq), hash: String(e.hash) };
      latest.set(String(e.aggregate_id), e);
    }
    for (const [id, e] of latest) {
      aggregates.put(
        { aggregate_type: e.aggregate_type, version: e.aggregate_version, last_device_seq: e.device_seq },
        id,
      );
    }
    tx.objectStore("meta").put(head, "head");
  }
  await new Promise<void>((ok, fail) => {
    tx.oncomplete = () => ok();
    tx.onabort = () => fail(tx.error);
  });
}
