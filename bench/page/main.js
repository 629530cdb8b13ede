// The benchmark page: every subject's module, reachable from the Node
// driver (bench/run.mjs) as `window.bench`, and `benchCall(path, args)`,
// through which the driver calls them.

import * as annal from "./annal.js";
import * as dexie from "./dexie.js";
import * as guard from "./guard.js";
import * as memory from "./memory.js";
import * as raw from "./raw_idb.js";
import * as records from "./records.js";
import * as storage from "./storage.js";
import * as sync from "./sync.js";
import * as webcrypto from "./webcrypto.js";

window.bench = { annal, dexie, guard, memory, raw, records, storage, sync, webcrypto };

/**
 * Calls `bench[module][function](...args)`. An argument `{ $events: { from,
 * n, shape } }` becomes those events, made here: a store of 100,000 events
 * would be 100 MB through the DevTools protocol.
 */
window.benchCall = (path, args) => {
  const [mod, fn] = path.split(".");
  const f = window.bench[mod]?.[fn];
  if (typeof f !== "function") throw new Error(`no bench function ${path}`);
  const expand = (a) => (a && typeof a === "object" && a.$events ? records.events(a.$events.from, a.$events.n, a.$events.shape) : a);
  return f(...args.map(expand));
};

window.benchMemory = await memory.attach();
window.benchReady = true;
