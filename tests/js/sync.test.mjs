// Sync through the packed package in headless Chromium against a real
// annal-server (SQLite) started on 127.0.0.1: the outbox drains in device
// order, a stopped server leaves the events waiting, two devices of a user
// converge, a coordinator sees the tenant, quarantined and conflicting
// events are kept and listed, tokens are refreshed, and encrypted stores
// sync too. What the tests say about the server they check on the server,
// by pulling its ledger from Node.
//
// Each test uses a tenant of its own, so the ledgers of one test never
// hold another's events.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { startAnnalServer, startSyncEnv, VERIFY_BIN } from "./harness.mjs";

let pages, server, page, env;
before(async () => ({ pages, server, page } = env = await startSyncEnv()));
after(() => env?.close());


/** Device seqs, event hashes and outcomes of a pulled ledger. */
function summary(ledger) {
  return ledger.items.map((i) => ({
    seq: i.entry.seq,
    outcome: i.entry.outcome,
    deviceId: i.event?.envelope.device_id ?? i.quarantine?.submitted?.envelope?.device_id,
    deviceSeq: i.event?.envelope.device_seq ?? i.quarantine?.submitted?.envelope?.device_seq,
    hash: i.event?.envelope.hash ?? i.quarantine?.claimed_hash,
  }));
}

const RECEIPT_KEYS = ["ledger_hash", "received_at", "server_seq", "user_ledger_hash", "user_seq"];

function run(file, args) {
  return new Promise((ok) => execFile(file, args, (error, stdout, stderr) => ok({ code: error ? error.code : 0, stdout, stderr })));
}

