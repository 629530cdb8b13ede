// One benchmark session: the page servers, one Chromium on one profile,
// the bench page in each origin, and the guarantee about the profile's
// data: every database name the run will use is checked in every origin
// before anything is created (a name that exists and holds data stops
// the run, untouched), and at the end only the databases the bench
// created are deleted.

import { binaryVersion, browserVersion, launchBrowser, openBenchPage, startPageServer } from "./browser.mjs";

/** The run stopped before creating anything because these databases hold data. */
export class RefusedError extends Error {
  constructor(found) {
    const list = found.map(({ origin, name }) => `"${name}" (${origin})`).join(", ");
    super(
      `refusing to run: IndexedDB database ${list} already exists in this browser profile and holds data. ` +
        `The bench deletes nothing it did not create; use another --user-data-dir, or remove the database yourself.`,
    );
    this.name = "RefusedError";
    this.found = found;
  }
}

/**
 * Starts the session. `origins` maps a key to the database names used in
 * that origin: `main` is the page most workloads run in; others (the disk
 * size subjects) get an origin each, so their IndexedDB folder holds one
 * database. Resolves with the session, or rejects with RefusedError.
 */
export async function startSession({ userDataDir, port, origins }) {
  const servers = {};
  const pages = {};
  let browser = null;
  const close = async () => {
    await browser?.close().catch(() => {});
    await Promise.all(Object.values(servers).map((s) => s.close()));
  };
  try {
    for (const key of Object.keys(origins)) servers[key] = await startPageServer({ port: key === "main" ? port : 0 });
    browser = await launchBrowser({ userDataDir });
    const refused = [];
    for (const [key, names] of Object.entries(origins)) {
      pages[key] = await openBenchPage(browser.context, servers[key].url);
      const r = await pages[key].evaluate((n) => window.bench.guard.preflight(n), names);
      refused.push(...r.refused.map((name) => ({ origin: servers[key].url, name })));
    }
    if (refused.length) throw new RefusedError(refused);
    // Only the main page stays open; the others are opened again when used.
    for (const key of Object.keys(origins)) if (key !== "main") await pages[key].close();
    const version = await browserVersion(browser.context, pages.main);
    return {
      /** How page/memory.js reached the wasm memory, or why it could not. */
      wasmMemory: await pages.main.evaluate(() => window.benchMemory),
      profileDir: browser.profileDir,
      browser: { binary: await binaryVersion(), product: version.product, userAgent: version.userAgent, js: version.jsVersion },
      main: { page: pages.main, url: servers.main.url, port: servers.main.port },
      server: (key) => servers[key],
      /** A fresh tab of origin `key`, for the size workload. */
      openOrigin: (key) => openBenchPage(browser.context, servers[key].url),
      /** Deletes what the bench created in `page`'s origin; resolves with the names deleted. */
      cleanup: (page) => page.evaluate(() => window.bench.guard.cleanup()),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** `bench.<path>(...args)` in `page`. */
export function call(page, path, ...args) {
  return page.evaluate(([p, a]) => window.benchCall(p, a), [path, args]);
}

/** An argument that the page expands into events `from`.. `from + n - 1` (see page/main.js). */
export function eventsArg(from, n, shape) {
  return { $events: { from, n, shape } };
}
