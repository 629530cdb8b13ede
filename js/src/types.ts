/** JSON values, as stored. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object: the only payload shape. */
export type JsonObject = { [key: string]: JsonValue | undefined };

/** Options of {@link EventStore.open}. */
export interface OpenOptions {
  /** Store name. The IndexedDB database is `annal:<name>`. */
  name: string;
  /** The one user of this store. Opening it as another user fails. */
  userId: string;
  /** The tenant (study, organisation) records are bound to. Default `"default"`. */
  tenantId?: string;
  /**
   * `'strict'` (default): an append resolves only once the data is flushed
   * to disk and survives power loss. `'relaxed'`: it resolves once the OS
   * has the data, which survives a crashed tab but maybe not a power cut.
   */
  durability?: "strict" | "relaxed";
  /**
   * Unlocks an encrypted store with a passphrase; a **new** store opened
   * with one is encrypted (docs/FORMAT.md §8.4). At least 8 characters
   * when creating the store. Derived with PBKDF2 (600,000 iterations), so
   * opening takes a noticeable fraction of a second.
   */
  passphrase?: string;
  /**
   * Unlocks an encrypted store with the app's own key-encryption key: an
   * AES-GCM 256-bit `CryptoKey` with usages `encrypt` and `decrypt`,
   * normally non-extractable (from a WebAuthn PRF or a platform key
   * store). A new store opened with one is encrypted.
   */
  keyEncryptionKey?: CryptoKey;
  /**
   * Unlocks an encrypted store with the recovery secret from
   * {@link EventStore.exportRecoveryKey}, when the passphrase is lost. Then
   * set a new passphrase with `changePassphrase({ recoverySecret }, newPassphrase)`.
   */
  recoverySecret?: string;
  /**
   * Encrypted stores only, fixed when the store is created: keep index
   * values (aggregate ids and types, event types, idempotency keys) as
   * keyed hashes instead of in the clear. Default `true`.
   */
  blindIndexes?: boolean;
  /**
   * Encrypted stores only: start a new data key before the current one has
   * encrypted this many records. Default 2^30, at least 100.
   */
  maxRecordsPerKey?: number;
}

/**
 * What unlocks an encrypted store: a passphrase (as a string or
 * `{ passphrase }`), the app's key-encryption key, or a recovery secret.
 */
export type Credential =
  | string
  | { passphrase: string }
  | { keyEncryptionKey: CryptoKey }
  | { recoverySecret: string };

/** One data key of an encrypted store's key ring. */
export interface DataKeyInfo {
  /** Key id, from 1. */
  id: number;
  /** The first `deviceSeq` appended under this key. */
  firstDeviceSeq: number;
  /** How many records this key has encrypted (appended and re-encrypted). */
  records: number;
  /** No record uses this key any more; a record naming it is refused. */
  retired: boolean;
}

/** The key ring of an encrypted store, from {@link EventStore.keyInfo}. */
export interface KeyInfo {
  /** The id of the key that encrypts new events. */
  current: number;
  /** A new key starts before the current one passes this many records. */
  maxRecordsPerKey: number;
  /** Every data key ever used, oldest first. */
  keys: DataKeyInfo[];
  /**
   * A re-encryption that has not finished (resume it with
   * `reencryptAll()`): records before `nextDeviceSeq` are under `target`.
   */
  reencryption: null | { target: number; nextDeviceSeq: number };
}

/** The result of {@link EventStore.rotateDataKey}. */
export interface RotateResult {
  /** The id of the new current data key. */
  keyId: number;
}

/** The result of {@link EventStore.reencryptAll}. */
export interface ReencryptResult {
  /** The key every record is now encrypted under. */
  keyId: number;
  /** Records re-encrypted by this call (a resumed run counts only its own). */
  reencrypted: number;
  /** Ids of the keys retired at the end. */
  retired: number[];
}

/** Options of {@link EventStore.reencryptAll}. */
export interface ReencryptOptions {
  /** Called after each page, with records done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** What to append. */
export interface AppendEvent {
  aggregateType: string;
  aggregateId: string;
  eventType: string;
  /** A JSON object. Members whose value is `undefined` are left out. */
  payload: JsonObject;
  /** Payload schema version, ≥ 1. Default 1. */
  schemaVersion?: number;
  causationId?: string;
  correlationId?: string;
  /** The version the aggregate must be at (0: it must not exist yet). */
  expectedVersion?: number;
  /** Appending again with the same key returns the first event. */
  idempotencyKey?: string;
}

/** A stored event: the hashed envelope and its payload. */
export interface StoredEvent {
  eventId: string;
  format: "annal/1";
  tenantId: string;
  aggregateType: string;
  aggregateId: string;
  eventType: string;
  schemaVersion: number;
  payload: { [key: string]: JsonValue };
  payloadDigest: string;
  userId: string;
  deviceId: string;
  deviceSeq: number;
  /** Device time, `YYYY-MM-DDTHH:MM:SS.sssZ`. */
  createdAt: string;
  aggregateVersion: number;
  causationId?: string;
  correlationId?: string;
  prevHash: string;
  hash: string;
}

/** Which events to read. All given conditions must hold. */
export interface EventFilter {
  aggregateId?: string;
  aggregateType?: string;
  eventType?: string;
  /** `deviceSeq` ≥ this. */
  fromSeq?: number;
  /** `deviceSeq` ≤ this. */
  toSeq?: number;
  /** `createdAt` ≥ this (inclusive). */
  since?: Date | number | string;
  /** `createdAt` < this (exclusive). */
  until?: Date | number | string;
  limit?: number;
  /** Newest first. */
  reverse?: boolean;
}

/** An aggregate's current version and its events. */
export interface Aggregate {
  aggregateId: string;
  version: number;
  events: StoredEvent[];
}

/** The end of the device chain. */
export interface Head {
  deviceSeq: number;
  hash: string;
}

/** Why verification failed. */
export type BreakReason =
  | "MALFORMED"
  | "HASH_MISMATCH"
  | "PAYLOAD_DIGEST_MISMATCH"
  | "IDENTITY_MISMATCH"
  | "MISSING_EVENT"
  | "OUT_OF_ORDER"
  | "BROKEN_LINK"
  | "TRUNCATED"
  | "HEAD_MISMATCH"
  | "INDEX_MISMATCH"
  /** Encrypted stores: a well-formed record does not decrypt (its ciphertext, header or key was changed). */
  | "DECRYPT_FAILED"
  /** Encrypted stores: the head record's MAC does not authenticate it (the log was shortened or rewritten). */
  | "HEAD_MAC_MISMATCH";

/** The result of {@link EventStore.verify}. */
export interface VerifyResult {
  ok: boolean;
  /** Events verified before the first break (all of them when ok). */
  checked: number;
  firstBadSeq?: number;
  reason?: BreakReason;
  message?: string;
}

/** Options of {@link EventStore.verify}. */
export interface VerifyOptions {
  /** Called as the scan advances. */
  onProgress?: (checked: number, total: number) => void;
}

/** Who a store belongs to. */
export interface StoreIdentity {
  name: string;
  databaseName: string;
  storeId: string;
  tenantId: string;
  userId: string;
  deviceId: string;
}
