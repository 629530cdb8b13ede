/**
 * `annal/testing`: tools for testing apps built on annal and for showing
 * auditors that tampering is detected. Not for production code paths.
 */
export { tamper, expectation } from "./tamper.js";
export { FakeClock } from "./clock.js";
export { wasmMemory } from "../init.js";
export { FaultyFetch } from "./faulty_fetch.js";
export type { FaultKind, FaultMatch, FaultOptions, FaultyFetchEntry, FetchLike } from "./faulty_fetch.js";
export type { Mutation, Expectation, ExpectationOptions, TamperOptions } from "./tamper.js";
export {
  decodePage,
  encodePage,
  pageOf,
  parseEnvelope,
  canonicalEnvelope,
  sha256Hex,
  toHex,
  // Encryption at rest (docs/FORMAT.md §8.4), independently of annal's Rust code.
  openKeys,
  readMeta,
  readSealedLog,
  deriveStoreKeys,
  unwrapMasterKey,
  parseRecoverySecret,
  decodeSealedPage,
  encodeSealedPage,
  sealedHeader,
  recordAad,
  KIND_SEALED,
} from "./format.js";
export type {
  LooseRecord,
  StoredPage,
  Envelope,
  SealedRecord,
  LocatedSealedRecord,
  StoreKeys,
  KeyCredential,
  KeySlot,
  KeyRingJson,
  BlindField,
  SealedHead,
  SealedMeta,
  OpenedRecord,
} from "./format.js";
