// The benchmark harness (bench/run.mjs) in smoke mode: every workload
// runs on a few hundred events and passes its correctness checks; the
// results have their shape; and the bench keeps its promises about a
// browser profile it is pointed at: it refuses to touch a database of its
// own names that holds data, leaves other databases alone, and deletes
// every one it created. Output goes to temporary folders, never over
// bench/results.json or BENCHMARKS.md. Never asserts a time.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { main, plannedDatabases } from "../../bench/run.mjs";
import { launchBrowser, startPageServer } from "../../bench/lib/browser.mjs";
import { parseOptions } from "../../bench/lib/options.mjs";
import { ROOT, tempDir } from "./harness.mjs";

const WORKLOADS = ["append", "concurrent", "batch", "scan", "verify", "open", "size", "crypto", "sync"];

/** Runs `f(page)` in a page of the bench's own server on `port`, in Chromium on `profileDir`, and closes both. */
async function inProfile(profileDir, port, f) {
  const server = await startPageServer({ port });
  const browser = await launchBrowser({ userDataDir: profileDir });
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => window.benchReady === true);
    return await f(page);
  } finally {
    await browser.close();
    await server.close();
  }
}

/** A free loopback port: the origin of a profile's databases. */
async function freePort() {
  const s = await startPageServer();
  await s.close();
  return s.port;
}

/** The names of the origin's databases, and the records of `my-app` if it is there. */
function lookAround(page) {
  return page.evaluate(async () => {
    const names = (await indexedDB.databases()).map((d) => d.name).sort();
    let notes = null;
    if (names.includes("my-app")) {
      const db = await new Promise((ok, fail) => Object.assign(indexedDB.open("my-app"), { onsuccess: (e) => ok(e.target.result), onerror: (e) => fail(e.target.error) }));
      notes = await new Promise((ok) => (db.transaction("notes").objectStore("notes").getAll().onsuccess = (e) => ok(e.target.result)));
      db.close();
    }
    return { names, notes };
  });
}

async function fileState(path) {
  const s = await stat(path).catch(() => null);
  return s && { size: s.size, mtimeMs: s.mtimeMs };
}

