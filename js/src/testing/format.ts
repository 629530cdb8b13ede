/**
 * An independent, JavaScript reading of the at-rest layout documented in
 * docs/FORMAT.md: decoding page records, canonical JSON for envelopes, and
 * SHA-256 through WebCrypto; and for encrypted stores (§8.4) unwrapping the
 * master key, deriving the data, blind-index and head-MAC keys, opening and
 * sealing records, blind index values and the head and key-ring MACs, with
 * WebCrypto alone. It shares no code with the Rust core, which makes it a
 * check that the document is exact.
 */

import { idbRequest, openRaw } from "./idb.js";

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
  /**
   * `[aggregate_id, version, aggregate_type, last_device_seq]` for each
   * aggregate of the page, as its last event there leaves it, sorted by id
   * (layout 3; absent on pages written before it).
   */
  aggregate_heads?: [string, number, string, number][];
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
  const need = (at: number, n: number) => {
    if (at + n > bytes.length) throw new Error(`record ${out.length} runs past the end of its page`);
  };
  let at = 0;
  while (at < bytes.length) {
    if (bytes[at] !== KIND_PLAIN) throw new Error(`unknown record kind ${bytes[at]} at byte ${at}`);
    need(at, 5);
    const envelopeLen = view.getUint32(at + 1, true);
    need(at + 5, envelopeLen + 20);
    const envelope = bytes.slice(at + 5, at + 5 + envelopeLen);
    at += 5 + envelopeLen;
    const salt = bytes.slice(at, at + 16);
    const payloadLen = view.getUint32(at + 16, true);
    need(at + 20, payloadLen);
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

/** The bytes of `parts`, one after the other, in a new array. */
export function concat(...parts: (Uint8Array | string | number[])[]): Uint8Array<ArrayBuffer> {
  const arrays = parts.map((p) => (typeof p === "string" ? encoder.encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const joined = new Uint8Array(arrays.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of arrays) {
    joined.set(p, at);
    at += p.length;
  }
  return joined;
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(...parts: Uint8Array[]): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts))));
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
    aggregate_heads: headsOf(envelopes, (id) => id, (type) => type),
    records: encodePage(records),
  };
}

/** `aggregate_heads` of a page's envelopes, ids and types stored as `id` and `type` say. */
function headsOf(
  envelopes: Envelope[],
  id: (v: string) => string,
  type: (v: string) => string,
): [string, number, string, number][] {
  const last = new Map<string, Envelope>();
  for (const e of envelopes) last.set(String(e.aggregate_id), e);
  return [...last.values()]
    .map((e): [string, number, string, number] => [
      id(String(e.aggregate_id)),
      Number(e.aggregate_version),
      type(String(e.aggregate_type)),
      Number(e.device_seq),
    ])
    .sort((a, b) => byUtf8(a[0], b[0]));
}

// ---------------------------------------------------------------------------
// §8.4 Encryption at rest

/** Record kind of a sealed record (§8.4.2). */
export const KIND_SEALED = 2;
const SEALED_VERSION = 1;
const NONCE_LEN = 12;
const TAG_LEN = 16;
/** Bytes of the fixed part of a sealed header: kind, version, key_id, device_seq, id_len. */
const FIXED_HEADER_LEN = 1 + 1 + 4 + 8 + 1;

/** One sealed record (kind 2) of a page, as its parts. */
export interface SealedRecord {
  keyId: number;
  deviceSeq: number;
  eventId: string;
  /** The clear header, from `kind` to the end of `event_id`: part of the AAD. */
  header: Uint8Array;
  nonce: Uint8Array;
  /** Ciphertext followed by the 16-byte tag. */
  ct: Uint8Array;
}

/** A sealed record located in its page bytes. */
export interface LocatedSealedRecord extends SealedRecord {
  /** Offset of the record's first byte in the page. */
  offset: number;
  /** Offset of the first byte of `ct` in the page. */
  ctOffset: number;
  /** Offset just past the record. */
  end: number;
}

/** The clear header of a sealed record. */
export function sealedHeader(keyId: number, deviceSeq: number, eventId: string): Uint8Array<ArrayBuffer> {
  const id = encoder.encode(eventId);
  if (id.length > 255) throw new Error("event ids of sealed records are at most 255 bytes");
  const header = new Uint8Array(FIXED_HEADER_LEN + id.length);
  const view = new DataView(header.buffer);
  header[0] = KIND_SEALED;
  header[1] = SEALED_VERSION;
  view.setUint32(2, keyId, true);
  view.setBigUint64(6, BigInt(deviceSeq), true);
  header[14] = id.length;
  header.set(id, FIXED_HEADER_LEN);
  return header;
}