describe("sync with annal-server", () => {
  test("(a) 200 events appended offline all reach the server, in order, and the outbox empties", async () => {
    const tenant = "t-a";
    const user = "patient-a";
    const token = await server.token(user, "own", { tenant });
    const r = await page.evaluate(
      async ({ url, token, tenant, user }) => {
        const store = await h.open("sync-a", user, tenant);
        // Offline: no sync configured yet. Appended one by one, as a nurse would.
        for (let i = 1; i <= 200; i++) await store.append(h.ev(i));
        const before = await store.syncStatus();
        const syncStartedAt = Date.now();
        h.configure(store, url, token);
        const report = await store.sync();
        const again = await store.sync();
        return {
          before,
          syncStartedAt,
          report,
          again,
          status: await store.syncStatus(),
          events: (await store.events()).map((e) => ({ deviceSeq: e.deviceSeq, hash: e.hash, eventId: e.eventId, deviceId: e.deviceId })),
          remote: await store.remoteEvents(),
          rejected: await store.rejected(),
          conflicts: await store.conflicts(),
        };
      },
      { url: server.url, token, tenant, user },
    );
    assert.equal(r.before.pending, 200);
    assert.equal(r.before.acked, 0);
    assert.equal(r.before.checkpoint, null);
    assert.equal(r.before.lastSyncAt, null);
    assert.deepEqual(r.report, { pushed: 200, pulled: 0, verified: 200, rejected: 0, conflicts: 0, acked: 200 });
    assert.deepEqual(r.again, { pushed: 0, pulled: 0, verified: 0, rejected: 0, conflicts: 0, acked: 200 });

    // On the server: exactly these 200 events, in device order, with the hashes the device computed.
    const ledger = await server.pull(token);
    assert.equal(ledger.ledger, `user:${user}`);
    const s = summary(ledger);
    assert.equal(s.length, 200);
    assert.deepEqual(
      s.map((x) => x.deviceSeq),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      s.map((x) => x.hash),
      r.events.map((e) => e.hash),
    );
    assert.deepEqual(
      ledger.items.map((i) => i.event.envelope.event_id),
      r.events.map((e) => e.eventId),
    );
    assert.ok(s.every((x) => x.outcome === "accepted" && x.deviceId === r.events[0].deviceId));

    assert.equal(r.status.state, "idle");
    assert.equal(r.status.pending, 0);
    assert.equal(r.status.acked, 200);
    assert.equal(r.status.lastError, null);
    assert.equal(r.status.nextAttemptAt, null);
    assert.ok(r.status.lastSyncAt >= r.syncStartedAt && r.status.lastSyncAt <= Date.now(), JSON.stringify(r.status));
    assert.deepEqual(r.status.checkpoint, { ledger: `user:${user}`, seq: 200, hash: ledger.items[199].entry.hash });
    assert.deepEqual(r.remote, [], "a device's own events are not remote events");
    assert.deepEqual(r.rejected, []);
    assert.deepEqual(r.conflicts, []);

    // The server's copy of record verifies offline.
    const out = join(server.dir, "ledger-a.json");
    await server.exportLedger(tenant, out, user);
    const verified = await run(VERIFY_BIN, [out, "--expect-head", r.status.checkpoint.hash]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /^ok ledger user:patient-a: 200 entries/);
  });

  test("(b) with the server down sync() is ANNAL_OFFLINE and the events wait; after a restart they arrive once", async () => {
    const tenant = "t-b";
    const user = "patient-b";
    const token = await server.token(user, "own", { tenant });
    const first = await page.evaluate(
      async ({ url, token, tenant, user }) => {
        const store = await h.open("sync-b", user, tenant);
        h.configure(store, url, token);
        for (let i = 1; i <= 5; i++) await store.append(h.ev(i));
        return store.sync();
      },
      { url: server.url, token, tenant, user },
    );
    assert.equal(first.pushed, 5);

    await server.kill();
    try {
      const down = await page.evaluate(async () => {
        const store = h.stores["sync-b"];
        for (let i = 6; i <= 12; i++) await store.append(h.ev(i));
        const out = [];
        // Two failed passes in a row: both offline, both leave every event waiting.
        for (let n = 0; n < 2; n++) {
          const startedAt = Date.now();
          const error = await h.caught(() => store.sync());
          const endedAt = Date.now();
          out.push({ error, startedAt, endedAt, status: await store.syncStatus() });
        }
        return out;
      });
      for (const [n, { error, startedAt, endedAt, status }] of down.entries()) {
        assert.equal(error.code, "ANNAL_OFFLINE", JSON.stringify(error));
        assert.equal(error.name, "AnnalOfflineError");
        assert.ok(error.isAnnalError);
        assert.equal(status.state, "offline", JSON.stringify(status));
        assert.equal(status.pending, 7);
        assert.equal(status.acked, 5);
        assert.equal(typeof status.lastError, "string");
        // Full jitter: the n-th retry comes at most 2^n seconds after the failure.
        assert.equal(typeof status.nextAttemptAt, "number", `attempt ${n + 1}: ${JSON.stringify(status)}`);
        assert.ok(status.nextAttemptAt >= startedAt && status.nextAttemptAt <= endedAt + 1000 * 2 ** n, JSON.stringify({ startedAt, endedAt, status }));
      }
    } finally {
      await server.restart();
    }

    const up = await page.evaluate(async () => {
      const store = h.stores["sync-b"];
      return {
        report: await store.sync(),
        status: await store.syncStatus(),
        events: (await store.events()).map((e) => e.hash),
      };
    });
    assert.equal(up.report.pushed, 7);
    assert.equal(up.report.acked, 12);
    assert.equal(up.status.state, "idle");
    assert.equal(up.status.pending, 0);
    assert.equal(up.status.lastError, null);
    assert.equal(up.status.nextAttemptAt, null);
    const s = summary(await server.pull(token));
    assert.deepEqual(
      s.map((x) => x.deviceSeq),
      Array.from({ length: 12 }, (_, i) => i + 1),
      "nothing lost, nothing duplicated",
    );
    assert.deepEqual(
      s.map((x) => x.hash),
      up.events,
    );
  });

  test("(b2) a refused token after an offline pass is state 'error', not 'offline'", async () => {
    const r = await page.evaluate(
      async ({ url }) => {
        const store = await h.open("sync-b2", "patient-b2", "t-b2");
        await store.append(h.ev(1));
        // Nothing listens on port 1 of the loopback: offline.
        store.configureSync({ serverUrl: "http://127.0.0.1:1", getToken: async () => "unused", auto: false });
        const offline = await h.caught(() => store.sync());
        // Then a server that refuses every token: retrying later cannot help.
        store.configureSync({ serverUrl: url, getToken: async () => "not-a-jwt", auto: false });
        const refused = await h.caught(() => store.sync());
        return { offline, refused, status: await store.syncStatus() };
      },
      { url: server.url },
    );
    assert.equal(r.offline.code, "ANNAL_OFFLINE");
    assert.equal(r.refused.code, "ANNAL_UNAUTHORIZED");
    assert.equal(r.status.state, "error", JSON.stringify(r.status));
    assert.equal(r.status.nextAttemptAt, null, JSON.stringify(r.status));
    assert.match(r.status.lastError, /token/);
    assert.equal(r.status.pending, 1);
  });

  test("(c) two devices of one user converge: each holds the other's events, at the same checkpoint", async () => {
    const tenant = "t-c";
    const user = "patient-c";
    const token = await server.token(user, "own", { tenant });
    const r = await page.evaluate(
      async ({ url, token, tenant, user }) => {
        const a = await h.open("sync-c-a", user, tenant);
        const b = await h.open("sync-c-b", user, tenant);
        for (let i = 0; i < 3; i++) await a.append(h.ev(i, { aggregateId: "diary-a" }));
        for (let i = 0; i < 4; i++) await b.append(h.ev(i, { aggregateId: "diary-b" }));
        // B's pulls, as its fetch saw them.
        const pulls = [];
        const recording = async (request, init) => {
          const res = await fetch(request, init);
          if (request.method === "GET" && new URL(request.url).pathname === "/v1/events") pulls.push({ url: request.url, body: await res.clone().json() });
          return res;
        };
        h.configure(a, url, token);
        h.configure(b, url, token, undefined, { fetch: recording });
        const reports = [await a.sync(), await b.sync(), await a.sync()];
        return {
          ids: [a.identity.deviceId, b.identity.deviceId],
          pulls,
          reports,
          events: [await a.events(), await b.events()],
          remote: [await a.remoteEvents(), await b.remoteEvents()],
          status: [await a.syncStatus(), await b.syncStatus()],
          conflicts: [await a.conflicts(), await b.conflicts()],
        };
      },
      { url: server.url, token, tenant, user },
    );
    assert.notEqual(r.ids[0], r.ids[1]);
    assert.deepEqual(
      r.reports.map((x) => [x.pushed, x.pulled, x.verified]),
      [
        [3, 0, 3],
        [4, 3, 7],
        [0, 4, 4],
      ],
    );
    // Protocol 2: B names itself in its pulls, and gets its own events back
    // as references, A's with their bodies.
    assert.ok(r.pulls.length >= 1);
    for (const p of r.pulls) assert.equal(new URL(p.url).searchParams.get("omit_device"), r.ids[1], p.url);
    const items = r.pulls.flatMap((p) => p.body.items);
    assert.deepEqual(
      items.filter((i) => i.own).map((i) => [i.own.device_seq, "event" in i]),
      [1, 2, 3, 4].map((n) => [n, false]),
    );
    assert.deepEqual([...new Set(items.filter((i) => i.event).map((i) => i.event.envelope.device_id))], [r.ids[0]]);
    assert.deepEqual(r.remote[0], r.events[1], "A holds B's events, exactly");
    assert.deepEqual(r.remote[1], r.events[0], "B holds A's events, exactly");
    assert.deepEqual(r.conflicts, [[], []]);
    const ledger = await server.pull(token);
    assert.equal(ledger.items.length, 7);
    const head = ledger.items[6].entry;
    for (const status of r.status) {
      assert.equal(status.state, "idle");
      assert.equal(status.pending, 0);
      assert.deepEqual(status.checkpoint, { ledger: `user:${user}`, seq: 7, hash: head.hash });
    }
  });

  test("(c2) a conflict is stored with the server's reason and listed by conflicts()", async () => {
    const tenant = "t-c2";
    const user = "patient-c2";
    const token = await server.token(user, "own", { tenant });
    const r = await page.evaluate(
      async ({ url, token, tenant, user }) => {
        const a = await h.open("sync-c2-a", user, tenant);
        const b = await h.open("sync-c2-b", user, tenant);
        // Both devices write version 1 of the same aggregate while apart.
        const ea = await a.append(h.ev(1, { aggregateId: "diary-shared" }));
        const eb = await b.append(h.ev(2, { aggregateId: "diary-shared" }));
        h.configure(a, url, token);
        h.configure(b, url, token);
        await a.sync();
        const report = await b.sync();
        return { ea, eb, report, conflicts: await b.conflicts(), status: await b.syncStatus(), aConflicts: await a.conflicts() };
      },
      { url: server.url, token, tenant, user },
    );
    assert.equal(r.report.pushed, 1);
    assert.equal(r.report.conflicts, 1);
    assert.equal(r.status.pending, 0, "a conflict is acknowledged: the outbox drains");
    assert.deepEqual(r.aConflicts, []);
    assert.equal(r.conflicts.length, 1);
    const [c] = r.conflicts;
    assert.deepEqual(Object.keys(c).sort(), ["conflictsWith", "deviceSeq", "eventId", "receipt"]);
    assert.deepEqual(Object.keys(c.receipt).sort(), RECEIPT_KEYS);
    assert.equal(c.deviceSeq, 1);
    assert.equal(c.eventId, r.eb.eventId);
    assert.deepEqual(c.conflictsWith, [r.ea.eventId]);
    const item = (await server.pull(token)).items[1];
    assert.equal(item.entry.outcome, "conflict");
    assert.deepEqual(c.receipt, item.receipt);
  });

  test("(d) a coordinator with scope 'tenant' sees both patients' events", async () => {
    const tenant = "t-d";
    const tokens = {
      p1: await server.token("patient-d1", "own", { tenant }),
      p2: await server.token("patient-d2", "own", { tenant }),
      coord: await server.token("coord-d", "tenant", { tenant }),
    };
    const r = await page.evaluate(
      async ({ url, tokens, tenant }) => {
        const p1 = await h.open("sync-d-p1", "patient-d1", tenant);
        const p2 = await h.open("sync-d-p2", "patient-d2", tenant);
        const coord = await h.open("sync-d-coord", "coord-d", tenant);
        for (let i = 0; i < 3; i++) await p1.append(h.ev(i, { aggregateId: "patient-d1" }));
        for (let i = 0; i < 2; i++) await p2.append(h.ev(i, { aggregateId: "patient-d2" }));
        await coord.append({ aggregateType: "review", aggregateId: "review-d1", eventType: "reviewed", payload: { ok: true } });
        h.configure(p1, url, tokens.p1);
        h.configure(p2, url, tokens.p2);
        h.configure(coord, url, tokens.coord, "tenant");
        await p1.sync();
        await p2.sync();
        const report = await coord.sync();
        return {
          report,
          patients: [...(await p1.events()), ...(await p2.events())],
          remote: await coord.remoteEvents(),
          status: await coord.syncStatus(),
          p1Remote: await p1.remoteEvents(),
        };
      },
      { url: server.url, tokens, tenant },
    );
    assert.equal(r.report.pushed, 1);
    assert.equal(r.report.rejected, 0);
    assert.equal(r.report.pulled, 5);
    assert.equal(r.report.verified, 6);
    const ledger = await server.pull(tokens.coord);
    assert.equal(ledger.ledger, "tenant");
    assert.equal(ledger.items.length, 6);
    // Every patient event, exactly, in ledger order; not the coordinator's own.
    const byHash = new Map(r.patients.map((e) => [e.hash, e]));
    const expected = ledger.items.map((i) => byHash.get(i.event.envelope.hash)).filter(Boolean);
    assert.equal(expected.length, 5);
    assert.deepEqual(r.remote, expected);
    assert.deepEqual(r.status.checkpoint, { ledger: "tenant", seq: 6, hash: ledger.items[5].entry.hash });
    assert.deepEqual(r.p1Remote, [], "a patient's own scope does not see the other patient");
  });

  test("(e) a quarantined event is listed by rejected() with the server's reason, and the outbox still drains", async () => {
    // A second server that accepts `noted` events only up to schema version 1.
    const strict = await startAnnalServer({ origin: pages.url, args: ["--max-schema", "noted=1"] });
    try {
      const tenant = "t-e";
      const user = "patient-e";
      const token = await strict.token(user, "own", { tenant });
      const r = await page.evaluate(
        async ({ url, token, tenant, user }) => {
          const store = await h.open("sync-e", user, tenant);
          await store.append(h.ev(1, { eventType: "noted" }));
          const bad = await store.append(h.ev(2, { eventType: "noted", schemaVersion: 2 }));
          await store.append(h.ev(3, { eventType: "noted" }));
          h.configure(store, url, token);
          const report = await store.sync();
          return {
            bad,
            report,
            rejected: await store.rejected(),
            conflicts: await store.conflicts(),
            status: await store.syncStatus(),
            count: (await store.events()).length,
            again: await store.sync(),
            rejectedAgain: await store.rejected(),
          };
        },
        { url: strict.url, token, tenant, user },
      );
      assert.equal(r.report.pushed, 3);
      assert.equal(r.report.rejected, 1);
      assert.equal(r.status.pending, 0);
      assert.equal(r.status.acked, 3);
      assert.equal(r.status.state, "idle");
      assert.equal(r.count, 3, "the quarantined event stays in the local log");
      assert.deepEqual(r.conflicts, []);
      assert.equal(r.rejected.length, 1);
      const [q] = r.rejected;
      assert.deepEqual(Object.keys(q).sort(), ["code", "deviceSeq", "eventId", "message", "receipt"]);
      assert.equal(q.deviceSeq, 2);
      assert.equal(q.eventId, r.bad.eventId);
      assert.equal(q.code, "SCHEMA_NOT_ALLOWED");
      assert.equal(typeof q.message, "string");
      assert.ok(q.message.length > 0);
      assert.deepEqual(Object.keys(q.receipt).sort(), RECEIPT_KEYS);
      const items = (await strict.pull(token)).items;
      assert.deepEqual(
        items.map((i) => i.entry.outcome),
        ["accepted", "quarantined", "accepted"],
      );
      assert.equal(items[1].quarantine.code, "SCHEMA_NOT_ALLOWED");
      assert.deepEqual(q.receipt, items[1].receipt);
      assert.equal(r.again.pushed, 0);
      assert.deepEqual(r.rejectedAgain, r.rejected, "kept, not listed twice");
    } finally {
      await strict.close();
    }
  });

  test("(f) a refused token is refreshed with getToken(true), and nothing is lost", async () => {
    const tenant = "t-f";
    const user = "patient-f";
    const good = await server.token(user, "own", { tenant });
    const expired = server.expiredToken(user, "own", { tenant });
    const r = await page.evaluate(
      async ({ url, good, expired, tenant, user }) => {
        const store = await h.open("sync-f", user, tenant);
        for (let i = 1; i <= 3; i++) await store.append(h.ev(i));
        const calls = [];
        let refreshed = false;
        store.configureSync({
          serverUrl: url,
          auto: false,
          getToken: async (refresh) => {
            calls.push(refresh);
            if (refresh) refreshed = true;
            return refreshed ? good : expired;
          },
        });
        const report = await store.sync();
        // A server that refuses even the fresh token.
        const other = await h.open("sync-f-2", user, tenant);
        await other.append(h.ev(1));
        const calls2 = [];
        other.configureSync({
          serverUrl: url,
          auto: false,
          getToken: async (refresh) => {
            calls2.push(refresh);
            return "not-a-jwt";
          },
        });
        const refused = await h.caught(() => other.sync());
        return { calls, report, status: await store.syncStatus(), calls2, refused, otherStatus: await other.syncStatus() };
      },
      { url: server.url, good, expired, tenant, user },
    );
    assert.ok(r.calls.includes(true), `getToken(true) was called: ${JSON.stringify(r.calls)}`);
    assert.equal(r.calls[0], false);
    assert.equal(r.report.pushed, 3);
    assert.equal(r.status.pending, 0);
    assert.equal(summary(await server.pull(good)).length, 3);

    assert.equal(r.refused.code, "ANNAL_UNAUTHORIZED", JSON.stringify(r.refused));
    assert.equal(r.refused.name, "AnnalUnauthorizedError");
    // The last call refreshed, once; then sync gives up rather than loop.
    assert.equal(r.calls2.filter((refresh) => refresh).length, 1, JSON.stringify(r.calls2));
    assert.equal(r.calls2.at(-1), true, JSON.stringify(r.calls2));
    assert.equal(r.otherStatus.pending, 1, "the event waits");
    assert.equal(r.otherStatus.state, "error");
    assert.equal(typeof r.otherStatus.lastError, "string");
  });

  test("(g) sync() before configureSync() is ANNAL_VALIDATION, and so are bad sync options", async () => {
    const r = await page.evaluate(async () => {
      const store = await h.open("sync-g", "patient-g", "t-g");
      const getToken = async () => "t";
      return {
        unconfigured: await h.caught(() => store.sync()),
        noUrl: await h.caught(() => store.configureSync({ getToken })),
        ftpUrl: await h.caught(() => store.configureSync({ serverUrl: "ftp://127.0.0.1", getToken })),
        noGetToken: await h.caught(() => store.configureSync({ serverUrl: "http://127.0.0.1:1" })),
        badScope: await h.caught(() => store.configureSync({ serverUrl: "http://127.0.0.1:1", getToken, scope: "everything" })),
        stillUnconfigured: await h.caught(() => store.sync()),
        status: await store.syncStatus(),
      };
    });
    const { status, ...errors } = r;
    for (const [name, e] of Object.entries(errors)) {
      assert.equal(e.code, "ANNAL_VALIDATION", `${name}: ${JSON.stringify(e)}`);
      assert.equal(e.name, "AnnalValidationError", name);
      assert.ok(e.isAnnalError, name);
    }
    assert.equal(r.noGetToken.field, "getToken");
    assert.equal(r.badScope.field, "scope");
    assert.equal(status.state, "idle");
    assert.equal(status.pending, 0);
  });

  test("(h) encrypted stores sync, and pulled events stay readable through remoteEvents() and sealed at rest", async () => {
    const tenant = "t-h";
    const user = "patient-h";
    const token = await server.token(user, "own", { tenant });
    const MARKER = "MARKER-SYNC-PAYLOAD-5e1d";
    const r = await page.evaluate(
      async ({ url, token, tenant, user, MARKER }) => {
        const a = await h.open("sync-h-a", user, tenant, { keyEncryptionKey: await h.kek(1) });
        const b = await h.open("sync-h-b", user, tenant, { keyEncryptionKey: await h.kek(2) });
        for (let i = 1; i <= 3; i++) await a.append(h.ev(i, { payload: { i, note: MARKER } }));
        await b.append(h.ev(9));
        h.configure(a, url, token);
        h.configure(b, url, token);
        const reports = [await a.sync(), await b.sync()];
        const out = {
          encrypted: [a.encrypted, b.encrypted],
          reports,
          aEvents: await a.events(),
          bEvents: await b.events(),
          remote: await b.remoteEvents(),
          status: await b.syncStatus(),
          sealedAtRest: !(await h.rawContains("annal:sync-h-b", MARKER)),
        };
        b.lock();
        out.locked = {
          remoteEvents: await h.caught(() => b.remoteEvents()),
          sync: await h.caught(() => b.sync()),
          rejected: await h.caught(() => b.rejected()),
          conflicts: await h.caught(() => b.conflicts()),
        };
        // A locked store still tells the app where sync stands, without a key.
        await b.append(h.ev(10)).catch(() => undefined);
        out.lockedStatus = await b.syncStatus();
        await b.unlock({ keyEncryptionKey: await h.kek(2) });
        out.unlockedRemote = await b.remoteEvents();
        // A row as layout 2 stored it beside a layout-3 pack: both read, and
        // both move to a new data key.
        await h.splitFirstRemoteRow("annal:sync-h-b");
        out.mixedRemote = await b.remoteEvents();
        out.keyIdsBefore = await h.remoteKeyIds("annal:sync-h-b");
        await b.rotateDataKey();
        out.reencrypted = (await b.reencryptAll()).keyId;
        out.keyIdsAfter = await h.remoteKeyIds("annal:sync-h-b");
        out.remoteAfter = await b.remoteEvents();
        return out;
      },
      { url: server.url, token, tenant, user, MARKER },
    );
    assert.deepEqual(r.encrypted, [true, true]);
    assert.deepEqual(
      r.reports.map((x) => [x.pushed, x.pulled]),
      [
        [3, 0],
        [1, 3],
      ],
    );
    assert.deepEqual(r.remote, r.aEvents, "B reads A's events, decrypted, exactly");
    assert.equal(r.remote[0].payload.note, MARKER);
    assert.equal(r.status.pending, 0);
    assert.ok(r.sealedAtRest, "pulled payloads are not stored in the clear");
    for (const [call, e] of Object.entries(r.locked)) assert.equal(e.code, "ANNAL_LOCKED", `${call}: ${JSON.stringify(e)}`);
    assert.equal(r.lockedStatus.state, "locked");
    assert.equal(r.lockedStatus.pending, 0, "nothing was appended while locked");
    assert.equal(r.lockedStatus.acked, 1);
    assert.deepEqual(r.unlockedRemote, r.aEvents);
    assert.deepEqual(r.mixedRemote, r.aEvents, "a layout-2 row and a pack read back alike");
    assert.deepEqual([r.keyIdsBefore, r.reencrypted, r.keyIdsAfter], [[1, 1, 1], 2, [2, 2, 2]]);
    assert.deepEqual(r.remoteAfter, r.aEvents);
    const s = summary(await server.pull(token));
    assert.deepEqual(
      s.map((x) => x.hash),
      [...r.aEvents, ...r.bEvents].map((e) => e.hash),
    );
  });
  test("(h2) an encrypted store keeps the server's reasons for a quarantine sealed at rest", async () => {
    // The server's message names the event type, which an encrypted store
    // never keeps in the clear (docs/FORMAT.md §8.4.6).
    const EVENT_TYPE = "MARKER-SYNC-EVT-a7c3";
    const strict = await startAnnalServer({ origin: pages.url, args: ["--max-schema", `${EVENT_TYPE}=1`] });
    try {
      const tenant = "t-h2";
      const user = "patient-h2";
      const token = await strict.token(user, "own", { tenant });
      const r = await page.evaluate(
        async ({ url, token, tenant, user, EVENT_TYPE }) => {
          const store = await h.open("sync-h2", user, tenant, { keyEncryptionKey: await h.kek(3) });
          await store.append(h.ev(1, { eventType: EVENT_TYPE, schemaVersion: 2 }));
          h.configure(store, url, token);
          return {
            report: await store.sync(),
            rejected: await store.rejected(),
            inTheClear: await h.rawContains("annal:sync-h2", EVENT_TYPE),
          };
        },
        { url: strict.url, token, tenant, user, EVENT_TYPE },
      );
      assert.equal(r.report.rejected, 1);
      assert.equal(r.rejected[0].code, "SCHEMA_NOT_ALLOWED");
      assert.ok(r.rejected[0].message.includes(EVENT_TYPE), "rejected() gives the server's message as it came");
      assert.equal(r.inTheClear, false, "the event type is nowhere in IndexedDB in the clear");
    } finally {
      await strict.close();
    }
  });
});
