// Every error code, raised for real from JavaScript: each is an Error, an
// AnnalError and its own subclass, with a stable code and a message.

import { test } from "node:test";
import assert from "node:assert/strict";
import { openPage, useBrowser } from "./harness.mjs";

const env = useBrowser();

// Runs `provoke` in the page and describes what it threw.
async function thrown(provoke, arg) {
  return env.page.evaluate(
    async ([source, arg]) => {
      const provoke = eval(`(${source})`);
      const classes = {
        ANNAL_VALIDATION: annal.AnnalValidationError,
        ANNAL_VERSION_CONFLICT: annal.AnnalVersionConflictError,
        ANNAL_STORAGE: annal.AnnalStorageError,
        ANNAL_QUOTA_EXCEEDED: annal.AnnalQuotaExceededError,
        ANNAL_TAMPERED: annal.AnnalTamperedError,
        ANNAL_CLOSED: annal.AnnalClosedError,
        ANNAL_SCHEMA: annal.AnnalSchemaError,
        ANNAL_BAD_KEY: annal.AnnalBadKeyError,
        ANNAL_LOCKED: annal.AnnalLockedError,
      };
      try {
        await provoke(arg);
        return { threw: false };
      } catch (e) {
        return {
          threw: true,
          isError: e instanceof Error,
          isAnnalError: e instanceof annal.AnnalError,
          isSubclass: e.code in classes && e instanceof classes[e.code],
          name: e.name,
          code: e.code,
          message: e.message,
          field: e.field,
          deviceSeq: e.deviceSeq,
          isString: typeof e === "string",
        };
      }
    },
    [provoke.toString(), arg],
  );
}

const NAMES = {
  ANNAL_VALIDATION: "AnnalValidationError",
  ANNAL_VERSION_CONFLICT: "AnnalVersionConflictError",
  ANNAL_STORAGE: "AnnalStorageError",
  ANNAL_QUOTA_EXCEEDED: "AnnalQuotaExceededError",
  ANNAL_TAMPERED: "AnnalTamperedError",
  ANNAL_CLOSED: "AnnalClosedError",
  ANNAL_SCHEMA: "AnnalSchemaError",
  ANNAL_BAD_KEY: "AnnalBadKeyError",
  ANNAL_LOCKED: "AnnalLockedError",
  ANNAL_OFFLINE: "AnnalOfflineError",
  ANNAL_UNAUTHORIZED: "AnnalUnauthorizedError",
  ANNAL_LEDGER_FORK: "AnnalLedgerForkError",
  ANNAL_SCHEMA_INCOMPATIBLE: "AnnalSchemaIncompatibleError",
  ANNAL_CANCELLED: "AnnalCancelledError",
};

function assertCode(result, code) {
  assert.equal(result.threw, true, `expected ${code}`);
  assert.equal(result.code, code, result.message);
  assert.equal(result.isError, true);
  assert.equal(result.isAnnalError, true);
  assert.equal(result.isSubclass, true);
  assert.equal(result.name, NAMES[code]);
  assert.equal(result.isString, false);
  assert.ok(result.message.length > 20, result.message);
}

test("ANNAL_VALIDATION names the field", async () => {
  const r = await thrown(async () => {
    await annal.EventStore.destroy("err-validation");
    const s = await annal.EventStore.open({ name: "err-validation", userId: "u" });
    await s.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: { dose: NaN } });
  });
  assertCode(r, "ANNAL_VALIDATION");
  assert.equal(r.field, "payload.dose");
  assert.match(r.message, /NaN/);
});

test("ANNAL_VERSION_CONFLICT", async () => {
  const r = await thrown(async () => {
    await annal.EventStore.destroy("err-conflict");
    const s = await annal.EventStore.open({ name: "err-conflict", userId: "u" });
    const e = { aggregateType: "t", aggregateId: "a", eventType: "e", payload: {} };
    await s.append({ ...e, expectedVersion: 0 });
    await s.append({ ...e, expectedVersion: 0 });
  });
  assertCode(r, "ANNAL_VERSION_CONFLICT");
  assert.match(r.message, /version 1, not the expected 0/);
});

test("ANNAL_STORAGE where IndexedDB is unavailable (a sandboxed frame)", async () => {
  const r = await env.page.evaluate(
    () =>
      new Promise((ok) => {
        addEventListener("message", (m) => ok({ threw: true, ...m.data }), { once: true });
        const frame = document.createElement("iframe");
        frame.sandbox = "allow-scripts";
        frame.src = "/sandboxed.html";
        document.body.append(frame);
      }),
  );
  assertCode({ ...r, isString: false }, "ANNAL_STORAGE");
  assert.match(r.message, /IndexedDB is not available/);
});

