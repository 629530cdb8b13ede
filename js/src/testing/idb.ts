/** Minimal promise wrappers over raw IndexedDB, for reading and editing a store behind annal's back. */

export function idbRequest<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((ok, fail) => {
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
}

/** Opens the database of store `name` without upgrading it. */
export function openRaw(name: string): Promise<IDBDatabase> {
  return new Promise((ok, fail) => {
    const req = indexedDB.open(`annal:${name}`);
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
    // A database that does not exist yet would be created empty: refuse instead.
    req.onupgradeneeded = () => {
      req.transaction?.abort();
      fail(new Error(`there is no store named ${JSON.stringify(name)}`));
    };
  });
}

/** Resolves when `tx` commits. */
export function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((ok, fail) => {
    tx.oncomplete = () => ok();
    tx.onabort = () => fail(tx.error ?? new Error("transaction aborted"));
    tx.onerror = () => fail(tx.error ?? new Error("transaction failed"));
  });
}
