export { EventStore, LockChangeEvent } from "./store.js";
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
  AnnalInternalError,
} from "./errors.js";
export type { ErrorCode, ErrorDetails } from "./errors.js";
export type * from "./types.js";