test("smoke run: every workload runs and checks out, results have their shape, other databases survive and no bench- database is left", { timeout: 600_000 }, async () => {
  const out = await tempDir("annal-bench-out-");
  const profile = await tempDir("annal-bench-profile-");
  const committed = { results: await fileState(join(ROOT, "bench/results.json")), report: await fileState(join(ROOT, "BENCHMARKS.md")) };
  try {
    const port = await freePort();
    // An app's own database in the same origin the bench will use.
    await inProfile(profile.dir, port, (page) =>
      page.evaluate(async () => {
        const open = indexedDB.open("my-app", 1);
        open.onupgradeneeded = () => open.result.createObjectStore("notes", { keyPath: "id" });
        const db = await new Promise((ok) => (open.onsuccess = () => ok(open.result)));
        const tx = db.transaction("notes", "readwrite");
        tx.objectStore("notes").put({ id: 1, text: "keep me" });
        await new Promise((ok) => (tx.oncomplete = ok));
        db.close();
      }),
    );

    const results = await main(["--smoke", "--out", out.dir, "--user-data-dir", profile.dir, "--port", String(port)], { log: () => {} });

    const onDisk = JSON.parse(await readFile(join(out.dir, "results.json"), "utf8"));
    assert.deepEqual(onDisk, JSON.parse(JSON.stringify(results)), "results.json is what main() resolved with");
    assert.equal(onDisk.schema, "annal-bench/1");
    assert.equal(onDisk.mode, "smoke");
    assert.equal(onDisk.runs, 1);
    assert.ok(!Number.isNaN(Date.parse(onDisk.date)));
    assert.ok(onDisk.machine.cpu && onDisk.machine.cores > 0 && onDisk.machine.ramBytes > 0);
    assert.match(onDisk.browser.product, /Chrom/);
    assert.deepEqual(Object.keys(onDisk.workloads), WORKLOADS, "every workload ran");
    for (const id of WORKLOADS) {
      const { runs } = onDisk.workloads[id];
      assert.equal(runs.length, 1, `${id}: one run`);
      assert.ok(runs[0].checks > 0, `${id}: its checks ran`);
    }
    const m = (id) => onDisk.workloads[id].runs[0].m;
    assert.deepEqual(m("verify").plain.report, { ok: true, checked: onDisk.sizes.store }, "annal's verify() is ok");
    assert.deepEqual(m("verify").encrypted.report, { ok: true, checked: onDisk.sizes.store });
    assert.equal(m("append").plain.latency.n, onDisk.sizes.appends);
    assert.equal(m("sync").sqlite.drain.events, onDisk.sizes.drain, "the queue drained");
    assert.equal(m("sync").sqlite.pull.events, onDisk.sizes.pull, "the pull took the whole ledger");
    assert.equal(m("sync").sqlite.node.events, onDisk.sizes.drain, "the Node client pushed its events");
    assert.equal(m("sync").postgres, undefined, "no PostgreSQL in smoke mode");
    for (const list of ["figures", "ratios", "targets"]) assert.ok(onDisk.summary[list].length > 0, `summary.${list}`);
    for (const f of onDisk.summary.figures) assert.deepEqual(Object.keys(f).sort(), ["better", "id", "label", "max", "median", "min", "unit", "values", "workload"]);
    assert.ok(onDisk.summary.targets.every((t) => t.status === "not evaluated"), "a smoke run judges no target");
    assert.deepEqual(onDisk.cleanup.databasesLeftInMainOrigin, ["my-app"]);

    const report = await readFile(join(out.dir, "BENCHMARKS.md"), "utf8");
    assert.match(report, /<!-- bench:begin/);
    assert.match(report, /<!-- bench:end -->/);
    assert.match(report, /## Findings/);
    assert.match(report, /### Targets/);

    const after = await inProfile(profile.dir, port, lookAround);
    assert.deepEqual(after.names, ["my-app"], "no bench- database is left, and my-app is still there");
    assert.deepEqual(after.notes, [{ id: 1, text: "keep me" }]);
    assert.deepEqual({ results: await fileState(join(ROOT, "bench/results.json")), report: await fileState(join(ROOT, "BENCHMARKS.md")) }, committed, "the committed results are untouched");
  } finally {
    await out.cleanup();
    await profile.cleanup();
  }
});

test("the bench refuses to run on a profile where one of its databases holds data, and changes nothing", { timeout: 120_000 }, async () => {
  const out = await tempDir("annal-bench-out-");
  const profile = await tempDir("annal-bench-profile-");
  const name = "annal:bench-append-plain";
  assert.ok(plannedDatabases(parseOptions(["--smoke"])).main.includes(name), `${name} is a name the bench uses`);
  try {
    const port = await freePort();
    const seed = (page) =>
      page.evaluate(async () => {
        const { EventStore } = await import("/annal/dist/index.js");
        const store = await EventStore.open({ name: "bench-append-plain", userId: "someone" });
        await store.append({ aggregateType: "diary", aggregateId: "patient-1", eventType: "noted", payload: { keep: true } });
        store.close();
      });
    await inProfile(profile.dir, port, seed);

    await assert.rejects(main(["--smoke", "--out", out.dir, "--user-data-dir", profile.dir, "--port", String(port)], { log: () => {} }), (e) => {
      assert.equal(e.name, "RefusedError");
      assert.match(e.message, /refusing to run/);
      assert.ok(e.message.includes(`"${name}"`), e.message);
      return true;
    });

    const after = await inProfile(profile.dir, port, async (page) => ({
      ...(await lookAround(page)),
      events: await page.evaluate(async () => {
        const { EventStore } = await import("/annal/dist/index.js");
        const store = await EventStore.open({ name: "bench-append-plain", userId: "someone" });
        const events = (await store.events()).map((e) => e.payload);
        store.close();
        return events;
      }),
    }));
    assert.deepEqual(after.names, [name], "nothing was created or deleted");
    assert.deepEqual(after.events, [{ keep: true }], "the event is still there");
    await assert.rejects(stat(join(out.dir, "results.json")), "no results were written");
  } finally {
    await out.cleanup();
    await profile.cleanup();
  }
});