test("ANNAL_QUOTA_EXCEEDED when the origin is out of quota", async () => {
  // Chromium enforces an overridden quota only on storage first used after
  // the override, so this runs in a context of its own.
  const own = await env.browser.newContext();
  try {
    const quotaPage = await openPage(own, env.url);
    const cdp = await own.newCDPSession(quotaPage);
    await cdp.send("Storage.overrideQuotaForOrigin", { origin: env.url, quotaSize: 256 * 1024 });
    const r = await quotaPage.evaluate(async () => {
      const s = await annal.EventStore.open({ name: "err-quota", userId: "u" });
      const e = { aggregateType: "t", aggregateId: "a", eventType: "e" };
      await s.append({ ...e, payload: { n: 1 } });
      let error;
      try {
        await s.append({ ...e, payload: { blob: "q".repeat(900_000) } });
      } catch (thrown) {
        error = {
          threw: true,
          isError: thrown instanceof Error,
          isAnnalError: thrown instanceof annal.AnnalError,
          isSubclass: thrown instanceof annal.AnnalQuotaExceededError,
          isString: false,
          name: thrown.name,
          code: thrown.code,
          message: thrown.message,
        };
      }
      const small = await s.append({ ...e, payload: { n: 2 } });
      return { error, seq: small.deviceSeq, verdict: await s.verify() };
    });
    assertCode(r.error ?? { threw: false }, "ANNAL_QUOTA_EXCEEDED");
    assert.equal(r.seq, 2, "the refused event left no trace and the store still works");
    assert.deepEqual(r.verdict, { ok: true, checked: 2 });
  } finally {
    await own.close();
  }
});

test("ANNAL_TAMPERED names the event", async () => {
  const r = await thrown(async () => {
    await annal.EventStore.destroy("err-tampered");
    const s = await annal.EventStore.open({ name: "err-tampered", userId: "u" });
    for (let i = 0; i < 3; i++) await s.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: { i } });
    await testing.tamper("err-tampered", { kind: "changeField", seq: 2 });
    await s.aggregate("a");
  });
  assertCode(r, "ANNAL_TAMPERED");
  assert.equal(r.deviceSeq, 2);
});

test("ANNAL_CLOSED after close()", async () => {
  const r = await thrown(async () => {
    const s = await annal.EventStore.open({ name: "err-closed", userId: "u" });
    s.close();
    await s.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: {} });
  });
  assertCode(r, "ANNAL_CLOSED");
  assert.match(r.message, /open it again/);
});

test("ANNAL_SCHEMA for a database from a newer annal", async () => {
  const r = await thrown(async () => {
    await annal.EventStore.destroy("err-schema");
    await new Promise((ok, fail) => {
      const req = indexedDB.open("annal:err-schema", 9);
      req.onsuccess = () => (req.result.close(), ok());
      req.onerror = () => fail(req.error);
    });
    await annal.EventStore.open({ name: "err-schema", userId: "u" });
  });
  assertCode(r, "ANNAL_SCHEMA");
  assert.match(r.message, /version 9/);
});

// A key-encryption key from 32 known bytes, as an app would get one from a platform key store.
async function kek(seed) {
  const raw = Uint8Array.from({ length: 32 }, (_, i) => (i + seed) & 0xff);
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

test("ANNAL_BAD_KEY for a key that does not unlock an encrypted store", async () => {
  const r = await thrown(async (kekSource) => {
    const kek = eval(`(${kekSource})`);
    await annal.EventStore.destroy("err-bad-key");
    const s = await annal.EventStore.open({ name: "err-bad-key", userId: "u", keyEncryptionKey: await kek(1) });
    await s.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: {} });
    s.close();
    await annal.EventStore.open({ name: "err-bad-key", userId: "u", keyEncryptionKey: await kek(2) });
  }, kek.toString());
  assertCode(r, "ANNAL_BAD_KEY");
});

test("ANNAL_LOCKED after lock()", async () => {
  const r = await thrown(async (kekSource) => {
    const kek = eval(`(${kekSource})`);
    await annal.EventStore.destroy("err-locked");
    const s = await annal.EventStore.open({ name: "err-locked", userId: "u", keyEncryptionKey: await kek(1) });
    s.lock();
    await s.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: {} });
  }, kek.toString());
  assertCode(r, "ANNAL_LOCKED");
  assert.match(r.message, /unlock/);
});

test("every error code has its class, exported by the package", async () => {
  const exported = await env.page.evaluate(() =>
    Object.keys(annal)
      .filter((k) => /^Annal\w*Error$/.test(k))
      .sort(),
  );
  assert.deepEqual(exported, ["AnnalError", "AnnalInternalError", ...Object.values(NAMES)].sort());
});

// The package is minified, which renames classes: each keeps its own name
// anyway, as a class and on what it throws.
test("every error class is named as it is exported", async () => {
  const names = await env.page.evaluate(() =>
    Object.entries(annal)
      .filter(([k]) => /^Annal\w*Error$/.test(k))
      .map(([k, cls]) => [k, cls.name, new cls("ANNAL_INTERNAL", "m").name]),
  );
  assert.ok(names.length > 10, JSON.stringify(names));
  for (const [exported, className, errorName] of names) {
    assert.equal(className, exported);
    assert.equal(errorName, exported);
  }
});
