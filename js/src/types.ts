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

/** Options of {@link EventStore.configureSync}. */
export interface SyncOptions {
  /** The annal-server base URL, e.g. `https://sync.example.org` (no trailing `/v1`). */
  serverUrl: string;
  /**
   * Returns a bearer token (a JWT) for this store's user and tenant.
   * `refresh` is `true` when the server refused the previous token: then
   * return a fresh one, never the same one again. A `getToken` that throws
   * or rejects makes `sync()` fail with `ANNAL_UNAUTHORIZED`.
   */
  getToken: (refresh: boolean) => Promise<string> | string;
  /**
   * Which server ledger to pull and verify: `"own"` (default) the user's own
   * ledger, `"tenant"` the whole tenant's (a coordinator or auditor; the
   * token must carry scope `tenant`).
   */
  scope?: "own" | "tenant";
  /**
   * Sync by itself (default `true`): after appends (debounced), when the
   * network comes back (`online`), when the page becomes visible, every
   * `intervalMs`, and at the retry time after a failure. One context of the
   * origin does it at a time (the one holding the Web Lock
   * `annal-sync:<name>`). `false`: only {@link EventStore.sync} syncs.
   */
  auto?: boolean;
  /** Milliseconds between automatic passes, also when nothing was appended (to pull). Default 60000; at least 1000. */
  intervalMs?: number;
  /** Milliseconds to wait after an append for more before pushing. Default 1000; 0 to 600000. */
  debounceMs?: number;
  /** How long one request may take before it counts as offline. Default 30000; 100 to 600000. */
  timeoutMs?: number;
  /**
   * The `fetch` sync and `live()` send their requests with, instead of the
   * global one: `(request: Request) => Promise<Response>`. Tests pass
   * `new FaultyFetch().fetch` from `annal/testing` to inject network faults.
   */
  fetch?: (request: Request) => Promise<Response>;
  /**
   * The clock that schedules retries and the interval: `Date.now()` and the
   * global timers by default. Tests pass `FakeClock` from `annal/testing`.
   */
  clock?: Clock;
}

/** Time for sync scheduling (see `FakeClock` in `annal/testing`). */
export interface Clock {
  /** Unix milliseconds. */
  now(): number;
  /** Calls `callback` after `ms` milliseconds; returns a handle. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a `setTimeout` handle. */
  clearTimeout(handle: unknown): void;
}

/** What {@link EventStore.subscribe} and {@link EventStore.live} deliver, narrowed by any of these. */
export interface EventSubscriptionFilter {
  aggregateId?: string;
  aggregateType?: string;
  eventType?: string;
  /** `"local"`: this device's own appends (from any tab or worker); `"remote"`: other devices' events, pulled and verified. Both by default. */
  source?: "local" | "remote";
}

/** Where events delivered to a subscriber came from. */
export interface EventBatchInfo {
  source: "local" | "remote";
}

/** A running {@link EventStore.live} stream. */
export interface LiveSubscription {
  /** Closes the stream and stops the callbacks. Safe to call twice. */
  close(): void;
  /** Whether the stream is connected now. */
  readonly connected: boolean;
}

/** How {@link EventStore.requestBackgroundSync} arranged for the service worker to sync. */
export type BackgroundSyncMode = "sync" | "periodicsync" | "message";

/** What one {@link EventStore.sync} pass did. */
export interface SyncReport {
  /** Events newly acknowledged by the server. */
  pushed: number;
  /** Events of other devices newly pulled and verified. */
  pulled: number;
  /** Server ledger entries verified. */
  verified: number;
  /** Of the pushed events, how many the server quarantined (see {@link EventStore.rejected}). */
  rejected: number;
  /** Of the pushed events, how many were conflicts (see {@link EventStore.conflicts}). */
  conflicts: number;
  /** Every event up to this `deviceSeq` is acknowledged (the watermark). */
  acked: number;
}

/**
 * Where the server places an event: its position and entry hash in the
 * tenant ledger and in the user ledger (docs/FORMAT.md §11.3). Snake case,
 * exactly as the server sends it.
 */
export interface Receipt {
  server_seq: number;
  user_seq: number;
  ledger_hash: string;
  user_ledger_hash: string;
  /** Server time, `YYYY-MM-DDTHH:MM:SS.ssssssZ`. */
  received_at: string;
}

/** The last server ledger entry this store verified. */
export interface SyncCheckpoint {
  /** `"tenant"` or `"user:" + userId`. */
  ledger: string;
  seq: number;
  hash: string;
}

/** The result of {@link EventStore.syncStatus}. */
export interface SyncStatus {
  /**
   * `"idle"`: the last pass succeeded (or none ran yet); `"offline"`: the
   * server could not be reached, and sync retries at `nextAttemptAt`;
   * `"error"`: the last pass failed for another reason (`lastError`), and
   * automatic sync waits for a `sync()` call; `"syncing"`: a pass runs, in
   * this context or another; `"locked"`: the store is locked here, so the
   * events wait until it is unlocked (`pending` still counts them).
   */
  state: "idle" | "syncing" | "error" | "offline" | "locked";
  /** Whether this context holds the sync lock (syncs for the whole origin). */
  leader: boolean;
  /** Events in the outbox: appended but not yet acknowledged by the server. */
  pending: number;
  /** Every event up to this `deviceSeq` is acknowledged. */
  acked: number;
  /** Unix ms of the last successful pass in this context (since the store was opened here), or `null`. */
  lastSyncAt: number | null;
  /** Why the last pass failed, or `null`. */
  lastError: string | null;
  /** Unix ms of the next scheduled attempt after a failure, or `null`. */
  nextAttemptAt: number | null;
  /** The last verified server ledger entry, or `null` before the first pull. */
  checkpoint: SyncCheckpoint | null;
}

/** An event of this device that the server quarantined: stored there, set aside, never dropped. */
export interface Rejected {
  deviceSeq: number;
  eventId: string;
  /** The server's reason, e.g. `SCHEMA_NOT_ALLOWED` (docs/FORMAT.md §11.2). */
  code: string;
  /** The server's explanation. */
  message: string;
  receipt: Receipt;
}

/** An event of this device that the server took as a conflict: another event of the aggregate has the same `aggregateVersion`. */
export interface Conflict {
  deviceSeq: number;
  eventId: string;
  /** The `eventId`s of the events it conflicts with. */
  conflictsWith: string[];
  receipt: Receipt;
}
