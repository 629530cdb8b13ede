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

// What keysFrom.getAll(query, count) returns (keysFrom is the object store
// or one of its indexes), read as the keys first and then a get each, all
// in flight at once; resolves inside the last get's event, as requestDone.
// Chromium hands a getAll of large values back in one piece, after reading
// them all: 100 pages of 58 KB took about 56 ms that way and 23 ms as
// gets, whose values come back one by one while the next are read.
export function valuesByKey(store, keysFrom, query, count) {
  return new Promise((resolve, reject) => {
    const keys = keysFrom.getAllKeys(query, count);
    keys.onerror = () => reject(keys.error);
    keys.onsuccess = () => {
      const values = new Array(keys.result.length);
      let left = values.length;
      if (!left) return resolve(values);
      keys.result.forEach((key, i) => {
        const get = store.get(key);
        get.onerror = () => reject(get.error);
        get.onsuccess = () => {
          values[i] = get.result;
          if (--left === 0) resolve(values);
        };
      });
    };
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

// A pages record from its metadata as JSON text and its packed records:
// one parse instead of a call per string. The records are a view of wasm
// memory, so they are copied out.
export function pageValue(meta, records) {
  const page = JSON.parse(meta);
  page.records = records.slice();
  return page;
}

// The newest by_aggregate_head key of each stored aggregate id in ids, or
// null, in the order of ids; resolves [keys, gaveUp]. With range, first
// one key cursor over every head from the smallest id to the largest,
// given up past a few keys per id (RANGE_KEYS_EACH, RANGE_SLACK: gaveUp);
// else, or then, a backwards cursor each, all in flight at once, each
// answered by its first result, so none is queued after later requests. Strings compare by
// UTF-16 code units here as in IndexedDB, so min and max bound the range.
const RANGE_KEYS_EACH = 4;
const RANGE_SLACK = 16;
const headsOf = (id) => IDBKeyRange.bound([id], [id, []]);

export function newestHeads(index, ids, range) {
  return new Promise((resolve, reject) => {
    const failed = (request) => () => reject(request.error);
    const each = (gaveUp) => {
      const keys = ids.map(() => null);
      let left = ids.length;
      if (!left) resolve([keys, gaveUp]);
      ids.forEach((id, i) => {
        const request = index.openKeyCursor(headsOf(id), "prev");
        request.onerror = failed(request);
        request.onsuccess = () => {
          if (request.result) keys[i] = request.result.key;
          if (--left === 0) resolve([keys, gaveUp]);
        };
      });
    };
    if (!range || ids.length < 2) return each(false);
    const lo = ids.reduce((a, b) => (b < a ? b : a));
    const hi = ids.reduce((a, b) => (b > a ? b : a));
    const newest = new Map();
    let left = ids.length * RANGE_KEYS_EACH + RANGE_SLACK;
    const request = index.openKeyCursor(IDBKeyRange.bound([lo], [hi, []]));
    request.onerror = failed(request);
    request.onsuccess = () => {
      const cursor = request.result;
      if (!cursor) resolve([ids.map((id) => newest.get(id) ?? null), false]);
      else if (--left < 0) each(true);
      else {
        // In key order: an aggregate's last key is its newest.
        newest.set(cursor.key[0], cursor.key);
        cursor.continue();
      }
    };
  });
}
