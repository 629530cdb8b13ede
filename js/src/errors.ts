/**
 * Every error annal throws is an `AnnalError`: a real `Error` with a stable
 * `code`, a message that says what to do, and where relevant the offending
 * `field`, `deviceSeq` or `eventId`. Catch a subclass, or switch on `code`.
 */

/** The stable error codes. */
export type ErrorCode =
  | "ANNAL_VALIDATION"
  | "ANNAL_VERSION_CONFLICT"
  | "ANNAL_STORAGE"
  | "ANNAL_QUOTA_EXCEEDED"
  | "ANNAL_TAMPERED"
  | "ANNAL_CLOSED"
  | "ANNAL_SCHEMA"
  | "ANNAL_BAD_KEY"
  | "ANNAL_LOCKED"
  | "ANNAL_OFFLINE"
  | "ANNAL_UNAUTHORIZED"
  | "ANNAL_LEDGER_FORK"
  | "ANNAL_SCHEMA_INCOMPATIBLE"
  | "ANNAL_CANCELLED"
  | "ANNAL_INTERNAL";

/** Where an error applies. */
export interface ErrorDetails {
  /** The offending input field, e.g. `payload.items[2].dose`. */
  field?: string;
  /** The `device_seq` of the event concerned. */
  deviceSeq?: number;
  /** The `event_id` of the event concerned. */
  eventId?: string;
}

/** The base class of every annal error. */
export class AnnalError extends Error {
  readonly code: ErrorCode;
  readonly field?: string;
  readonly deviceSeq?: number;
  readonly eventId?: string;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    if (details.field !== undefined) this.field = details.field;
    if (details.deviceSeq !== undefined) this.deviceSeq = details.deviceSeq;
    if (details.eventId !== undefined) this.eventId = details.eventId;
  }
}

/** The input breaks a documented rule; nothing was written. */
export class AnnalValidationError extends AnnalError {}
/** `expectedVersion` did not match the aggregate's version; nothing was written. */
export class AnnalVersionConflictError extends AnnalError {}
/** IndexedDB failed; nothing was written. */
export class AnnalStorageError extends AnnalError {}
/** The browser refused the write: the site is out of storage quota. */
export class AnnalQuotaExceededError extends AnnalError {}
/** Stored data failed an integrity check. */
export class AnnalTamperedError extends AnnalError {}
/** The store is closed (by `close()`, or by a newer version of the app). */
export class AnnalClosedError extends AnnalError {}
/** The database has an incompatible layout, usually from a newer annal. */
export class AnnalSchemaError extends AnnalError {}
/**
 * The passphrase, key-encryption key or recovery secret does not unlock
 * this encrypted store. Nothing was read or changed: ask again. It is never
 * a sign of tampering (that is `ANNAL_TAMPERED`).
 */
export class AnnalBadKeyError extends AnnalError {}
/**
 * The store is encrypted and locked in this context: it was opened without
 * a credential, or `lock()` was called here or in another tab or worker.
 * Call `store.unlock(credential)`, then retry.
 */
export class AnnalLockedError extends AnnalError {}
/**
 * The sync server cannot be reached now (network down, timeout, 5xx, 429).
 * Nothing is lost: events wait in the outbox and sync retries with backoff.
 */
export class AnnalOfflineError extends AnnalError {}
/**
 * The sync server refused the token, even a freshly requested one. Check
 * that `getToken()` returns a token for this store's user and tenant.
 */
export class AnnalUnauthorizedError extends AnnalError {}
/**
 * The sync server's history no longer matches what this device verified
 * (an entry was rewritten, dropped or forked). Sync stops; every local event
 * is kept. Report it to the server's operator.
 */
export class AnnalLedgerForkError extends AnnalError {}
/**
 * The sync server speaks no sync protocol version this annal speaks. Nothing
 * was pushed. Upgrade the app or the server so they share a version.
 */
export class AnnalSchemaIncompatibleError extends AnnalError {}
/**
 * `cancelSync()` stopped the sync pass. Nothing was lost: events that were
 * not acknowledged stay in the outbox. Call `sync()` to go on.
 */
export class AnnalCancelledError extends AnnalError {}
/** A bug in annal. Reload the page; please report it. */
export class AnnalInternalError extends AnnalError {}

