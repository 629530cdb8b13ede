// The bench's promise about a browser profile: it never writes to a
// database that held data before it started, and it deletes only the
// databases it created. Every database it uses is named with a `bench-`
// prefix (annal's are `annal:bench-…`) and goes through `claim()`.

const PREFIXES = ["bench-", "annal:bench-"];
const claimed = new Set();
/** Names the pre-flight check found present but empty: the bench may delete and reuse them. */
const reusable = new Set();

const request = (r) =>
  new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });

/**
 * Checks `names` against the databases of this origin, before anything is
 * created. Resolves with `{ refused }`: the names that exist and hold at
 * least one record (empty when all is well). Opens existing databases
 * read-only and changes nothing.
 */
export async function preflight(names) {
  for (const name of names) if (!PREFIXES.some((p) => name.startsWith(p))) throw new Error(`bench bug: database ${name} lacks the bench- prefix`);
  const present = new Set((await indexedDB.databases()).map((d) => d.name));
  const refused = [];
  for (const name of names.filter((n) => present.has(n))) {
    if (await holdsData(name)) refused.push(name);
    else reusable.add(name);
  }
  return { refused };
}

/** Whether database `name` has any record in any object store. */
async function holdsData(name) {
  const open = indexedDB.open(name);
  // It was listed a moment ago; if it vanished since, do not create it.
  open.onupgradeneeded = () => open.transaction.abort();
  const db = await request(open).catch(() => null);
  if (!db) return false;
  try {
    const stores = [...db.objectStoreNames];
    if (stores.length === 0) return false;
    const tx = db.transaction(stores, "readonly");
    const counts = await Promise.all(stores.map((s) => request(tx.objectStore(s).count())));
    return counts.some((c) => c > 0);
  } finally {
    db.close();
  }
}

/**
 * Registers `name` as created by the bench, before it is created. An empty
 * leftover of the same name (from an interrupted run) is deleted first;
 * anything else that exists was never checked, which is a bench bug.
 */
export async function claim(name) {
  if (!PREFIXES.some((p) => name.startsWith(p))) throw new Error(`bench bug: database ${name} lacks the bench- prefix`);
  if (!claimed.has(name)) {
    const exists = (await indexedDB.databases()).some((d) => d.name === name);
    if (exists && !reusable.has(name)) throw new Error(`bench bug: database ${name} exists and was not checked by preflight()`);
    if (exists) await drop(name, { force: true });
    reusable.delete(name);
    claimed.add(name);
  }
  return name;
}

/**
 * Deletes a database the bench created. Open connections close on the
 * `versionchange` event (annal, Dexie and the raw baselines all do), so the
 * delete is not blocked.
 */
export async function drop(name, { force = false } = {}) {
  if (!force && !claimed.has(name)) throw new Error(`bench bug: refusing to delete ${name}, which the bench did not create`);
  const r = indexedDB.deleteDatabase(name);
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`deleting ${name} stayed blocked by an open connection`)), 30_000);
    r.onsuccess = () => (clearTimeout(timer), ok());
    r.onerror = () => (clearTimeout(timer), fail(r.error));
  });
  claimed.delete(name);
}

/** Deletes every database the bench created and still has; resolves with their names. */
export async function cleanup() {
  const names = [...claimed];
  for (const name of names) await drop(name);
  return names;
}

/** The names of this origin's databases (to show that only bench- ones came and went). */
export async function databaseNames() {
  return (await indexedDB.databases()).map((d) => d.name).sort();
}
