// Shared helpers for the package tests: a loopback server for the packed
// package and test pages, and headless Chromium through playwright-core.

import { chromium } from "playwright-core";
import { after, before } from "node:test";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../../www/serve.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const PACKAGE_DIR = join(ROOT, "target/npm/package");
export const VERIFY_BIN = join(ROOT, "target/release/annal-verify");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** The flags every Chromium in these tests runs with. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Serves the test pages at / and the packed package at /annal/. */
export async function startServer() {
  return serve({ mounts: { "/": join(ROOT, "tests/js/pages"), "/annal/": PACKAGE_DIR } });
}

/** A fresh headless Chromium with a fresh profile. */
export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** A page of `url` with the package loaded as `window.annal` (and `window.testing`). */
export async function openPage(context, url, path = "/index.html") {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(url + path);
  await page.waitForFunction(() => window.annalReady === true);
  return page;
}

/**
 * Chromium started by hand on a given profile, so a test can SIGKILL it the
 * way a crash or a power cut ends a browser, then start it again on the
 * same profile.
 */
export async function launchKillable(profileDir) {
  const proc = spawn(CHROMIUM, [...CHROMIUM_ARGS, `--user-data-dir=${profileDir}`, "--remote-debugging-port=0", "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"],
    // Its own process group, so the kill takes every Chromium process at once.
    detached: true,
  });
  const endpoint = await new Promise((ok, fail) => {
    let err = "";
    const timer = setTimeout(() => fail(new Error(`chromium did not start: ${err}`)), 30000);
    proc.stderr.on("data", (d) => {
      err += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    proc.once("exit", (code) => fail(new Error(`chromium exited with ${code}: ${err}`)));
  });
  const browser = await chromium.connectOverCDP(endpoint);
  return {
    browser,
    context: browser.contexts()[0],
    kill: () =>
      new Promise((ok) => {
        proc.once("exit", ok);
        process.kill(-proc.pid, "SIGKILL");
      }),
  };
}

/** A temporary folder, removed by the returned cleanup. */
export async function tempDir(prefix) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export { readFile };

/**
 * Registers before/after hooks for a test file: a server, a browser, a
 * context and a page with the package loaded. Fields are filled in before
 * the first test runs.
 */
export function useBrowser() {
  const env = {};
  before(async () => {
    env.server = await startServer();
    env.url = env.server.url;
    env.browser = await launch();
    env.context = await env.browser.newContext();
    env.page = await openPage(env.context, env.url);
  });
  after(async () => {
    await env.browser?.close();
    env.server?.server.close();
  });
  return env;
}