const CLASSES: Record<ErrorCode, new (code: ErrorCode, message: string, details?: ErrorDetails) => AnnalError> = {
  ANNAL_VALIDATION: AnnalValidationError,
  ANNAL_VERSION_CONFLICT: AnnalVersionConflictError,
  ANNAL_STORAGE: AnnalStorageError,
  ANNAL_QUOTA_EXCEEDED: AnnalQuotaExceededError,
  ANNAL_TAMPERED: AnnalTamperedError,
  ANNAL_CLOSED: AnnalClosedError,
  ANNAL_SCHEMA: AnnalSchemaError,
  ANNAL_BAD_KEY: AnnalBadKeyError,
  ANNAL_LOCKED: AnnalLockedError,
  ANNAL_OFFLINE: AnnalOfflineError,
  ANNAL_UNAUTHORIZED: AnnalUnauthorizedError,
  ANNAL_LEDGER_FORK: AnnalLedgerForkError,
  ANNAL_SCHEMA_INCOMPATIBLE: AnnalSchemaIncompatibleError,
  ANNAL_CANCELLED: AnnalCancelledError,
  ANNAL_INTERNAL: AnnalInternalError,
};

// Each class's name, for `err.name` and `err.constructor.name`, from its
// code: ANNAL_VERSION_CONFLICT names AnnalVersionConflictError. Written
// here because the package is minified, which renames classes.
Object.defineProperty(AnnalError, "name", { value: "AnnalError" });
for (const [code, cls] of Object.entries(CLASSES)) {
  const words = code.slice("ANNAL_".length).toLowerCase().replace(/(?:^|_)(.)/g, (_, c: string) => c.toUpperCase());
  Object.defineProperty(cls, "name", { value: `Annal${words}Error` });
}

/** The AnnalError subclass for `code` (ANNAL_INTERNAL for an unknown code), e.g. for an error that crossed a BroadcastChannel. */
export function errorFromCode(code: string, message: string): AnnalError {
  const known = (code in CLASSES ? code : "ANNAL_INTERNAL") as ErrorCode;
  return new CLASSES[known](known, message);
}

let poisoned: AnnalInternalError | undefined;

/** Throws if an earlier call crashed the WebAssembly instance. */
export function assertHealthy(): void {
  if (poisoned) throw poisoned;
}

/**
 * Turns whatever the WebAssembly layer threw into the matching AnnalError
 * subclass. A WebAssembly trap (a Rust panic) means the instance can no
 * longer be trusted: every later call fails with ANNAL_INTERNAL.
 */
export function toAnnalError(thrown: unknown): AnnalError {
  if (thrown instanceof AnnalError) return thrown;
  if (thrown instanceof Error) {
    const code = (thrown as { code?: unknown }).code;
    if (typeof code === "string" && code in CLASSES) {
      const raw = thrown as Error & ErrorDetails;
      const details: ErrorDetails = {};
      if (typeof raw.field === "string") details.field = raw.field;
      if (typeof raw.deviceSeq === "number") details.deviceSeq = raw.deviceSeq;
      if (typeof raw.eventId === "string") details.eventId = raw.eventId;
      const error = new CLASSES[code as ErrorCode](code as ErrorCode, thrown.message, details);
      return error;
    }
    if (thrown instanceof WebAssembly.RuntimeError) {
      poisoned = new AnnalInternalError(
        "ANNAL_INTERNAL",
        `annal crashed (${thrown.message}); this is a bug in annal. No acknowledged event is lost: ` +
          "reload the page to continue, and please report the console output.",
      );
      return poisoned;
    }
  }
  return new AnnalInternalError(
    "ANNAL_INTERNAL",
    `annal received an unexpected error (${String(thrown)}); this is a bug in annal, please report it.`,
  );
}

/** Runs `op`, converting anything it throws into an AnnalError. */
export async function guard<T>(op: () => Promise<T>): Promise<T> {
  assertHealthy();
  try {
    return await op();
  } catch (thrown) {
    throw toAnnalError(thrown);
  }
}

/** Synchronous variant of {@link guard}. */
export function guardSync<T>(op: () => T): T {
  assertHealthy();
  try {
    return op();
  } catch (thrown) {
    throw toAnnalError(thrown);
  }
}
