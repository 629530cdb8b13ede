// The packed npm package, used as apps use it: in a page, a dedicated
// worker and a service worker.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useBrowser } from "./harness.mjs";

const env = useBrowser();

// Runs the same scenario in whatever global `annal` lives in.
async function scenario(name) {
  const { EventStore } = self.annal;
  await EventStore.destroy(name);
  const store = await EventStore.open({ name, userId: "nurse-1", tenantId: "study-7" });
  const first = await store.append({
    aggregateType: "diary",
    aggregateId: "patient-1",
    eventType: "symptom-recorded",
    payload: { severity: 3, note: "Kopfschmerzen — 頭痛", skipped: undefined },
    correlationId: "visit-1",
  });
  await store.appendBatch(
    Array.from({ length: 20 }, (_, i) => ({
      aggregateType: "diary",
      aggregateId: `patient-${(i % 2) + 1}`,
      eventType: i % 2 ? "dose-taken" : "symptom-recorded",
      payload: { i },
    })),
  );
  const iterated = [];
  for await (const e of store.iterate({ eventType: "dose-taken" })) iterated.push(e.deviceSeq);
  const since = new Date(Date.now() - 60_000);
  const result = {
    first,
    identity: store.identity,
    count: (await store.events()).length,
    iterated,
    recent: (await store.events({ since, limit: 5, reverse: true })).map((e) => e.deviceSeq),
    aggregate: await store.aggregate("patient-1"),
    head: await store.head(),
    verify: await store.verify(),
    exportType: (await store.exportAudit()).type,
  };
  store.close();
  return result;
}

function check(r) {
  assert.equal(r.first.deviceSeq, 1);
  assert.equal(r.first.format, "annal/1");
  assert.equal(r.first.tenantId, "study-7");
  assert.equal(r.first.userId, "nurse-1");
  assert.equal(r.first.correlationId, "visit-1");
  assert.equal(r.first.causationId, undefined);
  assert.deepEqual(r.first.payload, { note: "Kopfschmerzen — 頭痛", severity: 3 });
  assert.equal(r.first.prevHash, "0".repeat(64));
  assert.match(r.first.hash, /^[0-9a-f]{64}$/);
  assert.match(r.first.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.match(r.first.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(r.identity.deviceId, r.first.deviceId);
  assert.equal(r.count, 21);
  assert.deepEqual(r.iterated, [3, 5, 7, 9, 11, 13, 15, 17, 19, 21]);
  assert.deepEqual(r.recent, [21, 20, 19, 18, 17]);
  assert.equal(r.aggregate.version, 11);
  assert.equal(r.aggregate.events.length, 11);
  assert.equal(r.head.deviceSeq, 21);
  assert.deepEqual(r.verify, { ok: true, checked: 21 });
  assert.equal(r.exportType, "application/json");
}

describe("the package", () => {
  test("works in a page", async () => {
    check(await env.page.evaluate(scenario, "api-page"));
  });

  test("works in a dedicated worker", async () => {
    const ready = env.page.waitForEvent("worker");
    await env.page.evaluate(() => {
      window.testWorker = new Worker("/worker.js", { type: "module" });
    });
    const worker = await ready;
    await worker.evaluate(() => new Promise((ok) => (self.annalReady ? ok() : setTimeout(ok, 500))));
    check(await worker.evaluate(scenario, "api-worker"));
  });

  test("works in a service worker", async () => {
    const ready = env.context.waitForEvent("serviceworker");
    await env.page.evaluate(() => navigator.serviceWorker.register("/sw.js", { type: "module", scope: "/" }));
    const sw = env.context.serviceWorkers()[0] ?? (await ready);
    await sw.evaluate(() => new Promise((ok) => (self.annalReady ? ok() : setTimeout(ok, 500))));
    check(await sw.evaluate(scenario, "api-sw"));
  });

  test("ships exact types", async () => {
    const { readFile } = await import("node:fs/promises");
    const { PACKAGE_DIR } = await import("./harness.mjs");
    const dts = await readFile(`${PACKAGE_DIR}/dist/store.d.ts`, "utf8");
    assert.match(dts, /append\(event: AppendEvent\): Promise<StoredEvent>;/);
    assert.doesNotMatch(dts, /: any\b/);
    const pkg = JSON.parse(await readFile(`${PACKAGE_DIR}/package.json`, "utf8"));
    assert.equal(pkg.type, "module");
    assert.equal(pkg.exports["."].types, "./dist/index.d.ts");
  });
});
