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
  | "INDEX_MISMATCH";

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
