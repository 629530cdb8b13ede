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

// Installs window.counting(names) in a page: counters on the IndexedDB
// calls named (readwrite transactions, page adds, key cursors, idempotency
// reads), a step(label, run) that returns [label, value, ...each counter's
// change], and restore(), which puts the prototypes back.
function installCounting() {
  const probes = {
    rw: [IDBDatabase.prototype, "transaction", (self, names, mode) => mode === "readwrite"],
    adds: [IDBObjectStore.prototype, "add", (self) => self.name === "pages"],
    cursors: [IDBIndex.prototype, "openKeyCursor", () => true],
    keyReads: [IDBObjectStore.prototype, "get", (self) => self.name === "idempotency"],
  };
  window.counting = (names) => {
    const counts = Object.fromEntries(names.map((n) => [n, 0]));
    const restores = names.map((n) => {
      const [proto, method, counted] = probes[n];
      const original = proto[method];
      proto[method] = function (...args) {
        if (counted(this, ...args)) counts[n]++;
        return original.apply(this, args);
      };
      return () => (proto[method] = original);
    });
    return {
      async step(label, run) {
        const before = { ...counts };
        const value = await run();
        return [label, value, ...names.map((n) => counts[n] - before[n])];
      },
      restore: () => restores.forEach((r) => r()),
    };
  };
}

// An append to an aggregate this context has not seen presumes it new and
// writes at once, checking in the same transaction; when another context
// had written it, that transaction writes nothing and the append goes
// again, reading first. Counted: readwrite transactions, page adds and key
// cursors.
test("an aggregate presumed new is checked in the transaction that writes it", async () => {
  const page = await openPage(context, server.url);
  await page.evaluate(installCounting);
  const r = await page.evaluate(async () => {
    await annal.EventStore.destroy("conc-presume");
    const e = (id, extra = {}) => ({ aggregateType: "t", aggregateId: id, eventType: "e", payload: {}, ...extra });
    const a = await annal.EventStore.open({ name: "conc-presume", userId: "u" });
    const b = await annal.EventStore.open({ name: "conc-presume", userId: "u" });
    // b writes first, so a never finds the store empty: its cache is not
    // complete (see the next test) and it has to presume.
    await b.append(e("b-0"));
    const { step, restore } = counting(["rw", "adds", "cursors"]);
    const steps = [];
    steps.push(await step("first, nothing cached", async () => (await a.append(e("a-1"))).aggregateVersion));
    steps.push(await step("new, presumed", async () => (await a.append(e("a-2"))).aggregateVersion));
    await b.append(e("shared"));
    await b.append(e("shared"));
    // a's head is stale too, so this one would go again anyway; the next
    // one has a current head and only its presumption wrong.
    steps.push(await step("after b", async () => (await a.append(e("a-3"))).aggregateVersion));
    steps.push(await step("presumed wrongly", async () => (await a.append(e("shared"))).aggregateVersion));
    steps.push(await step("not presumed after that", async () => (await a.append(e("a-4"))).aggregateVersion));
    steps.push(await step("presumed again", async () => (await a.append(e("a-5"))).aggregateVersion));
    const batch = await step("a batch, two presumed", async () => (await a.appendBatch([e("a-5"), e("a-6"), e("a-7")])).map((x) => x.aggregateVersion));
    steps.push(batch);
    const report = await a.verify();
    a.close();
    b.close();
    restore();
    return { steps, ok: report.ok, checked: report.checked };
  });
  assert.deepEqual(r.steps, [
    // [what, aggregateVersion, readwrite transactions, page adds, key
    // cursors: a presumption's check, or an ordinary read of the head]
    ["first, nothing cached", 1, 1, 1, 1],
    ["new, presumed", 1, 1, 1, 1],
    ["after b", 1, 2, 2, 2],
    ["presumed wrongly", 3, 2, 2, 2],
    ["not presumed after that", 1, 1, 1, 1],
    ["presumed again", 1, 1, 1, 1],
    ["a batch, two presumed", [2, 1, 1], 1, 1, 2],
  ]);
  assert.deepEqual([r.ok, r.checked], [true, 12]);
  await page.close();
});

