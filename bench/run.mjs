// annal's benchmarks (issue 6): annal next to raw IndexedDB and Dexie in
// one headless Chromium session, written to bench/results.json and the
// generated block of BENCHMARKS.md. `make bench` builds, then runs this.
//
//   node bench/run.mjs [flags]
//
//   --runs N             repetitions of every workload (default 3; 1 with --smoke)
//   --smoke              a few hundred events per workload, 1 run, no PostgreSQL, no
//                        large stores: checks that every workload works and counts
//                        right, never time (tests/js/bench_smoke.test.mjs runs it)
//   --quick              full workloads on smaller stores (20,000 instead of 100,000
//                        events; 5,000-event drains): for trying changes, not for the table
//   --big                also iterate a 1,000,000-event store for the memory figure
//                        (the target). Building it (appendBatch of 1,000) takes
//                        about 6 minutes on this 2-core machine, each run's iteration
//                        under a minute, and it needs ~1.5 GB of disk: hence a flag
//   --no-postgres        sync against SQLite only (no PostgreSQL cluster)
//   --only a,b           only these workloads (append, concurrent, batch, scan, verify,
//                        open, size, crypto, sync)
//   --out DIR            write results.json and BENCHMARKS.md into DIR. Default: a
//                        full run of every workload writes bench/results.json and
//                        ./BENCHMARKS.md; --smoke, --quick and --only write into
//                        target/bench/, so they never replace the committed figures
//   --user-data-dir DIR  run in this Chromium profile instead of a fresh temporary one
//   --port N             serve the page on 127.0.0.1:N (default: a free port, or 8642
//                        with --user-data-dir: IndexedDB belongs to an origin, so a
//                        reused profile is checked on the same one every time)
//   --trial              mark the figures as a trial run (a busy machine)
//   --cpu-profile DIR    write a CPU profile of every annal call into DIR and print
//                        where its time went (bench/lib/profile.mjs); profiling slows
//                        the page, so these figures are not for the table
//
// The profile's data is safe: before creating anything, the bench looks up
// every database name it will use (all `bench-…`, annal's `annal:bench-…`)
// in every origin it will use, and stops, touching nothing, if one exists
// and holds data. At the end it deletes only the databases it created.
//
// A default run took 14 minutes on this 2-core machine while other builds
// and tests kept it busy (load average about 4); the smoke run under a minute.

import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckError } from "./lib/checks.mjs";
import { Fixtures, fixtureDatabases } from "./lib/fixtures.mjs";
import { load, machine } from "./lib/machine.mjs";
import { parseOptions } from "./lib/options.mjs";
import { PACKAGE_DIR, ROOT } from "./lib/paths.mjs";
import { writeReport, writeResults } from "./lib/report.mjs";
import { call, eventsArg, startSession } from "./lib/session.mjs";
import { profiledCall } from "./lib/profile.mjs";
import { summarize } from "./lib/summary.mjs";
import { WORKLOADS } from "./lib/workloads/index.mjs";

export { RefusedError } from "./lib/session.mjs";
export { CheckError };

/** Every database name a run with `options` may create, by origin key (`main`, `size-…`). */
export function plannedDatabases(options) {
  const origins = { main: fixtureDatabases(options) };
  for (const w of selected(options)) {
    for (const [key, names] of Object.entries(w.databases(options))) origins[key] = [...(origins[key] ?? []), ...names];
  }
  return origins;
}

function selected(options) {
  const unknown = (options.only ?? []).filter((id) => !WORKLOADS.some((w) => w.id === id));
  if (unknown.length) throw new Error(`unknown workload ${unknown.join(", ")}; known: ${WORKLOADS.map((w) => w.id).join(", ")}`);
  return WORKLOADS.filter((w) => !options.only || options.only.includes(w.id));
}

/**
 * Runs the bench with command-line `argv`; resolves with the results
 * (also written to the files). `log` receives progress lines.
 */
export async function main(argv = [], { log = (line) => console.error(line) } = {}) {
  const options = parseOptions(argv);
  const workloads = selected(options);
  const started = Date.now();
  const loadStart = load();
  const session = await startSession({ userDataDir: options.userDataDir, port: options.port, origins: plannedDatabases(options) });
  const measured = {};
  let fixtures;
  let leftovers;
  let remaining;
  try {
    const ctx = {
      options,
      sizes: options.sizes,
      session,
      log,
      call: (path, ...args) => call(session.main.page, path, ...args),
      ev: eventsArg,
    };
    if (options.cpuProfile) ctx.call = await profiledCall(session.main.page, options.cpuProfile, ctx.call, log);
    fixtures = ctx.fixtures = new Fixtures(ctx);
    for (const w of workloads) {
      log(`${w.title}`);
      const runs = [];
      await w.setup?.(ctx);
      try {
        for (let r = 0; r < options.runs; r++) {
          const t0 = Date.now();
          const { m, checks } = await w.run(ctx, r);
          runs.push({ run: r + 1, seconds: (Date.now() - t0) / 1000, m, checks: checks.length });
          log(`  run ${r + 1}/${options.runs}: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${checks.length} checks passed`);
        }
      } finally {
        await w.teardown?.(ctx);
      }
      measured[w.id] = { title: w.title, runs };
      // The large stores are read by scan, verify and open; drop them after the last of those.
      if (!workloads.slice(workloads.indexOf(w) + 1).some((x) => ["scan", "verify", "open"].includes(x.id))) await fixtures.dropAll();
    }
  } finally {
    leftovers = await session.cleanup(session.main.page).catch((e) => ({ error: String(e) }));
    remaining = await session.main.page.evaluate(() => window.bench.guard.databaseNames()).catch(() => null);
    await session.close();
  }
  const results = {
    schema: "annal-bench/1",
    date: new Date(started).toISOString(),
    seconds: (Date.now() - started) / 1000,
    mode: options.mode,
    runs: options.runs,
    trial: options.trial,
    flags: argv,
    sizes: options.sizes,
    machine: await machine(),
    load: { start: loadStart, end: load() },
    browser: session.browser,
    versions: await versions(),
    wasmMemory: session.wasmMemory,
    fixtures: fixtures.builds,
    workloads: measured,
    summary: summarize(workloads, measured, { timed: options.mode !== "smoke" }),
    cleanup: { deletedAtEnd: leftovers, databasesLeftInMainOrigin: remaining },
  };
  await writeResults(options.resultsFile, results);
  await writeReport(options.reportFile, results, workloads);
  log(`written ${options.resultsFile} and ${options.reportFile}`);
  return results;
}

async function versions() {
  const json = async (p) => JSON.parse(await readFile(p, "utf8"));
  return {
    annal: (await json(resolve(PACKAGE_DIR, "package.json"))).version,
    dexie: (await json(resolve(ROOT, "node_modules/dexie/package.json"))).version,
    playwright: (await json(resolve(ROOT, "node_modules/playwright-core/package.json"))).version,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e) => {
      console.error(e instanceof CheckError || e.name === "RefusedError" ? e.message : e);
      process.exit(1);
    },
  );
}