/**
 * Splits page bytes into sealed records, checking every length against the
 * bytes that remain (§8.4.2). Throws at the first record that does not parse.
 */
export function decodeSealedPage(bytes: Uint8Array): LocatedSealedRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: LocatedSealedRecord[] = [];
  const need = (at: number, n: number) => {
    if (at + n > bytes.length) throw new Error(`sealed record ${out.length} runs past the end of its page`);
  };
  let at = 0;
  while (at < bytes.length) {
    const offset = at;
    need(at, FIXED_HEADER_LEN);
    if (bytes[at] !== KIND_SEALED) throw new Error(`record kind ${bytes[at]} at byte ${at} where a sealed record (2) belongs`);
    if (bytes[at + 1] !== SEALED_VERSION) throw new Error(`unknown sealed record version ${bytes[at + 1]}`);
    const keyId = view.getUint32(at + 2, true);
    const deviceSeq = Number(view.getBigUint64(at + 6, true));
    const idLen = bytes[at + 14]!;
    need(at + FIXED_HEADER_LEN, idLen);
    const eventId = decoder.decode(bytes.subarray(at + FIXED_HEADER_LEN, at + FIXED_HEADER_LEN + idLen));
    at += FIXED_HEADER_LEN + idLen;
    const header = bytes.slice(offset, at);
    need(at, NONCE_LEN + 4);
    const nonce = bytes.slice(at, at + NONCE_LEN);
    const ctLen = view.getUint32(at + NONCE_LEN, true);
    if (ctLen < TAG_LEN) throw new Error(`sealed record ${out.length}: its ciphertext is shorter than its tag`);
    at += NONCE_LEN + 4;
    need(at, ctLen);
    const ctOffset = at;
    const ct = bytes.slice(at, at + ctLen);
    at += ctLen;
    out.push({ keyId, deviceSeq, eventId, header, nonce, ct, offset, ctOffset, end: at });
  }
  return out;
}

/** Packs sealed records into page bytes: `header | nonce | u32le ct_len | ct`. */
export function encodeSealedPage(records: SealedRecord[]): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const r of records) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, r.ct.length, true);
    parts.push(r.header, r.nonce, len, r.ct);
  }
  return concat(...parts);
}

/** The AAD of a sealed record: `"annal/1 record" ‖ 0x00 ‖ u16le(len(store_id)) ‖ store_id ‖ header`. */
export function recordAad(storeId: string, header: Uint8Array): Uint8Array<ArrayBuffer> {
  const id = encoder.encode(storeId);
  return concat("annal/1 record", [0, id.length & 0xff, id.length >> 8], id, header);
}

/** The fields whose values blind indexes hide (§8.4.3). */
export type BlindField = "aggregate_id" | "aggregate_type" | "event_type" | "idempotency_key" | "fingerprint";

/** The data-key ring, as the JSON text of the `"keyring"` meta record holds it (§8.4.4). */
export interface KeyRingJson {
  current: number;
  max_records_per_key: number;
  keys: { id: number; first_device_seq: number; reencrypted: number; retired: boolean }[];
  reencryption: null | { target: number; next_device_seq: number };
}

/** One slot of the `"keys"` meta record (§8.4.4). */
export interface KeySlot {
  kind: "passphrase" | "key" | "recovery";
  iv: Uint8Array;
  wrapped: Uint8Array;
  created_at?: string;
  kdf?: string;
  iterations?: number;
  salt?: Uint8Array;
}

/** What unwraps the master key of a store: the credentials of `EventStore.open`. */
export type KeyCredential = { keyEncryptionKey: CryptoKey } | { passphrase: string } | { recoverySecret: string };

/** The head record of an encrypted store. */
export interface SealedHead {
  device_seq: number;
  hash: string;
  mac?: string;
}

async function hkdf(ikm: Uint8Array, storeId: string, info: string): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", concat(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: encoder.encode(storeId), info: encoder.encode(info) },
    key,
    256,
  );
  return new Uint8Array(bits);
}

async function hmacHex(key: CryptoKey, ...parts: (Uint8Array | string | number[])[]): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, concat(...parts))));
}

