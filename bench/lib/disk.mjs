// Bytes on disk of one origin's IndexedDB in a Chromium profile: its
// LevelDB folder plus its blob folder (values above 64 KiB), as the
// browser leaves them. More exact than navigator.storage.estimate(),
// which the bench records next to it.

import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * The size once LevelDB has settled: the same total `stable` readings in
 * a row, `quietMs` apart. Right after a burst of writes, compactions hold
 * the same data twice (old and new table files) for a while, so a reading
 * then is up to twice too high; a single pause between two compactions
 * can look quiet, hence several readings.
 */
export async function settledIndexedDbBytes(profileDir, port, { quietMs = 700, stable = 3, maxMs = 30_000 } = {}) {
  const deadline = Date.now() + maxMs;
  let last = await originIndexedDbBytes(profileDir, port);
  for (let same = 1; same < stable && Date.now() < deadline; ) {
    await new Promise((ok) => setTimeout(ok, quietMs));
    const now = await originIndexedDbBytes(profileDir, port);
    same = now === last ? same + 1 : 1;
    last = now;
  }
  return last;
}

/** Sum of file sizes under the IndexedDB folders of http://127.0.0.1:`port` in `profileDir`. */
export async function originIndexedDbBytes(profileDir, port) {
  const base = join(profileDir, "Default", "IndexedDB");
  const entries = await readdir(base).catch(() => []);
  let total = 0;
  for (const e of entries.filter((n) => n.startsWith(`http_127.0.0.1_${port}.indexeddb`))) total += await treeBytes(join(base, e));
  return total;
}

async function treeBytes(path) {
  const s = await stat(path).catch(() => null);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const e of await readdir(path)) total += await treeBytes(join(path, e));
  return total;
}
