import { AnnalStorageError, AnnalValidationError } from "./errors.js";

/**
 * Key-encryption keys kept in IndexedDB, so that pages and the service
 * worker of an origin can open an encrypted store without a person at the
 * keyboard (docs/DESIGN.md, "Encrypted stores in the service worker").
 *
 * A non-extractable `CryptoKey` is stored as it is (structured clone): no
 * script can read its bytes, but anyone who copies the browser profile can
 * use it. Use it where the device itself is trusted (a managed clinic
 * tablet); use a passphrase where it is not.
 */
const DB_NAME = "annal-kek";
const STORE = "keys";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
}

async function withStore<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  let db: IDBDatabase;
  try {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    db = await request(open);
  } catch (e) {
    throw new AnnalStorageError("ANNAL_STORAGE", `could not open the key store ${DB_NAME} (${String(e)}); check IndexedDB is available`);
  }
  try {
    const tx = db.transaction(STORE, mode, { durability: "strict" });
    const result = await request(work(tx.objectStore(STORE)));
    await new Promise<void>((ok, fail) => {
      tx.oncomplete = () => ok();
      tx.onabort = tx.onerror = () => fail(tx.error);
    });
    return result;
  } catch (e) {
    throw new AnnalStorageError("ANNAL_STORAGE", `the key store ${DB_NAME} failed (${String(e)})`);
  } finally {
    db.close();
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0) {
    throw new AnnalValidationError("ANNAL_VALIDATION", "the store name must be a non-empty string", { field: "name" });
  }
}

/**
 * Keeps `key`, the key-encryption key of store `name`, for
 * {@link loadKeyEncryptionKey} (and `annalSync` in the service worker).
 *
 * @throws `ANNAL_VALIDATION` when `key` is not a non-extractable AES-GCM
 *   256 `CryptoKey` with usages encrypt and decrypt.
 */
export async function storeKeyEncryptionKey(name: string, key: CryptoKey): Promise<void> {
  checkName(name);
  if (typeof CryptoKey === "undefined" || !(key instanceof CryptoKey)) {
    throw new AnnalValidationError("ANNAL_VALIDATION", "key must be a CryptoKey", { field: "key" });
  }
  if (key.extractable) {
    throw new AnnalValidationError(
      "ANNAL_VALIDATION",
      "only a non-extractable CryptoKey may be kept: import or generate it with extractable false",
      { field: "key" },
    );
  }
  const algorithm = key.algorithm as AesKeyAlgorithm;
  if (algorithm.name !== "AES-GCM" || algorithm.length !== 256 || !key.usages.includes("encrypt") || !key.usages.includes("decrypt")) {
    throw new AnnalValidationError("ANNAL_VALIDATION", 'key must be { name: "AES-GCM", length: 256 } with usages encrypt and decrypt', { field: "key" });
  }
  await withStore("readwrite", (s) => s.put(key, name));
}

/** The key kept for store `name`, or `undefined`. */
export async function loadKeyEncryptionKey(name: string): Promise<CryptoKey | undefined> {
  checkName(name);
  const key = await withStore("readonly", (s) => s.get(name));
  return key instanceof CryptoKey ? key : undefined;
}

/** Forgets the key kept for store `name` (e.g. at logout). */
export async function forgetKeyEncryptionKey(name: string): Promise<void> {
  checkName(name);
  await withStore("readwrite", (s) => s.delete(name));
}