function hmacKey(bytes: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", concat(bytes), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

function aesKey(bytes: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", concat(bytes), "AES-GCM", false, ["encrypt", "decrypt"]);
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * Reads a recovery secret as §8.4.1 writes it: Crockford base32 of the 32
 * secret bytes and the first 2 bytes of their SHA-256, ignoring case, `-`
 * and spaces, `O` read as `0` and `I`, `L` as `1`. Throws on a typo.
 */
export async function parseRecoverySecret(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const digits = text
    .toUpperCase()
    .replace(/[-\s]/g, "")
    .replace(/O/g, "0")
    .replace(/[IL]/g, "1");
  if (digits.length !== 55) throw new Error(`a recovery secret has 55 digits, not ${digits.length}`);
  const bytes: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const c of digits) {
    const v = CROCKFORD.indexOf(c);
    if (v < 0) throw new Error(`${JSON.stringify(c)} is not a Crockford base32 digit`);
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((acc >> bits) & 0xff);
    }
  }
  const secret = Uint8Array.from(bytes.slice(0, 32));
  const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", secret));
  if (sum[0] !== bytes[32] || sum[1] !== bytes[33]) throw new Error("the recovery secret's checksum does not match: a typo");
  return secret;
}

/** The KEKs a credential gives for a slot of store `storeId`, and the slot kind it unwraps. */
async function kekFor(credential: KeyCredential, storeId: string, slot: KeySlot): Promise<CryptoKey | undefined> {
  if ("keyEncryptionKey" in credential) return slot.kind === "key" ? credential.keyEncryptionKey : undefined;
  if ("recoverySecret" in credential) {
    if (slot.kind !== "recovery") return undefined;
    return aesKey(await hkdf(await parseRecoverySecret(credential.recoverySecret), storeId, "annal/1 recovery kek"));
  }
  if (slot.kind !== "passphrase") return undefined;
  if (slot.kdf !== "PBKDF2-HMAC-SHA256") throw new Error(`unknown kdf ${String(slot.kdf)}`);
  const password = await crypto.subtle.importKey("raw", encoder.encode(credential.passphrase.normalize("NFC")), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt: concat(slot.salt ?? new Uint8Array()), iterations: Number(slot.iterations) },
    password,
    { name: "AES-GCM", length: 256 },
    false,
    ["decrypt"],
  );
}

/**
 * Unwraps the master key `M` from the slots of the `"keys"` meta record:
 * AES-256-GCM-Decrypt(KEK, iv, AAD = "annal/1 master key" ‖ 0x00 ‖
 * store_id ‖ 0x00 ‖ kind, wrapped). Throws when no slot opens.
 */
export async function unwrapMasterKey(slots: KeySlot[], storeId: string, credential: KeyCredential): Promise<Uint8Array<ArrayBuffer>> {
  let tried = 0;
  for (const slot of slots) {
    const kek = await kekFor(credential, storeId, slot);
    if (!kek) continue;
    tried++;
    try {
      const aad = concat("annal/1 master key", [0], storeId, [0], slot.kind);
      const m = new Uint8Array(
        await crypto.subtle.decrypt({ name: "AES-GCM", iv: concat(slot.iv), additionalData: aad }, kek, concat(slot.wrapped)),
      );
      if (m.length !== 32) throw new Error(`the master key has ${m.length} bytes, not 32`);
      return m;
    } catch (e) {
      if (e instanceof Error && e.name !== "OperationError") throw e;
    }
  }
  throw new Error(tried === 0 ? "the store has no slot for this kind of credential" : "the credential does not unwrap the master key");
}

/**
 * The keys of an unlocked encrypted store, derived from its master key as
 * §8.4.1 says, with the operations of §8.4.2–§8.4.4 built on them.
 */
