// Sync under faults, through the packed package in headless Chromium, with
// a fault-injecting proxy (netproxy.mjs) between the page and a real
// annal-server on 127.0.0.1: the server dies in the middle of a batch,
// responses are lost after the server committed, the server is too new, a
// malicious server rewrites or drops ledger entries, 429 with Retry-After,
// and 10,000 queued events drain. What the tests say about the server they
// check on the server, by pulling and exporting its ledger from Node.
//
// First, the proxy's own self-check: each fault does what it says.
//
// Each test uses a tenant of its own and stores of its own.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startAnnalServer, startSyncEnv, VERIFY_BIN } from "./harness.mjs";
import { checkItems, entryHash, eventHash, forgeItems, GENESIS, jcs, payloadDigest, startNetProxy } from "./netproxy.mjs";

let pages, server, page, env;
before(async () => ({ pages, server, page } = env = await startSyncEnv()));
after(() => env?.close());

/** A proxy in front of `server` for the duration of `f`. */
async function withProxy(f, options = {}) {
  const proxy = await startNetProxy({ target: server.url, ...options });
  try {
    return await f(proxy);
  } finally {
    await proxy.close();
  }
}


function run(file, args) {
  return new Promise((ok) => execFile(file, args, (error, stdout, stderr) => ok({ code: error ? error.code : 0, stdout, stderr })));
}

/** Exports `user`'s ledger of `tenant` and runs annal-verify on it. */
async function verifyExport(tenant, user, expectHead) {
  const out = join(server.dir, `ledger-${tenant}-${user}.json`);
  await server.exportLedger(tenant, out, user);
  return run(VERIFY_BIN, [out, ...(expectHead ? ["--expect-head", expectHead] : [])]);
}

/** The events of one device in a pulled ledger, as `{ deviceSeq, hash, outcome }`. */
function ofDevice(ledger, deviceId) {
  return ledger.items
    .filter((i) => i.event?.envelope.device_id === deviceId)
    .map((i) => ({ deviceSeq: i.event.envelope.device_seq, hash: i.event.envelope.hash, outcome: i.entry.outcome }));
}

/** Asserts the server holds exactly `hashes` for `deviceId`, once each, in device order. */
function assertServerHolds(ledger, deviceId, hashes) {
  const mine = ofDevice(ledger, deviceId);
  assert.equal(mine.length, hashes.length, "as many events on the server as on the device");
  assert.deepEqual(
    mine.map((x) => x.deviceSeq),
    hashes.map((_, i) => i + 1),
    "device order, nothing lost, nothing duplicated",
  );
  assert.deepEqual(
    mine.map((x) => x.hash),
    hashes,
    "the hashes the device computed",
  );
  assert.ok(mine.every((x) => x.outcome === "accepted"));
  assert.equal(checkItems(ledger.items, { ledger: ledger.ledger }), null, "the server's ledger verifies");
}

// ---------------------------------------------------------------------------
// Node-made events, for the proxy's self-check (docs/FORMAT.md §2, §4, §5).

