// Where things are. The package and the binaries are where the package
// tests find them (tests/js/harness.mjs), built by `make build`.

import { join } from "node:path";
import { PACKAGE_DIR, ROOT, SERVER_BIN } from "../../tests/js/harness.mjs";

export { PACKAGE_DIR, ROOT, SERVER_BIN };
export const PAGE_DIR = join(ROOT, "bench/page");
export const DEXIE_DIR = join(ROOT, "node_modules/dexie/dist");
export const SERVER_RESULTS = join(ROOT, "bench/server-results.json");