export interface StoreKeys {
  readonly storeId: string;
  /** Whether index values are blinded (the store's `encryption.blind_indexes`). */
  readonly blindIndexes: boolean;
  /** The key ring, parsed from the `"keyring"` record (its MAC checked). */
  readonly ring: KeyRingJson;
  /** Data key `id`: HKDF-SHA256(M, store_id, "annal/1 data key " ‖ decimal(id)), as an AES-GCM key. */
  dataKey(id: number): Promise<CryptoKey>;
  /** `hex(HMAC-SHA256(B, field ‖ 0x00 ‖ value)[0..16])`. */
  blind(field: BlindField, value: string): Promise<string>;
  /** How a value is stored in an index or as a key: blinded, or clear when the store keeps clear indexes. */
  indexValue(field: BlindField, value: string): Promise<string>;
  /** The head MAC: `hex(HMAC-SHA256(H, "annal/1 head" ‖ 0x00 ‖ store_id ‖ 0x00 ‖ decimal(device_seq) ‖ 0x00 ‖ hash))`. */
  headMac(head: { device_seq: number; hash: string }): Promise<string>;
  /** The key-ring MAC: `hex(HMAC-SHA256(H, "annal/1 keyring" ‖ 0x00 ‖ store_id ‖ 0x00 ‖ ring))`. */
  ringMac(ring: string): Promise<string>;
  /** Decrypts a sealed record into its plaintext kind-1 record. Throws if it does not authenticate. */
  open(record: SealedRecord): Promise<LooseRecord>;
  /** Encrypts a plaintext record under data key `keyId` (default: the ring's current key) with a fresh nonce. */
  seal(record: LooseRecord, keyId?: number): Promise<SealedRecord>;
  /** Decrypts every record of sealed page bytes. */
  openPage(bytes: Uint8Array): Promise<LooseRecord[]>;
  /** A page value for `records`, sealed, with its index metadata blinded as the store does (§8.4.3). */
  pageOf(records: LooseRecord[], keyIds?: (number | undefined)[]): Promise<StoredPage>;
}

/** Derives the {@link StoreKeys} of store `storeId` from its master key `M`. */
export async function deriveStoreKeys(
  storeId: string,
  masterKey: Uint8Array,
  options: { blindIndexes: boolean; ring: KeyRingJson },
): Promise<StoreKeys> {
  const blindKey = await hmacKey(await hkdf(masterKey, storeId, "annal/1 blind index key"));
  const headKey = await hmacKey(await hkdf(masterKey, storeId, "annal/1 head mac key"));
  const dataKeys = new Map<number, Promise<CryptoKey>>();
  const dataKey = (id: number) => {
    let key = dataKeys.get(id);
    if (!key) {
      key = hkdf(masterKey, storeId, `annal/1 data key ${id}`).then(aesKey);
      dataKeys.set(id, key);
    }
    return key;
  };
  const blind = async (field: BlindField, value: string) => (await hmacHex(blindKey, field, [0], value)).slice(0, 32);
  const indexValue = (field: BlindField, value: string) => (options.blindIndexes ? blind(field, value) : Promise.resolve(value));
  const keys: StoreKeys = {
    storeId,
    blindIndexes: options.blindIndexes,
    ring: options.ring,
    dataKey,
    blind,
    indexValue,
    headMac: (head) => hmacHex(headKey, "annal/1 head", [0], storeId, [0], String(head.device_seq), [0], head.hash),
    ringMac: (ring) => hmacHex(headKey, "annal/1 keyring", [0], storeId, [0], ring),
    async open(record) {
      const plain = new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: concat(record.nonce), additionalData: recordAad(storeId, record.header) },
          await dataKey(record.keyId),
          concat(record.ct),
        ),
      );
      const records = decodePage(plain);
      if (records.length !== 1) throw new Error(`a sealed record holds ${records.length} plaintext records, not 1`);
      return records[0]!;
    },
    async seal(record, keyId = options.ring.current) {
      const envelope = parseEnvelope(record.envelope);
      const header = sealedHeader(keyId, Number(envelope.device_seq), String(envelope.event_id));
      const nonce = crypto.getRandomValues(new Uint8Array(NONCE_LEN));
      const ct = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv: nonce, additionalData: recordAad(storeId, header) },
          await dataKey(keyId),
          concat(encodePage([record])),
        ),
      );
      return { keyId, deviceSeq: Number(envelope.device_seq), eventId: String(envelope.event_id), header, nonce, ct };
    },
    async openPage(bytes) {
      const out: LooseRecord[] = [];
      for (const r of decodeSealedPage(bytes)) out.push(await keys.open(r));
      return out;
    },
    async pageOf(records, keyIds = []) {
      const clear = pageOf(records);
      const blindAll = async (field: BlindField, values: string[]) =>
        [...new Set(await Promise.all(values.map((v) => indexValue(field, v))))].sort(byUtf8);
      const sealed: SealedRecord[] = [];
      for (let i = 0; i < records.length; i++) sealed.push(await keys.seal(records[i]!, keyIds[i]));
      // Blind values first: headsOf maps synchronously.
      const envelopes = records.map((r) => parseEnvelope(r.envelope));
      const blinded = new Map<string, string>();
      for (const e of envelopes) {
        blinded.set(`i${e.aggregate_id}`, await indexValue("aggregate_id", String(e.aggregate_id)));
        blinded.set(`t${e.aggregate_type}`, await indexValue("aggregate_type", String(e.aggregate_type)));
      }
      return {
        ...clear,
        aggregate_ids: await blindAll("aggregate_id", clear.aggregate_ids),
        aggregate_types: await blindAll("aggregate_type", clear.aggregate_types),
        event_types: await blindAll("event_type", clear.event_types),
        aggregate_heads: headsOf(envelopes, (id) => blinded.get(`i${id}`)!, (type) => blinded.get(`t${type}`)!),
        records: encodeSealedPage(sealed),
      };
    },
  };
  return keys;
}

