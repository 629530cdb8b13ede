// The IndexedDB calls Rust cannot make through web-sys alone.
// Kept tiny: everything else is Rust.

// IDBDatabase.transaction with { durability }, which web-sys only exposes
// behind its unstable APIs.
export function openTransaction(db, names, mode, durability) {
  return db.transaction(names, mode, { durability });
}

// Resolves with request.result, or rejects with request.error. The promise
// settles inside the request's event, so Rust code awaiting it resumes in
// the same microtask checkpoint, while the transaction is still active.
export function requestDone(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

// Asks the browser to commit now rather than after the last request's
// event has been delivered back to script. Older browsers lack commit().
export function commitNow(tx) {
  if (typeof tx.commit === "function") tx.commit();
}

// Resolves when the transaction commits; rejects with the reason it aborted.
// A transaction annal aborts itself is not awaited, so the rejection is
// marked handled here rather than reported as an uncaught error.
export function transactionDone(tx) {
  const done = new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () =>
      reject(tx.error || new DOMException("The transaction was aborted.", "AbortError"));
  });
  done.catch(() => {});
  return done;
}
