// The benchmark page's servers and the Chromium that loads it: the flags
// of the package tests (tests/js/harness.mjs), on a persistent profile so
// that a given profile can be reused (--user-data-dir) and its IndexedDB
// folder measured on disk.

import { chromium } from "playwright-core";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../../www/serve.mjs";
import { CHROMIUM, CHROMIUM_ARGS } from "../../tests/js/harness.mjs";
import { DEXIE_DIR, PACKAGE_DIR, PAGE_DIR } from "./paths.mjs";

/** Serves the bench page at /, the built package at /annal/ and Dexie at /dexie/ on 127.0.0.1:`port` (0: a free one). */
export async function startPageServer({ port = 0 } = {}) {
  const s = await serve({ port, mounts: { "/": PAGE_DIR, "/annal/": PACKAGE_DIR, "/dexie/": DEXIE_DIR } });
  return {
    url: s.url,
    port: s.port,
    close: () => {
      s.server.closeAllConnections();
      return new Promise((ok) => s.server.close(ok));
    },
  };
}

/**
 * Chromium on profile `userDataDir`, or on a fresh temporary profile that
 * `close()` removes. `--enable-precise-memory-info` makes
 * `performance.memory` exact instead of bucketed, and `--expose-gc` lets
 * the memory workload read the live heap after a collection.
 */
export async function launchBrowser({ userDataDir } = {}) {
  const profileDir = userDataDir ?? (await mkdtemp(join(tmpdir(), "annal-bench-profile-")));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, "--enable-precise-memory-info", "--js-flags=--expose-gc"],
  });
  return {
    context,
    profileDir,
    async close() {
      await context.close();
      if (!userDataDir) await rm(profileDir, { recursive: true, force: true });
    },
  };
}

/** A tab with the bench page of `url` loaded (`window.bench`). */
export async function openBenchPage(context, url) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`bench page error (${url}):`, e));
  await page.goto(`${url}/index.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 60_000 });
  return page;
}

/** The browser's product and version, e.g. `HeadlessChrome/156.0.8078.114`. */
export async function browserVersion(context, page) {
  const cdp = await context.newCDPSession(page);
  try {
    return await cdp.send("Browser.getVersion");
  } finally {
    await cdp.detach();
  }
}

/** What the Chromium binary says of itself, e.g. `Chromium 156.0.8078.114 built on Debian GNU/Linux 12 (bookworm)`. */
export function binaryVersion() {
  return new Promise((ok) => execFile(CHROMIUM, ["--version"], (error, stdout) => ok(error ? null : stdout.trim())));
}