/** The `meta` records of a store that encryption adds or changes (§8.4.4). */
export interface SealedMeta {
  store: { layout: number; store_id: string; encryption?: { cipher: string; blind_indexes: boolean } } & Record<string, unknown>;
  head: SealedHead | undefined;
  keys: { format: string; slots: KeySlot[] } | undefined;
  keyring: { ring: string; mac: string } | undefined;
}

/** Reads the `meta` records of store `name` straight from IndexedDB. */
export async function readMeta(name: string): Promise<SealedMeta> {
  const db = await openRaw(name);
  try {
    const meta = db.transaction(["meta"], "readonly").objectStore("meta");
    const [store, head, keys, keyring] = await Promise.all(
      ["store", "head", "keys", "keyring"].map((k) => idbRequest(meta.get(k))),
    );
    if (!store) throw new Error(`store ${JSON.stringify(name)} has no "store" record`);
    return { store, head, keys, keyring } as SealedMeta;
  } finally {
    db.close();
  }
}

/**
 * Unlocks encrypted store `name` independently of annal: reads its
 * `"store"`, `"keys"` and `"keyring"` records from IndexedDB, unwraps the
 * master key with `credential`, derives the keys and checks the key ring's
 * MAC, all as docs/FORMAT.md §8.4 says. For tamper drills
 * (`tamper(name, m, { keys })`) and for tests that the document is exact.
 */
export async function openKeys(name: string, credential: KeyCredential): Promise<StoreKeys> {
  const meta = await readMeta(name);
  if (meta.store.layout !== 2 || !meta.store.encryption) throw new Error(`store ${JSON.stringify(name)} is not encrypted`);
  if (meta.store.encryption.cipher !== "AES-256-GCM") throw new Error(`unknown cipher ${meta.store.encryption.cipher}`);
  if (meta.keys?.format !== "annal-keys/1") throw new Error(`store ${JSON.stringify(name)} has no "keys" record of format annal-keys/1`);
  if (!meta.keyring) throw new Error(`store ${JSON.stringify(name)} has no "keyring" record`);
  const storeId = meta.store.store_id;
  const m = await unwrapMasterKey(meta.keys.slots, storeId, credential);
  const keys = await deriveStoreKeys(storeId, m, {
    blindIndexes: meta.store.encryption.blind_indexes,
    ring: JSON.parse(meta.keyring.ring) as KeyRingJson,
  });
  if ((await keys.ringMac(meta.keyring.ring)) !== meta.keyring.mac) throw new Error("the key ring's MAC does not match");
  return keys;
}

/** One decrypted record of an encrypted store, with the key it was under. */
export interface OpenedRecord extends LooseRecord {
  keyId: number;
  /** The `device_seq` in the clear header. */
  deviceSeq: number;
  /** The key of the page the record is in. */
  page: number;
}

/** Every record of encrypted store `name`, decrypted with `keys`, in storage order. */
export async function readSealedLog(name: string, keys: StoreKeys): Promise<OpenedRecord[]> {
  const db = await openRaw(name);
  let pages: StoredPage[];
  try {
    pages = (await idbRequest(db.transaction(["pages"], "readonly").objectStore("pages").getAll())) as StoredPage[];
  } finally {
    db.close();
  }
  const out: OpenedRecord[] = [];
  for (const p of pages) {
    for (const r of decodeSealedPage(p.records)) {
      out.push({ ...(await keys.open(r)), keyId: r.keyId, deviceSeq: r.deviceSeq, page: p.first_device_seq });
    }
  }
  return out;
}
