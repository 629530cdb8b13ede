// Command-line flags of bench/run.mjs (documented at its top) and the
// workload sizes of each mode.

import { resolve } from "node:path";
import { ROOT } from "./paths.mjs";

/** Workload sizes: the for the full run, a few hundred events for the smoke run. */
const SIZES = {
  full: {
    appends: 1000,
    concurrent: 2048,
    batchTotal: 10_000,
    batchSizes: [100, 1000],
    store: 100_000,
    queries: 50,
    opens: 5,
    bigStore: 1_000_000,
    sizeEvents: 5000,
    settleDisk: true,
    sizeSingleEvents: 1000,
    cryptoEvents1k: 10_000,
    cryptoEvents64k: 256,
    webcrypto1k: 10_000,
    webcrypto64k: 1000,
    drain: 10_000,
    pull: 100_000,
  },
  smoke: {
    appends: 200,
    concurrent: 256,
    batchTotal: 1000,
    batchSizes: [100, 1000],
    store: 300,
    queries: 5,
    opens: 2,
    bigStore: 0,
    sizeEvents: 200,
    // Sizes are not checked in a smoke run: no waiting for LevelDB.
    settleDisk: false,
    sizeSingleEvents: 50,
    cryptoEvents1k: 200,
    cryptoEvents64k: 16,
    webcrypto1k: 100,
    webcrypto64k: 20,
    drain: 300,
    pull: 500,
  },
};

const USAGE = `usage: node bench/run.mjs [--smoke | --quick] [--runs N] [--big] [--no-postgres]
       [--only w1,w2] [--out DIR] [--user-data-dir DIR] [--port N] [--trial]
       [--cpu-profile DIR]`;

/** Parses `argv` into the options of a run; throws with the usage on a bad flag. */
export function parseOptions(argv) {
  const o = { mode: "full", runs: undefined, big: false, postgres: true, only: null, out: null, userDataDir: null, port: undefined, trial: false, cpuProfile: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    if (flag === "--smoke") o.mode = "smoke";
    else if (flag === "--quick") o.mode = "quick";
    else if (flag === "--runs") o.runs = positive(flag, value());
    else if (flag === "--big") o.big = true;
    else if (flag === "--no-postgres") o.postgres = false;
    else if (flag === "--only") o.only = value().split(",");
    else if (flag === "--out") o.out = resolve(value());
    else if (flag === "--user-data-dir") o.userDataDir = resolve(value());
    else if (flag === "--port") o.port = Number(value());
    else if (flag === "--trial") o.trial = true;
    else if (flag === "--cpu-profile") o.cpuProfile = resolve(value());
    else throw new Error(`unknown flag ${flag}\n${USAGE}`);
  }
  if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port < 65536)) throw new Error(`--port must be a port number\n${USAGE}`);
  const smoke = o.mode === "smoke";
  o.runs ??= smoke ? 1 : 3;
  if (smoke) {
    o.postgres = false;
    o.big = false;
  }
  // A profile's databases belong to an origin, so a reused profile is
  // checked on the same origin every time unless --port says otherwise.
  o.port ??= o.userDataDir ? DEFAULT_PROFILE_PORT : 0;
  o.sizes = { ...SIZES[smoke ? "smoke" : "full"] };
  if (o.mode === "quick") Object.assign(o.sizes, { store: 20_000, pull: 20_000, drain: 5000, batchTotal: 5000 });
  // Only a full run of every workload replaces the committed figures.
  const partial = o.mode !== "full" || o.only !== null || o.cpuProfile !== null;
  o.out ??= partial ? resolve(ROOT, "target/bench") : null;
  o.resultsFile = o.out ? resolve(o.out, "results.json") : resolve(ROOT, "bench/results.json");
  o.reportFile = o.out ? resolve(o.out, "BENCHMARKS.md") : resolve(ROOT, "BENCHMARKS.md");
  return o;
}

/** The page's port when a profile is reused (`--user-data-dir`) without `--port`. */
export const DEFAULT_PROFILE_PORT = 8642;

function positive(flag, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer\n${USAGE}`);
  return n;
}