// A context that found the store empty knows every aggregate and
// idempotency key in it, so a new one is not read at all, in one append,
// a batch or a group commit. Another context's append ends that: the
// stale head is caught, and from then on unseen aggregates are read (or
// presumed new and checked) as in any store. Counted: key cursors (head
// reads), idempotency reads, readwrite transactions.
test("a store this context found empty is appended to without reads until another context writes", async () => {
  const page = await openPage(context, server.url);
  await page.evaluate(installCounting);
  const r = await page.evaluate(async () => {
    await annal.EventStore.destroy("conc-complete");
    const { step, restore } = counting(["cursors", "keyReads", "rw"]);
    const e = (id, extra = {}) => ({ aggregateType: "t", aggregateId: id, eventType: "e", payload: {}, ...extra });
    const versions = (events) => events.map((x) => x.aggregateVersion);
    const a = await annal.EventStore.open({ name: "conc-complete", userId: "u" });
    const b = await annal.EventStore.open({ name: "conc-complete", userId: "u" });
    const steps = [];
    steps.push(await step("first, nothing cached", async () => (await a.append(e("a-1"))).aggregateVersion));
    steps.push(await step("new aggregate", async () => (await a.append(e("a-2"))).aggregateVersion));
    steps.push(await step("batch of new and known", async () => versions(await a.appendBatch([e("a-1"), ...Array.from({ length: 8 }, (_, i) => e(`n-${i}`))]))));
    steps.push(await step("group of 16 new", async () => versions(await Promise.all(Array.from({ length: 16 }, (_, i) => a.append(e(`g-${i}`)))))));
    steps.push(await step("new idempotency key", async () => (await a.append(e("a-1", { idempotencyKey: "k-1" }))).aggregateVersion));
    steps.push(await step("its repeat", async () => (await a.append(e("a-1", { idempotencyKey: "k-1" }))).aggregateVersion));
    await b.append(e("b-1", { idempotencyKey: "k-b" }));
    steps.push(await step("after b: stale head", async () => (await a.append(e("b-1"))).aggregateVersion));
    steps.push(await step("b's key", async () => (await a.append(e("b-1", { idempotencyKey: "k-b" }))).aggregateVersion));
    steps.push(await step("unseen now read", async () => versions(await a.appendBatch(Array.from({ length: 6 }, (_, i) => e(`u-${i}`))))));
    const report = await a.verify();
    a.close();
    b.close();
    restore();
    return { steps, ok: report.ok, checked: report.checked };
  });
  assert.deepEqual(r.steps, [
    // [what, aggregateVersion(s), key cursors, idempotency reads, readwrite transactions]
    ["first, nothing cached", 1, 1, 0, 1],
    ["new aggregate", 1, 0, 0, 1],
    ["batch of new and known", [2, 1, 1, 1, 1, 1, 1, 1, 1], 0, 0, 1],
    ["group of 16 new", Array(16).fill(1), 0, 0, 1],
    ["new idempotency key", 3, 0, 0, 1],
    // Known: nothing read, nothing written (the transaction is empty).
    ["its repeat", 3, 0, 0, 1],
    // The seal-ahead try writes nothing (its page key is b's); the
    // ordinary one reads the head, b-1 and nothing else.
    ["after b: stale head", 2, 1, 0, 2],
    // Not known: b used it. Read, and b's event answers.
    ["b's key", 1, 0, 1, 1],
    ["unseen now read", Array(6).fill(1), 1, 0, 1],
  ]);
  assert.deepEqual([r.ok, r.checked], [true, 36]);
  await page.close();
});

// The write cache starts over past 16,384 entries, and with that it no
// longer knows every aggregate: one it forgot must be read, not taken for
// new (which would give its next event version 1 again).
test("a write cache that starts over forgets that it knew every aggregate", async () => {
  const page = await openPage(context, server.url);
  const r = await page.evaluate(async () => {
    await annal.EventStore.destroy("conc-overflow");
    const s = await annal.EventStore.open({ name: "conc-overflow", userId: "u" });
    const e = (id) => ({ aggregateType: "t", aggregateId: id, eventType: "e", payload: {} });
    await s.appendBatch(Array.from({ length: 16_400 }, (_, i) => e(`m-${i}`)));
    // This commit finds the cache over its size and starts it over.
    const x = (await s.append(e("x"))).aggregateVersion;
    const forgotten = (await s.append(e("m-5"))).aggregateVersion;
    const batch = (await s.appendBatch([e("m-6"), e("m-16399"), e("y")])).map((ev) => ev.aggregateVersion);
    const report = await s.verify();
    s.close();
    return { x, forgotten, batch, ok: report.ok, checked: report.checked };
  });
  assert.deepEqual(r, { x: 1, forgotten: 2, batch: [2, 2, 1], ok: true, checked: 16_405 });
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
