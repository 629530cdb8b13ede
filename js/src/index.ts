export { EventStore, LockChangeEvent, SyncStatusEvent, SyncProgressEvent, SyncErrorEvent, SyncOutcomeEvent } from "./store.js";
export { storeKeyEncryptionKey, loadKeyEncryptionKey, forgetKeyEncryptionKey } from "./kek_store.js";
export { BACKGROUND_SYNC_TAG } from "./sync/background.js";
export type { EventStoreEventMap } from "./store.js";
export { initAnnal } from "./init.js";
export {
  AnnalError,
  AnnalValidationError,
  AnnalVersionConflictError,
  AnnalStorageError,
  AnnalQuotaExceededError,
  AnnalTamperedError,
  AnnalClosedError,
  AnnalSchemaError,
  AnnalBadKeyError,
  AnnalLockedError,
  AnnalOfflineError,
  AnnalUnauthorizedError,
  AnnalLedgerForkError,
  AnnalSchemaIncompatibleError,
  AnnalCancelledError,
  AnnalInternalError,
} from "./errors.js";
export type { ErrorCode, ErrorDetails } from "./errors.js";
export type * from "./types.js";
