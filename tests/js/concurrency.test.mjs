// Several contexts appending to one store at once: two tabs, and a tab with
// a dedicated worker. Each appends 500 events, all starting together behind
// a barrier. The chain must not fork: device_seq has no gaps or duplicates,
// the appends really interleaved, and verify() is ok.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, startServer } from "./harness.mjs";

const EACH = 500;
let server, browser, context;

before(async () => {
  server = await startServer();
  browser = await launch();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  server?.server.close();
});

// Waits for "go" on a BroadcastChannel, then appends EACH events one by one.
async function appendAfterBarrier([name, writer, each]) {
  const store = await annal.EventStore.open({ name, userId: "u" });
  await new Promise((ok) => {
    const channel = new BroadcastChannel(`barrier-${name}`);
    channel.onmessage = () => (channel.close(), ok());
    channel.postMessage(`ready-${writer}`);
  });
  const seqs = [];
  for (let i = 0; i < each; i++) {
    const e = await store.append({ aggregateType: "t", aggregateId: `${writer}-${i % 7}`, eventType: "e", payload: { writer, i } });
    seqs.push(e.deviceSeq);
  }
  store.close();
  return seqs;
}

async function releaseWhenReady(page, name, writers) {
  await page.evaluate(
    ([name, writers]) =>
      new Promise((ok) => {
        const channel = new BroadcastChannel(`barrier-${name}`);
        const ready = new Set();
        channel.onmessage = (m) => {
          ready.add(m.data);
          if (ready.size === writers) {
            channel.postMessage("go");
            channel.close();
            ok();
          }
        };
      }),
    [name, writers],
  );
}

async function checkInterleaved(page, name, seqsA, seqsB) {
  const all = [...seqsA, ...seqsB].sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: 2 * EACH }, (_, i) => i + 1), "device_seq has gaps or duplicates");
  const owner = new Map([...seqsA.map((s) => [s, "A"]), ...seqsB.map((s) => [s, "B"])]);
  let switches = 0;
  for (let s = 2; s <= 2 * EACH; s++) if (owner.get(s) !== owner.get(s - 1)) switches++;
  assert.ok(switches >= 20, `the appends did not really interleave (${switches} switches)`);
  const verdict = await page.evaluate(async (name) => {
    const s = await annal.EventStore.open({ name, userId: "u" });
    const v = await s.verify();
    const events = await s.events();
    s.close();
    return { v, writers: events.map((e) => e.payload.writer) };
  }, name);
  assert.deepEqual(verdict.v, { ok: true, checked: 2 * EACH });
  return switches;
}

test("two tabs append 500 events each at the same time", async () => {
  const name = "conc-tabs";
  const [a, b, referee] = [await openPage(context, server.url), await openPage(context, server.url), await openPage(context, server.url)];
  await referee.evaluate((n) => annal.EventStore.destroy(n), name);
  const barrier = releaseWhenReady(referee, name, 2);
  const runs = [a.evaluate(appendAfterBarrier, [name, "A", EACH]), b.evaluate(appendAfterBarrier, [name, "B", EACH])];
  await barrier;
  const [seqsA, seqsB] = await Promise.all(runs);
  await checkInterleaved(referee, name, seqsA, seqsB);
  await Promise.all([a.close(), b.close(), referee.close()]);
});

test("a tab and a dedicated worker append 500 events each at the same time", async () => {
  const name = "conc-worker";
  const page = await openPage(context, server.url);
  const referee = await openPage(context, server.url);
  await referee.evaluate((n) => annal.EventStore.destroy(n), name);
  const spawned = page.waitForEvent("worker");
  await page.evaluate(() => {
    window.w = new Worker("/worker.js", { type: "module" });
  });
  const worker = await spawned;
  await worker.evaluate(() => new Promise(function wait(ok) {
    self.annalReady ? ok() : setTimeout(() => wait(ok), 20);
  }));
  const barrier = releaseWhenReady(referee, name, 2);
  const runs = [page.evaluate(appendAfterBarrier, [name, "A", EACH]), worker.evaluate(appendAfterBarrier, [name, "B", EACH])];
  await barrier;
  const [seqsA, seqsB] = await Promise.all(runs);
  await checkInterleaved(referee, name, seqsA, seqsB);
  await Promise.all([page.close(), referee.close()]);
});

test("64 concurrent appends share a few commits (group commit)", async () => {
  const page = await openPage(context, server.url);
  const r = await page.evaluate(async () => {
    await annal.EventStore.destroy("conc-group");
    const s = await annal.EventStore.open({ name: "conc-group", userId: "u" });
    const events = await Promise.all(
      Array.from({ length: 64 }, (_, i) => s.append({ aggregateType: "t", aggregateId: `a${i}`, eventType: "e", payload: { i } })),
    );
    s.close();
    const db = await new Promise((ok) => {
      const r = indexedDB.open("annal:conc-group");
      r.onsuccess = () => ok(r.result);
    });
    const pages = await new Promise((ok) => {
      const r = db.transaction("pages").objectStore("pages").count();
      r.onsuccess = () => ok(r.result);
    });
    db.close();
    return { seqs: events.map((e) => e.deviceSeq).sort((a, b) => a - b), pages };
  });
  assert.deepEqual(r.seqs, Array.from({ length: 64 }, (_, i) => i + 1));
  assert.ok(r.pages <= 4, `64 appends took ${r.pages} commits`);
  await page.close();
});

test("when a shared transaction aborts, only the append that caused it fails", async () => {
  // An oversized event makes the shared commit exceed the quota; its
  // neighbours are retried one by one and succeed.
  const own = await browser.newContext();
  const page = await openPage(own, server.url);
  const cdp = await own.newCDPSession(page);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: server.url, quotaSize: 512 * 1024 });
  const r = await page.evaluate(async () => {
    const s = await annal.EventStore.open({ name: "conc-abort", userId: "u" });
    await s.append({ aggregateType: "t", aggregateId: "first", eventType: "e", payload: {} });
    const results = await Promise.allSettled(
      Array.from({ length: 64 }, (_, i) =>
        s.append({ aggregateType: "t", aggregateId: `a${i}`, eventType: "e", payload: i === 30 ? { big: "x".repeat(1_000_000) } : { i } }),
      ),
    );
    const verdict = await s.verify();
    s.close();
    return {
      failed: results.flatMap((x, i) => (x.status === "rejected" ? [[i, x.reason.code]] : [])),
      seqs: results.flatMap((x) => (x.status === "fulfilled" ? [x.value.deviceSeq] : [])).sort((a, b) => a - b),
      verdict,
    };
  });
  assert.deepEqual(r.failed, [[30, "ANNAL_QUOTA_EXCEEDED"]]);
  assert.deepEqual(r.seqs, Array.from({ length: 63 }, (_, i) => i + 2));
  assert.deepEqual(r.verdict, { ok: true, checked: 64 });
  await own.close();
});
