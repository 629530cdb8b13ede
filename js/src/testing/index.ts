/**
 * `annal/testing`: tools for testing apps built on annal and for showing
 * auditors that tampering is detected. Not for production code paths.
 */
export { tamper, expectation } from "./tamper.js";
export type { Mutation, Expectation } from "./tamper.js";
export { decodePage, pageOf, parseEnvelope, canonicalEnvelope, sha256Hex } from "./format.js";
export type { LooseRecord, StoredPage, Envelope } from "./format.js";