function uuid7() {
  const b = randomBytes(16);
  b.writeUIntBE(Date.now(), 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const x = b.toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** `n` events of a fresh device, chained, as push entries `{ envelope, salt, payload }`. */
function nodeEvents({ tenant, user, n }) {
  const device = uuid7();
  let prev = GENESIS;
  return Array.from({ length: n }, (_, k) => {
    const salt = randomBytes(16).toString("hex");
    // Non-ASCII, nesting and numbers, so the self-check exercises JCS.
    const payload = { z: k + 1, a: { é: "naïve ☃ \u2028", n: [1.5, -0, 1e-7, 2.5e-8, 123.456] } };
    const envelope = {
      format: "annal/1",
      event_id: uuid7(),
      tenant_id: tenant,
      aggregate_type: "diary",
      aggregate_id: `node-${device}`,
      event_type: "noted",
      schema_version: 1,
      payload_digest: payloadDigest(salt, payload),
      user_id: user,
      device_id: device,
      device_seq: k + 1,
      created_at: new Date().toISOString(),
      aggregate_version: k + 1,
      prev_hash: prev,
    };
    envelope.hash = eventHash(envelope);
    prev = envelope.hash;
    return { envelope, salt, payload };
  });
}

async function push(url, token, events, origin) {
  const res = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...(origin ? { origin } : {}) },
    body: JSON.stringify({ atomic: false, events }),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

describe("netproxy: each fault does what it says", () => {
  test("the hashes of docs/FORMAT.md, computed in Node, match annal-server's (JCS, payload_digest, hash, ledger entries)", async () => {
    // The golden vector of §11.5.
    const golden = {
      tenant_id: "study-1",
      ledger: "tenant",
      seq: 1,
      event_hash: "ab".repeat(32),
      outcome: "accepted",
      received_at: "2025-11-22T01:51:19.123456Z",
      prev: GENESIS,
    };
    assert.equal(entryHash(golden), "38c64335f9f0abe9516ed3e5b49f5c06e34c9e8189a5d64c426e4bac54364843");
    assert.equal(jcs({ b: [1e21, 1e-7, -0], a: "\u2028\u0007" }), '{"a":"\u2028\\u0007","b":[1e+21,1e-7,0]}');

    const tenant = "nx-hash";
    const token = await server.token("u", "own", { tenant });
    const events = nodeEvents({ tenant, user: "u", n: 4 });
    const r = await push(server.url, token, events);
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.results.map((x) => x.status),
      ["accepted", "accepted", "accepted", "accepted"],
      JSON.stringify(r.body),
    );
    const ledger = await server.pull(token);
    assert.equal(checkItems(ledger.items, { ledger: "user:u", tenant }), null);
  });

  test("forwarding: every header both ways, CORS preflights included", async () => {
    await withProxy(async (proxy) => {
      const direct = await fetch(`${server.url}/v1/schema`).then((r) => r.json());
      const via = await fetch(`${proxy.url}/v1/schema`).then((r) => r.json());
      assert.deepEqual(via, direct);
      const preflight = await fetch(`${proxy.url}/v1/events`, {
        method: "OPTIONS",
        headers: { origin: pages.url, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
      });
      assert.ok(preflight.ok);
      assert.equal(preflight.headers.get("access-control-allow-origin"), pages.url);
      assert.match(preflight.headers.get("access-control-allow-headers"), /authorization/i);
      // The token reaches the server (else 401), the CORS answer comes back.
      const token = await server.token("u", "own", { tenant: "nx-fwd" });
      const pulled = await fetch(`${proxy.url}/v1/events?after=0`, { headers: { authorization: `Bearer ${token}`, origin: pages.url } });
      assert.equal(pulled.status, 200);
      assert.equal(pulled.headers.get("access-control-allow-origin"), pages.url);
      assert.equal(proxy.count("OPTIONS /v1/events"), 1);
      assert.equal(proxy.count("GET /v1/events"), 1);
    });
  });

  test("loseResponses: the server committed, the client got no answer; a replay is all duplicates", async () => {
    await withProxy(async (proxy) => {
      const tenant = "nx-lose";
      const token = await server.token("u", "own", { tenant });
      const events = nodeEvents({ tenant, user: "u", n: 3 });
      proxy.loseResponses(1);
      await assert.rejects(push(proxy.url, token, events));
      assert.equal(proxy.log.at(-1).fault, "lost");
      assert.equal(proxy.log.at(-1).status, 200, "the server answered 200");
      const ledger = await server.pull(token);
      assert.deepEqual(
        ledger.items.map((i) => i.event.envelope.hash),
        events.map((e) => e.envelope.hash),
        "the lost request reached the server, which holds the events",
      );
      const again = await push(proxy.url, token, events);
      assert.deepEqual(
        again.body.results.map((x) => x.status),
        ["duplicate", "duplicate", "duplicate"],
      );
      assert.deepEqual(
        again.body.results.map((x) => x.receipt),
        ledger.items.map((i) => i.receipt),
      );
    });
  });

  test("failWith: answered by the proxy with Retry-After, never forwarded", async () => {
    await withProxy(async (proxy) => {
      const tenant = "nx-fail";
      const token = await server.token("u", "own", { tenant });
      proxy.failWith(429, { retryAfter: 7, count: 2 });
      for (const _ of [1, 2]) {
        const r = await push(proxy.url, token, nodeEvents({ tenant, user: "u", n: 1 }), pages.url);
        assert.equal(r.status, 429);
        assert.equal(r.headers.get("retry-after"), "7");
        assert.equal(r.headers.get("access-control-allow-origin"), pages.url);
        assert.match(r.headers.get("access-control-expose-headers"), /retry-after/i);
      }
      assert.equal((await server.pull(token)).items.length, 0, "nothing reached the server");
      assert.ok(proxy.log.every((e) => !e.forwarded));
      const r = await push(proxy.url, token, nodeEvents({ tenant, user: "u", n: 1 }));
      assert.equal(r.status, 200, "count: 2 means two");
    });
  });

  test("onRequest: the hook runs once the body is forwarded, before the answer; 'destroy' drops the connection", async () => {
    await withProxy(async (proxy) => {
      const tenant = "nx-hook";
      const token = await server.token("u", "own", { tenant });
      const seen = [];
      const remove = proxy.onRequest("POST /v1/events", async (ctx) => {
        seen.push({ n: ctx.n, events: JSON.parse(ctx.body).events.length });
        return ctx.n === 2 ? "destroy" : undefined;
      });
      assert.equal((await push(proxy.url, token, nodeEvents({ tenant, user: "u", n: 2 }))).status, 200);
      await assert.rejects(push(proxy.url, token, nodeEvents({ tenant, user: "u", n: 3 })));
      remove();
      assert.equal((await push(proxy.url, token, nodeEvents({ tenant, user: "u", n: 1 }))).status, 200);
      assert.deepEqual(seen, [
        { n: 1, events: 2 },
        { n: 2, events: 3 },
      ]);
      assert.equal((await server.pull(token)).items.length, 6, "the destroyed request was forwarded whole");
    });
  });

  test("onRequest can SIGKILL the server mid-request: the client sees a dropped connection", async () => {
    const own = await startAnnalServer({ origin: pages.url });
    const proxy = await startNetProxy({ target: own.url });
    try {
      const tenant = "nx-kill";
      const token = await own.token("u", "own", { tenant });
      // Frozen before the request goes, so it cannot answer before the kill
      // lands: the crash is always mid-request.
      proxy.onRequest("POST /v1/events", () => own.freeze(), { when: "before" });
      proxy.onRequest("POST /v1/events", () => own.kill());
      await assert.rejects(push(proxy.url, token, nodeEvents({ tenant, user: "u", n: 5 })));
      assert.match(proxy.log.at(-1).fault, /unreachable/);
      await assert.rejects(fetch(`${proxy.url}/v1/health`), "a dead server is unreachable through the proxy");
      proxy.clear();
      await own.restart();
      const n = (await own.pull(token)).items.length;
      assert.ok(n === 0 || n === 5, `the batch is all or nothing: ${n}`);
    } finally {
      await proxy.close();
      await own.close();
    }
  });

  test("schema: GET /v1/schema answers what the test says", async () => {
    await withProxy(async (proxy) => {
      proxy.schema({ protocol: { min: 99, max: 99 }, max_schema_version: {} });
      const r = await fetch(`${proxy.url}/v1/schema`, { headers: { origin: pages.url } });
      assert.deepEqual(await r.json(), { protocol: { min: 99, max: 99 }, max_schema_version: {} });
      assert.equal(r.headers.get("access-control-allow-origin"), pages.url);
      proxy.schema(null);
      assert.equal((await fetch(`${proxy.url}/v1/schema`).then((r) => r.json())).protocol.min, 1);
    });
  });

  test("forgeLedger and dropLedgerEntry: a self-consistent rewrite that only an anchor exposes, and a gap", async () => {
    await withProxy(async (proxy) => {
      const tenant = "nx-forge";
      const user = "u";
      const token = await server.token(user, "own", { tenant });
      const a = nodeEvents({ tenant, user, n: 3 });
      const b = nodeEvents({ tenant, user, n: 2 });
      assert.equal((await push(server.url, token, a)).status, 200);
      assert.equal((await push(server.url, token, b)).status, 200);
      const honest = await server.pull(token);
      const pullVia = async (after = 0, limit = 1000) =>
        fetch(`${proxy.url}/v1/events?after=${after}&limit=${limit}`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());

      // Not relinking the device chain: entry 3 (device a, seq 3) no longer links to the forged event.
      proxy.forgeLedger({ seq: 2 });
      let forged = await pullVia();
      assert.equal(forged.items.length, 5);
      assert.equal(checkItems(forged.items, { ledger: `user:${user}`, tenant }), null, "self-consistent ledger");
      assert.equal(forged.items[1].event.payload.forged, true);
      assert.deepEqual(forged.items[0], honest.items[0], "entries before it untouched");
      for (let i = 1; i < 5; i++) assert.notEqual(forged.items[i].entry.hash, honest.items[i].entry.hash, `entry ${i + 1} rehashed`);
      assert.notEqual(forged.items[2].event.envelope.prev_hash, forged.items[1].event.envelope.hash, "the device chain shows it");
      // Pages of the forged ledger are cut like the server's.
      const p = await pullVia(1, 2);
      assert.deepEqual(
        p.items.map((i) => i.entry.seq),
        [2, 3],
      );
      assert.equal(p.next_after, 3);
      assert.equal(p.has_more, true);
      assert.deepEqual(p.items, forged.items.slice(1, 3));

      proxy.clear();
      proxy.forgeLedger({ seq: 2, deviceChain: true });
      forged = await pullVia();
      assert.equal(checkItems(forged.items, { ledger: `user:${user}`, tenant }), null);
      assert.equal(forged.items[2].event.envelope.prev_hash, forged.items[1].event.envelope.hash, "the device chain relinked too");

      // annal-verify agrees: the fully forged export verifies, and only the real head exposes it.
      const out = join(server.dir, "nx-forge.json");
      await server.exportLedger(tenant, out, user);
      const exp = JSON.parse(await readFile(out, "utf8"));
      assert.equal(exp.head.hash, honest.items[4].entry.hash);
      exp.items = forgeItems(exp.items, { seq: 2, deviceChain: true });
      exp.head = { seq: 5, hash: exp.items[4].entry.hash };
      assert.deepEqual(exp.items, forged.items, "what the proxy serves is the forged export's items");
      await writeFile(out, JSON.stringify(exp));
      const selfConsistent = await run(VERIFY_BIN, [out]);
      assert.equal(selfConsistent.code, 0, selfConsistent.stdout + selfConsistent.stderr);
      const anchored = await run(VERIFY_BIN, [out, "--expect-head", honest.items[4].entry.hash]);
      assert.equal(anchored.code, 1);
      assert.match(anchored.stdout, /HEAD_MISMATCH/);

      proxy.clear();
      proxy.dropLedgerEntry(3);
      const dropped = await pullVia();
      assert.deepEqual(
        dropped.items.map((i) => i.entry.seq),
        [1, 2, 4, 5],
      );
      assert.deepEqual(dropped.items, honest.items.filter((i) => i.entry.seq !== 3), "nothing else changes");
      proxy.clear();
      assert.deepEqual((await pullVia()).items, honest.items);
    });
  });
});

describe("sync under faults", () => {
  after(async () => {
    await page.evaluate(() => h.destroyAll());
  });

  test("(a) the server is SIGKILLed in the middle of a batch: ANNAL_OFFLINE, then after a restart nothing is lost or duplicated", async () => {
    const tenant = "f-a";
    const user = "patient-fa";
    const token = await server.token(user, "own", { tenant });
    await withProxy(async (proxy) => {
      const killed = [];
      // The third push of the outbox: kill the server once its body is forwarded.
      proxy.onRequest("POST /v1/events", async (ctx) => {
        if (ctx.n === 3) {
          killed.push(JSON.parse(ctx.body).events.map((e) => e.envelope.device_seq));
          await server.kill();
        }
      });
      const r = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const store = await h.open("faults-a", user, tenant);
          h.configure(store, url, token);
          await h.appendMany(store, 2000);
          const error = await h.caught(() => store.sync());
          return { error, status: await store.syncStatus() };
        },
        { url: proxy.url, token, tenant, user },
      );
      assert.equal(killed.length, 1);
      assert.equal(r.error.code, "ANNAL_OFFLINE", JSON.stringify(r.error));
      assert.equal(r.status.state, "offline");
      const batch = killed[0];
      assert.ok(batch.length > 1, "a batch, not a single event");
      // Acknowledged: exactly what came before the cut batch.
      assert.equal(r.status.acked, batch[0] - 1, JSON.stringify({ status: r.status, first: batch[0] }));
      assert.equal(r.status.pending, 2000 - r.status.acked);

      await server.restart();
      const up = await page.evaluate(async () => {
        const store = h.stores["faults-a"];
        return {
          report: await store.sync(),
          status: await store.syncStatus(),
          hashes: await h.hashes(store),
          deviceId: store.identity.deviceId,
          rejected: await store.rejected(),
          conflicts: await store.conflicts(),
        };
      });
      assert.equal(up.report.acked, 2000);
      assert.equal(up.report.pushed, 2000 - r.status.acked);
      assert.equal(up.status.state, "idle");
      assert.equal(up.status.pending, 0);
      assert.equal(up.status.acked, 2000);
      assert.deepEqual(up.rejected, []);
      assert.deepEqual(up.conflicts, []);
      const ledger = await server.pull(token);
      assert.equal(ledger.items.length, 2000);
      assertServerHolds(ledger, up.deviceId, up.hashes);
      assert.deepEqual(up.status.checkpoint, { ledger: `user:${user}`, seq: 2000, hash: ledger.items[1999].entry.hash });
      const verified = await verifyExport(tenant, user, up.status.checkpoint.hash);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /^ok ledger user:patient-fa: 2000 entries/);
    });
  });

  test("(b) the request is delivered but the response lost, three times in a row: no duplicates, and the original receipts are stored", async () => {
    const tenant = "f-b";
    const user = "patient-fb";
    const token = await server.token(user, "own", { tenant });
    // No keep-alive: else Chromium itself resends the POST when its reused
    // connection drops, and the three losses hide inside one sync().
    await withProxy(async (proxy) => {
      proxy.loseResponses(3, "POST /v1/events");
      const r = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const store = await h.open("faults-b", user, tenant);
          h.configure(store, url, token);
          await h.appendMany(store, 1250, 250);
          const done = await h.syncUntilDone(store, 5);
          return {
            ...done,
            status: await store.syncStatus(),
            hashes: await h.hashes(store),
            deviceId: store.identity.deviceId,
            rejected: await store.rejected(),
            conflicts: await store.conflicts(),
            receipts: await h.receiptRows("annal:faults-b"),
          };
        },
        { url: proxy.url, token, tenant, user },
      );
      const lost = proxy.log.filter((e) => e.fault === "lost");
      assert.equal(lost.length, 3, "three responses lost");
      assert.ok(
        lost.every((e) => e.status === 200),
        "each lost request was answered 200 by the server",
      );
      assert.equal(r.failures.length, 3, `three sync() passes lost their answer: ${JSON.stringify(r.failures)}`);
      assert.deepEqual(
        proxy.log.filter((e) => e.method === "POST").map((e) => e.fault),
        ["lost", "lost", "lost", null, null, null],
        "the first batch (of three) was answered and lost three times, then all three went through",
      );
      for (const f of r.failures) assert.equal(f.code, "ANNAL_OFFLINE", JSON.stringify(f));
      assert.ok(r.report, "sync() succeeded in the end");
      assert.equal(r.report.acked, 1250);
      assert.equal(r.status.state, "idle");
      assert.equal(r.status.pending, 0);
      assert.equal(r.status.acked, 1250);
      assert.deepEqual(r.rejected, []);
      assert.deepEqual(r.conflicts, []);

      const ledger = await server.pull(token);
      assert.equal(ledger.items.length, 1250, "each event once");
      assertServerHolds(ledger, r.deviceId, r.hashes);
      assert.deepEqual(r.status.checkpoint, { ledger: `user:${user}`, seq: 1250, hash: ledger.items[1249].entry.hash });
      // The receipts the client kept are the server's originals, one per event.
      assert.equal(r.receipts.length, 1250);
      const bySeq = new Map(r.receipts.map((x) => [x.device_seq, x]));
      for (const item of ledger.items) {
        const row = bySeq.get(item.event.envelope.device_seq);
        assert.equal(row?.outcome, "accepted");
        assert.deepEqual(row.receipt, item.receipt, `receipt of device_seq ${item.event.envelope.device_seq}`);
      }
      const verified = await verifyExport(tenant, user, r.status.checkpoint.hash);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    }, { keepAlive: false });
  });

  test("(c) a server that speaks no protocol version of this annal: ANNAL_SCHEMA_INCOMPATIBLE, nothing pushed", async () => {
    const tenant = "f-c";
    const user = "patient-fc";
    const token = await server.token(user, "own", { tenant });
    await withProxy(async (proxy) => {
      proxy.schema({ protocol: { min: 99, max: 99 }, max_schema_version: {} });
      const r = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const store = await h.open("faults-c", user, tenant);
          h.configure(store, url, token);
          await h.appendMany(store, 5);
          const error = await h.caught(() => store.sync());
          return { error, status: await store.syncStatus(), count: (await store.events()).length };
        },
        { url: proxy.url, token, tenant, user },
      );
      assert.equal(r.error.code, "ANNAL_SCHEMA_INCOMPATIBLE", JSON.stringify(r.error));
      assert.equal(r.error.name, "AnnalSchemaIncompatibleError");
      assert.ok(r.error.isSchemaIncompatible && r.error.isAnnalError && r.error.isError);
      assert.match(r.error.message, /upgrade/i);
      assert.equal(proxy.count("POST /v1/events"), 0, "no push reached the proxy");
      assert.equal(proxy.count("GET /v1/events"), 0, "no pull either");
      assert.equal((await server.pull(token)).items.length, 0, "the server holds nothing of this tenant");
      assert.equal(r.status.state, "error");
      assert.equal(r.status.pending, 5);
      assert.equal(r.status.nextAttemptAt, null, "no retry is scheduled: waiting cannot help");
      assert.equal(r.count, 5);
    });
  });

  /**
   * Two devices of one user: B pushes 3, A pushes 2 and pulls B's 3, B
   * pushes `more`. Returns the ledger and what A holds.
   */
  async function twoDevices(proxy, { tenant, user, token, more }) {
    const r = await page.evaluate(
      async ({ url, token, tenant, user, more, names }) => {
        const a = await h.open(names[0], user, tenant);
        const b = await h.open(names[1], user, tenant);
        h.configure(a, url, token);
        h.configure(b, url, token);
        for (let i = 1; i <= 3; i++) await b.append(h.ev(i, { aggregateId: "diary-b" }));
        await b.sync();
        for (let i = 1; i <= 2; i++) await a.append(h.ev(i, { aggregateId: "diary-a" }));
        const first = await a.sync();
        for (let i = 4; i < 4 + more; i++) await b.append(h.ev(i, { aggregateId: "diary-b" }));
        await b.sync();
        return {
          first,
          ids: [a.identity.deviceId, b.identity.deviceId],
          status: await a.syncStatus(),
          events: await a.events(),
          remote: await a.remoteEvents(),
        };
      },
      { url: proxy.url, token, tenant, user, more, names: [`faults-${tenant}-a`, `faults-${tenant}-b`] },
    );
    assert.deepEqual([r.first.pushed, r.first.pulled], [2, 3]);
    assert.equal(r.status.checkpoint.seq, 5);
    assert.equal(r.remote.length, 3);
    return r;
  }

  /** A's sync() and everything it holds afterwards. */
  function syncAndLook(name) {
    return page.evaluate(async (name) => {
      const store = h.stores[name];
      const error = await h.caught(() => store.sync());
      return {
        error,
        status: await store.syncStatus(),
        events: await store.events(),
        remote: await store.remoteEvents(),
        verify: await store.verify(),
      };
    }, name);
  }

  test("(d) a malicious server rewrites an old, verified ledger entry: ANNAL_LEDGER_FORK, every local event kept", async () => {
    const tenant = "f-d";
    const user = "patient-fd";
    const token = await server.token(user, "own", { tenant });
    await withProxy(async (proxy) => {
      const before = await twoDevices(proxy, { tenant, user, token, more: 2 });
      const honest = await server.pull(token);
      assert.equal(honest.items.length, 7);
      // Entry 2 is B's second event, long verified by A (its checkpoint is 5).
      assert.equal(honest.items[1].event.envelope.device_id, before.ids[1]);
      // Fully self-consistent, device chain included: only A's checkpoint exposes it.
      proxy.forgeLedger({ seq: 2, deviceChain: true, payload: (p) => ({ ...p, severity: "none" }) });
      const after = await syncAndLook(`faults-${tenant}-a`);
      assert.equal(after.error.code, "ANNAL_LEDGER_FORK", JSON.stringify(after.error));
      assert.equal(after.error.name, "AnnalLedgerForkError");
      assert.match(after.error.message, /ledger/);
      assert.ok(proxy.log.some((e) => e.fault === "rewritten"), "A was served the forged history");
      assert.equal(after.status.state, "error");
      assert.equal(after.status.nextAttemptAt, null);
      assert.deepEqual(after.status.checkpoint, before.status.checkpoint, "the checkpoint stays where it was verified");
      assert.deepEqual(after.events, before.events, "A's own events, all kept");
      assert.deepEqual(after.remote, before.remote, "the remote events A had, kept as they were verified");
      assert.ok(!after.remote.some((e) => "severity" in e.payload), "nothing of the forged history was taken");
      assert.deepEqual(after.verify, { ok: true, checked: 2 });

      // A fresh device of the user pulls the forged history from scratch:
      // the forged event no longer fits its device's chain.
      proxy.clear();
      proxy.forgeLedger({ seq: 2, payload: (p) => ({ ...p, severity: "none" }) });
      const fresh = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const c = await h.open(`faults-${tenant}-c`, user, tenant);
          h.configure(c, url, token);
          const error = await h.caught(() => c.sync());
          return { error, remote: await c.remoteEvents(), status: await c.syncStatus() };
        },
        { url: proxy.url, token, tenant, user },
      );
      assert.equal(fresh.error.code, "ANNAL_LEDGER_FORK", JSON.stringify(fresh.error));
      assert.match(fresh.error.message, /ledger/);
      assert.ok(!fresh.remote.some((e) => "severity" in e.payload), "nothing of the forged history was taken");

      // The server itself was never changed.
      assert.deepEqual((await server.pull(token)).items, honest.items);
    });
  });

  test("(e) a malicious server drops an entry from a page: ANNAL_LEDGER_FORK, local data kept", async () => {
    const tenant = "f-e";
    const user = "patient-fe";
    const token = await server.token(user, "own", { tenant });
    await withProxy(async (proxy) => {
      const before = await twoDevices(proxy, { tenant, user, token, more: 3 });
      assert.equal((await server.pull(token)).items.length, 8);
      // Entry 7 (B's 5th event) is left out of the page A pulls next.
      proxy.dropLedgerEntry(7);
      const after = await syncAndLook(`faults-${tenant}-a`);
      assert.equal(after.error.code, "ANNAL_LEDGER_FORK", JSON.stringify(after.error));
      assert.match(after.error.message, /ledger/);
      assert.ok(proxy.log.some((e) => e.fault === "rewritten"));
      assert.equal(after.status.state, "error");
      assert.deepEqual(after.status.checkpoint, before.status.checkpoint);
      assert.deepEqual(after.events, before.events);
      assert.deepEqual(after.remote, before.remote, "not even entry 6, before the gap in the same page, was taken");
      assert.deepEqual(after.verify, { ok: true, checked: 2 });

      // With the proxy honest again, A catches up.
      proxy.clear();
      const healed = await syncAndLook(`faults-${tenant}-a`);
      assert.equal(healed.error.threw, false, JSON.stringify(healed.error));
      assert.equal(healed.remote.length, 6);
      assert.equal(healed.status.checkpoint.seq, 8);
    });
  });

  // TIMELINE=1 prints every request with its time, to see where a drain spends it.
  test("(f) 10,000 events queued offline drain completely, in device order", { timeout: 180_000 }, async () => {
    const tenant = "f-f";
    const user = "patient-ff";
    const token = await server.token(user, "own", { tenant });
    await withProxy(async (proxy) => {
      const r = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const store = await h.open("faults-f", user, tenant);
          // Offline: queued before sync is configured.
          await h.appendMany(store, 10000, 1000);
          const before = await store.syncStatus();
          h.configure(store, url, token);
          const t0 = performance.now();
          const passes = [];
          for (let n = 0; n < 5 && (await store.syncStatus()).pending > 0; n++) passes.push(await store.sync());
          const ms = performance.now() - t0;
          return {
            before,
            passes,
            ms,
            status: await store.syncStatus(),
            hashes: await h.hashes(store),
            deviceId: store.identity.deviceId,
          };
        },
        { url: proxy.url, token, tenant, user },
      );
      const took = (match) => proxy.log.filter((e) => `${e.method} ${e.path}` === match).reduce((n, e) => n + (e.ms ?? 0), 0);
      const pushes = proxy.log.filter((e) => e.method === "POST");
      const span = pushes.length ? pushes.at(-1).at - pushes[0].at : 0;
      console.log(
        `10,000 events: ${r.passes.length} sync pass(es) in ${Math.round(r.ms)} ms; ${pushes.length} pushes over ${span} ms, ` +
          `${took("POST /v1/events")} ms of it in the server; pulls ${took("GET /v1/events")} ms in the server`,
      );
      if (process.env.TIMELINE) {
        const t0 = proxy.log[0]?.at ?? 0;
        console.log(proxy.log.filter((e) => e.method !== "OPTIONS").map((e) => `${e.at - t0} +${e.ms} ${e.method} ${e.url}`).join("\n"));
      }
      assert.equal(r.before.pending, 10000);
      assert.equal(r.hashes.length, 10000);
      assert.equal(r.status.pending, 0);
      assert.equal(r.status.acked, 10000);
      assert.equal(r.status.state, "idle");
      assert.equal(
        r.passes.reduce((n, p) => n + p.pushed, 0),
        10000,
      );
      const ledger = await server.pull(token);
      assert.equal(ledger.items.length, 10000);
      assertServerHolds(ledger, r.deviceId, r.hashes);
      assert.deepEqual(r.status.checkpoint, { ledger: `user:${user}`, seq: 10000, hash: ledger.items[9999].entry.hash });
      const verified = await verifyExport(tenant, user, r.status.checkpoint.hash);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /10000 entries/);
    });
  });

  test("(g) 429 with Retry-After: ANNAL_OFFLINE, the next attempt is no sooner than the server asked, nothing lost", async () => {
    const tenant = "f-g";
    const user = "patient-fg";
    const token = await server.token(user, "own", { tenant });
    await withProxy(async (proxy) => {
      proxy.failWith(429, { retryAfter: 120, count: 1 });
      proxy.failWith(503, { retryAfter: 60, count: 1, match: "GET /v1/events" });
      const r = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const store = await h.open("faults-g", user, tenant);
          h.configure(store, url, token);
          await h.appendMany(store, 150);
          const out = [];
          for (let n = 0; n < 3; n++) {
            const startedAt = Date.now();
            const result = await h.caught(() => store.sync());
            out.push({ result, startedAt, status: await store.syncStatus() });
          }
          return { out, hashes: await h.hashes(store), deviceId: store.identity.deviceId };
        },
        { url: proxy.url, token, tenant, user },
      );
      const [throttled, unavailable, ok] = r.out;
      assert.equal(throttled.result.code, "ANNAL_OFFLINE", JSON.stringify(throttled.result));
      assert.equal(throttled.status.state, "offline");
      assert.equal(throttled.status.pending, 150);
      assert.ok(throttled.status.nextAttemptAt >= throttled.startedAt + 120_000, `Retry-After: 120 honoured: ${JSON.stringify(throttled)}`);
      // The push went through; the pull was refused: the receipts are kept.
      assert.equal(unavailable.result.code, "ANNAL_OFFLINE", JSON.stringify(unavailable.result));
      assert.equal(unavailable.status.pending, 0);
      assert.equal(unavailable.status.acked, 150);
      assert.ok(unavailable.status.nextAttemptAt >= unavailable.startedAt + 60_000, JSON.stringify(unavailable));
      assert.equal(ok.result.threw, false, JSON.stringify(ok.result));
      assert.equal(ok.status.state, "idle");
      assert.equal(ok.status.nextAttemptAt, null);
      assertServerHolds(await server.pull(token), r.deviceId, r.hashes);
    });
  });
  test("(h) the server is restored from a backup that lacks acknowledged events: they are pushed again, the server's new receipts replace the old, and the rewritten ledger is ANNAL_LEDGER_FORK", async () => {
    const own = await startAnnalServer({ origin: pages.url });
    const files = ["annal.db", "annal.db-wal", "annal.db-shm"];
    const backup = async (from, to) => {
      for (const f of files) {
        await rm(join(own.dir, `${to}${f}`), { force: true });
        await copyFile(join(own.dir, `${from}${f}`), join(own.dir, `${to}${f}`)).catch((e) => {
          if (e.code !== "ENOENT") throw e;
        });
      }
    };
    try {
      const tenant = "f-h";
      const user = "patient-fh";
      const token = await own.token(user, "own", { tenant });
      const pass = (n, from) =>
        page.evaluate(
          async ({ url, token, tenant, user, n, from }) => {
            const store = from === 1 ? await h.open("faults-h", user, tenant) : h.stores["faults-h"];
            if (from === 1) h.configure(store, url, token);
            await h.appendMany(store, n, 350, from);
            const result = await h.caught(() => store.sync());
            return { result, status: await store.syncStatus(), receipts: await h.receiptRows("annal:faults-h"), hashes: await h.hashes(store), deviceId: store.identity.deviceId };
          },
          { url: own.url, token, tenant, user, n, from },
        );
      const first = await pass(650, 1);
      assert.equal(first.result.threw, false, JSON.stringify(first.result));
      assert.equal(first.status.acked, 650);
      await own.stop();
      await backup("", "backup-");
      await own.restart();
      await pass(300, 651);
      const second = await pass(350, 951);
      assert.equal(second.status.acked, 1300);
      // Receipt rows: 1–500 and 501–650 from the first pass, 651–950, then 951–1300.
      assert.deepEqual([...new Set(second.receipts.map((r) => r.row))], [1, 501, 651, 951]);

      // The server loses everything after 650 and comes back.
      await own.stop();
      await backup("backup-", "");
      await own.restart();
      const third = await pass(10, 1301);
      // The server asked for 651 on; the push went through again, then the
      // pull found the ledger the device had verified rewritten.
      assert.equal(third.result.code, "ANNAL_LEDGER_FORK", JSON.stringify(third.result));
      assert.equal(third.status.acked, 1310);
      assert.equal(third.status.pending, 0);
      const ledger = await own.pull(token);
      assert.equal(ledger.items.length, 1310, "each event once");
      assertServerHolds(ledger, third.deviceId, third.hashes);
      // One receipt per event, each the server's current one: the resend
      // was cut 651–1150 and 1151–1310, and the old row 951–1300, which
      // started inside the first of them, is gone rather than shadowing it.
      assert.deepEqual(third.receipts.map((r) => r.device_seq), ledger.items.map((i) => i.event.envelope.device_seq));
      for (const [k, item] of ledger.items.entries()) assert.deepEqual(third.receipts[k].receipt, item.receipt, `receipt of device_seq ${k + 1}`);
      assert.deepEqual([...new Set(third.receipts.map((r) => r.row))], [1, 501, 651, 1151]);
      assert.deepEqual(third.receipts.slice(0, 650), second.receipts.slice(0, 650), "the receipts the server kept are kept");
      for (let k = 650; k < 1300; k++) assert.notDeepEqual(third.receipts[k].receipt, second.receipts[k].receipt, `a new receipt for device_seq ${k + 1}`);
    } finally {
      await own.close();
    }
  });

  test("(i) the stored sync state turns unreadable during a pass: ANNAL_STORAGE, and the receipts that would have gone with it are not written", async () => {
    await withProxy(async (proxy) => {
      const tenant = "f-i";
      const user = "patient-fi";
      const token = await server.token(user, "own", { tenant });
      // While the first push is on its way, the state row is spoiled; the
      // first push's receipts are stored during the second push, with the
      // state, which can no longer be read.
      proxy.onRequest("POST /v1/events", (ctx) => (ctx.n === 1 ? page.evaluate(() => h.corruptSyncState("annal:faults-i")) : undefined), { when: "before" });
      const r = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const store = await h.open("faults-i", user, tenant);
          h.configure(store, url, token);
          await h.appendMany(store, 600, 300);
          const error = await h.caught(() => store.sync());
          return { error, receipts: await h.receiptRows("annal:faults-i") };
        },
        { url: proxy.url, token, tenant, user },
      );
      assert.equal(proxy.count("POST /v1/events"), 2);
      assert.equal(r.error.code, "ANNAL_STORAGE", JSON.stringify(r.error));
      assert.match(r.error.message, /sync state is unreadable/);
      assert.deepEqual(r.receipts, [], "no receipt row without the state it belongs with");
      assert.equal((await server.pull(token)).items.length, 600, "the server took both pushes");
    });
  });
});
