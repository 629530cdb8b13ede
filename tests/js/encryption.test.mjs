// Encryption at rest (docs/FORMAT.md §8.4), through the packed package in
// headless Chromium: nothing readable at rest, credentials and locking,
// tamper detection on sealed records, key rotation and resumable
// re-encryption, recovery secrets, an app-supplied CryptoKey checked
// against an independent WebCrypto reading of the format, and locks and
// rotations shared between tabs and workers.
//
// PBKDF2 with 600,000 iterations costs a noticeable fraction of a second
// per passphrase, so only the tests about passphrases use one; the rest
// use a keyEncryptionKey.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { openPage, useBrowser } from "./harness.mjs";

const env = useBrowser();
const PASSPHRASE = "correct horse battery staple";

const MARKERS = {
  payload: "MARKER-PAYLOAD-7f3a",
  aggregateId: "MARKER-AGG-91c2",
  aggregateType: "MARKER-TYPE-55d0",
  eventType: "MARKER-EVT-3b8e",
  idempotencyKey: "MARKER-IDEM-c4d1",
  correlationId: "MARKER-CORR-0a6f",
};

// Installed in every page and worker as `self.h`. Runs in the browser.
function installHelpers() {
  const annal = self.annal;
  const req = (r) =>
    new Promise((ok, fail) => {
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
  const h = {
    /** A non-extractable AES-GCM 256 key from 32 known bytes. */
    kek(seed = 1) {
      const raw = Uint8Array.from({ length: 32 }, (_, i) => (i * 31 + seed * 7) & 0xff);
      return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    },
    describe(e) {
      return {
        threw: true,
        isError: e instanceof Error,
        isAnnalError: e instanceof annal.AnnalError,
        name: e?.name,
        code: e?.code,
        message: String(e?.message ?? e),
        deviceSeq: e?.deviceSeq,
      };
    },
    /** Runs `f` (a function or a promise) and describes what it threw. */
    async caught(f) {
      try {
        await (typeof f === "function" ? f() : f);
        return { threw: false };
      } catch (e) {
        return h.describe(e);
      }
    },
    ev(i, extra = {}) {
      return { aggregateType: "diary", aggregateId: `patient-${i % 3}`, eventType: i % 2 ? "symptom-recorded" : "dose-taken", payload: { i }, ...extra };
    },
    async appendEach(store, n, from = 1) {
      for (let i = from; i < from + n; i++) await store.append(h.ev(i));
    },
    sleep: (ms) => new Promise((ok) => setTimeout(ok, ms)),
    /** Resolves with the next `lockchange` of `store`, or "timeout". */
    nextLockChange(store, ms = 15000) {
      return new Promise((ok) => {
        const timer = setTimeout(() => ok("timeout"), ms);
        store.addEventListener(
          "lockchange",
          (e) => {
            clearTimeout(timer);
            ok({ locked: e.locked, detail: e.detail?.locked, isEvent: e instanceof Event, isLockChange: e instanceof annal.LockChangeEvent });
          },
          { once: true },
        );
      });
    },
    /**
     * Counts calls of crypto.subtle.encrypt until `restore()`.
     * `counted(f)` resolves to [the calls made while f ran, f's value];
     * `during(g)` runs g once, awaited inside the next call.
     */
    countEncrypts() {
      const subtle = crypto.subtle;
      const original = subtle.encrypt;
      let calls = 0;
      let hook = null;
      subtle.encrypt = async function (...args) {
        calls++;
        if (hook) {
          const f = hook;
          hook = null;
          await f();
        }
        return original.apply(subtle, args);
      };
      return {
        async counted(f) {
          const before = calls;
          const value = await f();
          return [calls - before, value];
        },
        during(f) {
          hook = f;
        },
        restore() {
          subtle.encrypt = original;
        },
      };
    },
    openDb(dbName) {
      return new Promise((ok, fail) => {
        const r = indexedDB.open(dbName);
        r.onsuccess = () => ok(r.result);
        r.onerror = () => fail(r.error);
      });
    },
    /** Raw page values of store `name`, in key order. */
    async pages(name) {
      const db = await h.openDb(`annal:${name}`);
      try {
        return await req(db.transaction("pages").objectStore("pages").getAll());
      } finally {
        db.close();
      }
    },
    /** The key id in the clear header of every sealed record, by device_seq. */
    async keyIds(name) {
      const out = {};
      for (const p of await h.pages(name)) for (const r of testingLib().decodeSealedPage(p.records)) out[r.deviceSeq] = r.keyId;
      return out;
    },
    /**
     * Everything IndexedDB holds for `dbName`, read raw: the database and
     * object store names, every value and key, every index's keys (through
     * a key cursor) and primary keys, and indexedDB.databases().
     */
    async rawDump(dbName) {
      const db = await h.openDb(dbName);
      const dump = { dbName: db.name, storeNames: [...db.objectStoreNames], stores: {} };
      for (const s of dump.storeNames) {
        const os = db.transaction(s).objectStore(s);
        const entry = { keyPath: os.keyPath, values: await req(os.getAll()), keys: await req(os.getAllKeys()), indexes: {} };
        for (const ix of [...os.indexNames]) {
          const index = os.index(ix);
          const indexKeys = await new Promise((ok, fail) => {
            const keys = [];
            const c = index.openKeyCursor();
            c.onsuccess = () => {
              const cursor = c.result;
              if (!cursor) return ok(keys);
              keys.push([cursor.key, cursor.primaryKey]);
              cursor.continue();
            };
            c.onerror = () => fail(c.error);
          });
          entry.indexes[ix] = { name: index.name, keyPath: index.keyPath, indexKeys, primaryKeys: await req(index.getAllKeys()) };
        }
        dump.stores[s] = entry;
      }
      // And the same values one by one, through a value cursor, with their keys.
      for (const s of dump.storeNames) {
        dump.stores[s].cursor = await new Promise((ok, fail) => {
          const rows = [];
          const c = db.transaction(s).objectStore(s).openCursor();
          c.onsuccess = () => {
            const cursor = c.result;
            if (!cursor) return ok(rows);
            rows.push([cursor.key, cursor.value]);
            cursor.continue();
          };
          c.onerror = () => fail(c.error);
        });
      }
      dump.databases = await indexedDB.databases();
      db.close();
      return dump;
    },
    /**
     * Every place a marker occurs in `value`: strings (also as hex),
     * object keys, and bytes of any typed array, ArrayBuffer or Blob (as
     * UTF-8 and UTF-16LE). Also searches a JSON rendering that turns bytes
     * into Latin-1 text. Returns { hits, strings, bytes } so an empty
     * result can be told from a scan that saw nothing.
     */
    async findMarkers(value, markers) {
      const enc = new TextEncoder();
      const hex = (s) => Array.from(enc.encode(s), (b) => b.toString(16).padStart(2, "0")).join("");
      const needles = markers.flatMap((m) => [
        { m, bytes: enc.encode(m) },
        { m, bytes: Uint8Array.from([...m].flatMap((c) => [c.charCodeAt(0), 0])) },
      ]);
      const stats = { hits: [], strings: 0, bytes: 0 };
      const hasBytes = (hay, needle) => {
        outer: for (let i = 0; i + needle.length <= hay.length; i++) {
          for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
          return true;
        }
        return false;
      };
      const seeString = (s, path) => {
        stats.strings++;
        const lower = s.toLowerCase();
        for (const m of markers) {
          if (lower.includes(m.toLowerCase())) stats.hits.push(`${path}: ${m}`);
          if (lower.includes(hex(m))) stats.hits.push(`${path}: ${m} as hex`);
        }
      };
      const seeBytes = (b, path) => {
        stats.bytes += b.length;
        for (const n of needles) if (hasBytes(b, n.bytes)) stats.hits.push(`${path}: ${n.m} in bytes`);
      };
      const seen = new Set();
      const walk = async (v, path) => {
        if (v === null || v === undefined) return;
        if (typeof v === "string") return seeString(v, path);
        if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return seeString(String(v), path);
        if (typeof v !== "object") return;
        if (seen.has(v)) return;
        seen.add(v);
        if (v instanceof ArrayBuffer) return seeBytes(new Uint8Array(v), path);
        if (ArrayBuffer.isView(v)) return seeBytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), path);
        if (v instanceof Blob) return seeBytes(new Uint8Array(await v.arrayBuffer()), path);
        if (v instanceof Date) return seeString(v.toISOString(), path);
        if (v instanceof Map || v instanceof Set) {
          let i = 0;
          for (const x of v) await walk(x, `${path}[${i++}]`);
          return;
        }
        for (const k of Reflect.ownKeys(v)) {
          const name = typeof k === "symbol" ? k.toString() : k;
          seeString(name, `${path}.<key>`);
          await walk(v[k], `${path}.${name}`);
        }
      };
      await walk(value, "$");
      const json = JSON.stringify(value, (_k, v) => {
        if (v instanceof ArrayBuffer) v = new Uint8Array(v);
        if (ArrayBuffer.isView(v)) return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), (b) => String.fromCharCode(b)).join("");
        return v;
      });
      seeString(json, "JSON");
      return stats;
    },
  };
  // The testing module lives on window.testing in pages; workers import it lazily.
  const testingLib = () => self.testing;
  self.h = h;
}

async function helpers(target) {
  await target.evaluate(installHelpers);
}

// Runs `fn` in the main test page, with the helpers installed.
async function run(fn, arg) {
  if (!(await env.page.evaluate(() => "h" in self))) await helpers(env.page);
  return env.page.evaluate(fn, arg);
}

function assertError(r, code, name) {
  assert.equal(r.threw, true, `expected ${code}, nothing was thrown`);
  assert.equal(r.code, code, r.message);
  assert.equal(r.name, name, r.message);
  assert.equal(r.isError, true);
  assert.equal(r.isAnnalError, true);
  assert.ok(r.message.length > 20, r.message);
}

describe("encryption at rest", () => {
  test("nothing of payloads, ids or types is readable in IndexedDB; queries still work", async () => {
    const r = await run(
      async ([markers, passphrase]) => {
        const run = async (name, credential) => {
          await annal.EventStore.destroy(name);
          const s = await annal.EventStore.open({ name, userId: "nurse-1", tenantId: "study-1", ...credential });
          const marked = (i) => ({
            aggregateType: `diary-${markers.aggregateType}`,
            aggregateId: `patient-${markers.aggregateId}`,
            eventType: `noted-${markers.eventType}`,
            payload: { note: `pain ${markers.payload}`, i, nested: { list: [markers.payload] } },
            correlationId: `visit-${markers.correlationId}`,
          });
          await s.append({ ...marked(0), idempotencyKey: `form-${markers.idempotencyKey}` });
          await s.appendBatch([marked(1), marked(2), h.ev(3), h.ev(4)]);
          await s.append(h.ev(5, { aggregateId: "other" }));
          const all = await s.events();
          const out = {
            encrypted: s.encrypted,
            locked: s.locked,
            count: all.length,
            first: all[0],
            byAggregate: (await s.events({ aggregateId: `patient-${markers.aggregateId}` })).map((e) => e.deviceSeq),
            byType: (await s.events({ aggregateType: `diary-${markers.aggregateType}` })).map((e) => e.deviceSeq),
            byEventType: (await s.events({ eventType: `noted-${markers.eventType}` })).map((e) => e.deviceSeq),
            byEventTypeIterated: [],
            aggregate: await s.aggregate(`patient-${markers.aggregateId}`),
            retry: (await s.append({ ...marked(0), idempotencyKey: `form-${markers.idempotencyKey}` })).deviceSeq,
            verify: await s.verify(),
          };
          for await (const e of s.iterate({ eventType: "dose-taken" })) out.byEventTypeIterated.push(e.deviceSeq);
          s.close();
          const dump = await h.rawDump(`annal:${name}`);
          const meta = Object.fromEntries(dump.stores.meta.keys.map((k, i) => [k, dump.stores.meta.values[i]]));
          out.metaKeys = Object.keys(meta).sort();
          out.metaStore = { layout: meta.store.layout, encryption: meta.store.encryption };
          out.headMac = meta.head.mac;
          out.scan = await h.findMarkers(dump, Object.values(markers));
          out.pageCount = dump.stores.pages.values.length;
          out.indexNames = Object.keys(dump.stores.pages.indexes);
          out.indexKeyCount = Object.values(dump.stores.pages.indexes).reduce((n, ix) => n + ix.indexKeys.length, 0);
          return out;
        };
        return {
          sealed: await run("enc-clear", { passphrase }),
          plain: await run("enc-clear-control", {}),
        };
      },
      [MARKERS, PASSPHRASE],
    );
    const { sealed, plain } = r;
    // The scanner works: a plain store shows every marker.
    for (const m of Object.values(MARKERS)) {
      assert.ok(plain.scan.hits.some((h) => h.includes(m)), `the control scan did not find ${m} in a plain store`);
    }
    assert.equal(sealed.encrypted, true);
    assert.equal(sealed.locked, false);
    assert.equal(plain.encrypted, false);
    assert.deepEqual(sealed.metaStore, { layout: 2, encryption: { cipher: "AES-256-GCM", blind_indexes: true } });
    assert.ok(sealed.pageCount >= 3 && sealed.indexKeyCount > 0, "the dump saw pages and index keys");
    assert.ok(sealed.scan.strings > 50 && sealed.scan.bytes > 1000, `the scan saw little: ${JSON.stringify(sealed.scan)}`);
    assert.deepEqual(sealed.scan.hits, [], "markers readable at rest in an encrypted store");
    assert.deepEqual(sealed.metaKeys, ["head", "keyring", "keys", "store"]);
    assert.match(sealed.headMac, /^[0-9a-f]{64}$/);
    // Reads and queries work on the encrypted store as on a plain one.
    for (const which of [sealed, plain]) {
      assert.equal(which.count, 6);
      assert.equal(which.first.payload.note, `pain ${MARKERS.payload}`);
      assert.deepEqual(which.first.payload.nested, { list: [MARKERS.payload] });
      assert.equal(which.first.correlationId, `visit-${MARKERS.correlationId}`);
      assert.deepEqual(which.byAggregate, [1, 2, 3]);
      assert.deepEqual(which.byType, [1, 2, 3]);
      assert.deepEqual(which.byEventType, [1, 2, 3]);
      assert.deepEqual(which.byEventTypeIterated, [5]);
      assert.equal(which.aggregate.version, 3);
      assert.equal(which.aggregate.events.length, 3);
      assert.equal(which.retry, 1, "an idempotent retry finds the blinded key");
      assert.deepEqual(which.verify, { ok: true, checked: 6 });
    }
  });

  test("blindIndexes: false keeps index values in the clear and still encrypts every record", async () => {
    const r = await run(async (markers) => {
      const name = "enc-clear-index";
      await annal.EventStore.destroy(name);
      const kek = await h.kek(6);
      const s = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: kek, blindIndexes: false });
      const e = { aggregateType: "diary", aggregateId: markers.aggregateId, eventType: "noted", payload: { note: markers.payload } };
      for (let i = 0; i < 4; i++) await s.append({ ...e, payload: { ...e.payload, i } });
      const dump = await h.rawDump(`annal:${name}`);
      const keys = await testing.openKeys(name, { keyEncryptionKey: kek });
      const out = {
        byAggregate: (await s.events({ aggregateId: markers.aggregateId })).length,
        encryption: dump.stores.meta.values[dump.stores.meta.keys.indexOf("store")].encryption,
        pageIds: dump.stores.pages.values.map((p) => p.aggregate_ids),
        aggregateKeys: dump.stores.aggregates.keys,
        headIds: dump.stores.pages.values.map((p) => p.aggregate_heads.map((head) => head[0])),
        payloadHits: (await h.findMarkers(dump.stores.pages.values.map((p) => p.records), [markers.payload])).hits,
        blindIndexes: keys.blindIndexes,
      };
      await testing.tamper(name, { kind: "changeField", seq: 2 }, { keys });
      out.verdict = await s.verify();
      s.close();
      return out;
    }, MARKERS);
    assert.deepEqual(r.encryption, { cipher: "AES-256-GCM", blind_indexes: false });
    assert.equal(r.blindIndexes, false);
    assert.equal(r.byAggregate, 4);
    assert.deepEqual(r.pageIds, Array(4).fill([MARKERS.aggregateId]));
    assert.deepEqual(r.aggregateKeys, [], "layout 3 keeps aggregate versions in page metadata");
    assert.deepEqual(r.headIds, [[MARKERS.aggregateId], [MARKERS.aggregateId], [MARKERS.aggregateId], [MARKERS.aggregateId]]);
    assert.deepEqual(r.payloadHits, []);
    assert.equal(r.verdict.reason, "HASH_MISMATCH", r.verdict.message);
    assert.equal(r.verdict.firstBadSeq, 2);
  });

  test("credentials: wrong passphrase, no credential, lock and unlock", async () => {
    const r = await run(async (passphrase) => {
      const name = "enc-lock";
      const { EventStore } = annal;
      await EventStore.destroy(name);
      const out = {};
      out.tooShort = await h.caught(EventStore.open({ name, userId: "u", passphrase: "short" }));
      const s = await EventStore.open({ name, userId: "u", passphrase });
      await s.append(h.ev(1));
      s.close();
      out.wrong = await h.caught(EventStore.open({ name, userId: "u", passphrase: `${passphrase}!` }));
      out.none = await h.caught(EventStore.open({ name, userId: "u" }));
      const s2 = await EventStore.open({ name, userId: "u", passphrase });
      out.before = { encrypted: s2.encrypted, locked: s2.locked };
      const locking = h.nextLockChange(s2);
      s2.lock();
      out.lockEvent = await locking;
      out.lockedAfter = s2.locked;
      out.lockAgain = await h.caught(() => s2.lock());
      out.ops = {
        append: await h.caught(s2.append(h.ev(2))),
        appendBatch: await h.caught(s2.appendBatch([h.ev(2)])),
        events: await h.caught(s2.events()),
        iterate: await h.caught(async () => {
          for await (const _ of s2.iterate());
        }),
        aggregate: await h.caught(s2.aggregate("patient-1")),
        head: await h.caught(s2.head()),
        verify: await h.caught(s2.verify()),
        exportAudit: await h.caught(s2.exportAudit()),
        rotateDataKey: await h.caught(s2.rotateDataKey()),
        reencryptAll: await h.caught(s2.reencryptAll()),
        exportRecoveryKey: await h.caught(s2.exportRecoveryKey()),
        keyInfo: await h.caught(s2.keyInfo()),
        changePassphrase: await h.caught(s2.changePassphrase(passphrase, "another long passphrase")),
      };
      out.badUnlock = await h.caught(s2.unlock("not the passphrase at all"));
      out.stillLocked = s2.locked;
      const unlocking = h.nextLockChange(s2);
      await s2.unlock(passphrase);
      out.unlockEvent = await unlocking;
      out.lockedAfterUnlock = s2.locked;
      out.appended = (await s2.append(h.ev(2))).deviceSeq;
      out.verify = await s2.verify();
      s2.close();
      // A plain store takes no credential, and has nothing to lock.
      await EventStore.destroy(`${name}-plain`);
      const plain = await EventStore.open({ name: `${name}-plain`, userId: "u" });
      out.plainState = { encrypted: plain.encrypted, locked: plain.locked };
      plain.close();
      out.plainWithPassphrase = await h.caught(EventStore.open({ name: `${name}-plain`, userId: "u", passphrase }));
      return out;
    }, PASSPHRASE);

    assertError(r.tooShort, "ANNAL_VALIDATION", "AnnalValidationError");
    assertError(r.wrong, "ANNAL_BAD_KEY", "AnnalBadKeyError");
    assertError(r.none, "ANNAL_LOCKED", "AnnalLockedError");
    assert.match(r.none.message, /passphrase|keyEncryptionKey|recoverySecret|unlock/, "the message says how to unlock");
    assert.deepEqual(r.before, { encrypted: true, locked: false });
    assert.deepEqual(r.lockEvent, { locked: true, detail: true, isEvent: true, isLockChange: true });
    assert.equal(r.lockedAfter, true);
    assert.equal(r.lockAgain.threw, false, "locking a locked store is harmless");
    for (const [op, result] of Object.entries(r.ops)) {
      assert.equal(result.code, "ANNAL_LOCKED", `${op} on a locked store: ${result.message}`);
      assert.equal(result.name, "AnnalLockedError", op);
    }
    assertError(r.badUnlock, "ANNAL_BAD_KEY", "AnnalBadKeyError");
    assert.equal(r.stillLocked, true);
    assert.deepEqual(r.unlockEvent, { locked: false, detail: false, isEvent: true, isLockChange: true });
    assert.equal(r.lockedAfterUnlock, false);
    assert.equal(r.appended, 2);
    assert.deepEqual(r.verify, { ok: true, checked: 2 });
    assert.deepEqual(r.plainState, { encrypted: false, locked: false });
    assertError(r.plainWithPassphrase, "ANNAL_VALIDATION", "AnnalValidationError");
  });

  test("a swapped ciphertext and a cut record are detected by verify() and by reads", async () => {
    const r = await run(async () => {
      const out = {};
      for (const [name, mutation] of [
        ["enc-swapct", { kind: "swapCiphertexts", a: 2, b: 4 }],
        ["enc-cut", { kind: "cutRecord", seq: 3 }],
        ["enc-flipct", { kind: "flipCiphertextByte", seq: 5 }],
      ]) {
        await annal.EventStore.destroy(name);
        const s = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: await h.kek() });
        await h.appendEach(s, 6);
        const before = await s.verify();
        await testing.tamper(name, mutation);
        out[mutation.kind] = {
          before,
          verdict: await s.verify(),
          expected: testing.expectation(mutation, 6, { encrypted: true }),
          read: await h.caught(s.events()),
          readAggregate: await h.caught(s.aggregate("patient-0")),
          readEarlier: (await s.events({ toSeq: Math.min(mutation.a ?? mutation.seq, mutation.b ?? Infinity) - 1 })).length,
        };
        s.close();
      }
      return out;
    });
    const cases = { swapCiphertexts: [2, "DECRYPT_FAILED"], cutRecord: [3, "MALFORMED"], flipCiphertextByte: [5, "DECRYPT_FAILED"] };
    for (const [kind, [seq, reason]] of Object.entries(cases)) {
      const c = r[kind];
      assert.deepEqual(c.before, { ok: true, checked: 6 });
      assert.deepEqual(c.expected, { detected: true, firstBadSeq: seq, reason });
      assert.equal(c.verdict.ok, false, `${kind} not detected`);
      assert.equal(c.verdict.reason, reason, c.verdict.message);
      assert.equal(c.verdict.firstBadSeq, seq, c.verdict.message);
      assert.equal(c.verdict.checked, seq - 1);
      assertError(c.read, "ANNAL_TAMPERED", "AnnalTamperedError");
      assert.equal(c.read.deviceSeq, seq, c.read.message);
      assert.equal(c.readEarlier, seq - 1, "the events before the damage still read");
    }
    // patient-0 holds events 3 and 6.
    assert.equal(r.cutRecord.readAggregate.code, "ANNAL_TAMPERED");
    assert.equal(r.cutRecord.readAggregate.deviceSeq, 3);
  });

  test("rotateDataKey keeps old records readable; changePassphrase replaces the passphrase", async () => {
    const r = await run(async (passphrase) => {
      const name = "enc-rotate";
      const { EventStore } = annal;
      await EventStore.destroy(name);
      const s = await EventStore.open({ name, userId: "u", passphrase });
      await h.appendEach(s, 3);
      const info1 = await s.keyInfo();
      const rotated = await s.rotateDataKey();
      await h.appendEach(s, 3, 4);
      const out = {
        info1,
        rotated,
        info2: await s.keyInfo(),
        payloads: (await s.events()).map((e) => e.payload.i),
        keyIds: await h.keyIds(name),
        verify: await s.verify(),
      };
      out.shortNew = await h.caught(s.changePassphrase(passphrase, "short"));
      out.wrongOld = await h.caught(s.changePassphrase("not the old passphrase", "a brand new passphrase"));
      await s.changePassphrase(passphrase, "a brand new passphrase");
      out.stillWorks = (await s.append(h.ev(7))).deviceSeq;
      s.close();
      const reopened = await EventStore.open({ name, userId: "u", passphrase: "a brand new passphrase" });
      out.afterReopen = { count: (await reopened.events()).length, verify: await reopened.verify(), info: await reopened.keyInfo() };
      reopened.close();
      out.oldPassphrase = await h.caught(EventStore.open({ name, userId: "u", passphrase }));
      return out;
    }, PASSPHRASE);
    assert.deepEqual(r.info1, {
      current: 1,
      maxRecordsPerKey: 2 ** 30,
      keys: [{ id: 1, firstDeviceSeq: 1, records: 3, retired: false }],
      reencryption: null,
    });
    assert.deepEqual(r.rotated, { keyId: 2 });
    assert.deepEqual(r.info2, {
      current: 2,
      maxRecordsPerKey: 2 ** 30,
      keys: [
        { id: 1, firstDeviceSeq: 1, records: 3, retired: false },
        { id: 2, firstDeviceSeq: 4, records: 3, retired: false },
      ],
      reencryption: null,
    });
    assert.deepEqual(r.payloads, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(r.keyIds, { 1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2 });
    assert.deepEqual(r.verify, { ok: true, checked: 6 });
    assertError(r.shortNew, "ANNAL_VALIDATION", "AnnalValidationError");
    assertError(r.wrongOld, "ANNAL_BAD_KEY", "AnnalBadKeyError");
    assert.equal(r.stillWorks, 7);
    assert.equal(r.afterReopen.count, 7);
    assert.deepEqual(r.afterReopen.verify, { ok: true, checked: 7 });
    assert.equal(r.afterReopen.info.current, 2);
    assertError(r.oldPassphrase, "ANNAL_BAD_KEY", "AnnalBadKeyError");
  });

  test("appends the write cache can predict are encrypted by WebCrypto before their transaction; a moved head or ring falls back", async () => {
    const r = await run(async () => {
      const name = "enc-ahead";
      await annal.EventStore.destroy(name);
      const kek = await h.kek(3);
      const encrypts = h.countEncrypts();
      const counted = encrypts.counted;
      try {
        const a = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: kek });
        const b = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: kek });
        const ev = (id, i) => ({ aggregateType: "diary", aggregateId: id, eventType: "noted", payload: { i } });
        const out = {};
        // Nothing cached yet: sealed inside the transaction, in wasm.
        [out.cold] = await counted(() => a.appendBatch([ev("p-1", 1), ev("p-2", 2)]));
        // The head and both aggregates are known: one WebCrypto call per record.
        [out.warm] = await counted(() => a.appendBatch([ev("p-1", 3), ev("p-2", 4), ev("p-1", 5)]));
        // An aggregate the cache has not seen: a found the store empty, so
        // its cache is complete and p-3 is new; sealed ahead as well.
        [out.unknownAggregate] = await counted(() => a.append(ev("p-3", 6)));
        // Another connection moves the head: a's page key is taken, nothing
        // of its first try is written, and it goes again.
        await b.append(ev("p-1", 7));
        const [movedCalls, moved] = await counted(() => a.append(ev("p-1", 8)));
        out.moved = { calls: movedCalls, seq: moved.deviceSeq, version: moved.aggregateVersion };
        // The retry read p-1 afresh: it is known again.
        [out.warmAgain] = await counted(() => a.append(ev("p-1", 9)));
        // Another context rotates the data key, with no broadcast reaching a
        // (an older tab, say): a seals ahead under key 1, finds another ring
        // in its transaction, writes nothing and goes again under key 2.
        const keys = await testing.openKeys(name, { keyEncryptionKey: kek });
        const meta = (await h.rawDump(`annal:${name}`)).stores.meta;
        const ring = JSON.parse(meta.values[meta.keys.indexOf("keyring")].ring);
        ring.keys.push({ id: 2, first_device_seq: 10, reencrypted: 0, retired: false });
        ring.current = 2;
        const text = JSON.stringify(ring);
        const record = { ring: text, mac: await keys.ringMac(text) };
        const db = await new Promise((ok) => (indexedDB.open(`annal:${name}`).onsuccess = (e) => ok(e.target.result)));
        const tx = db.transaction(["meta"], "readwrite");
        tx.objectStore("meta").put(record, "keyring");
        await new Promise((ok) => (tx.oncomplete = ok));
        db.close();
        const [rotatedCalls, rotated] = await counted(() => a.append(ev("p-1", 10)));
        out.rotated = { calls: rotatedCalls, seq: rotated.deviceSeq };
        [out.afterRotation] = await counted(() => a.appendBatch([ev("p-1", 11), ev("p-1", 12)]));
        // Since b's append, a's cache is not complete: an aggregate it has
        // not seen is presumed new, checked in the transaction, and sealed
        // ahead all the same.
        [out.presumed] = await counted(() => a.append(ev("p-4", 13)));
        out.keyIds = await h.keyIds(name);
        out.events = (await b.events()).map((e) => [e.deviceSeq, e.aggregateId, e.aggregateVersion, e.payload.i]);
        out.verify = await b.verify();
        a.close();
        b.close();
        return out;
      } finally {
        encrypts.restore();
      }
    });
    assert.equal(r.cold, 0);
    assert.equal(r.warm, 3);
    assert.equal(r.unknownAggregate, 1);
    assert.deepEqual(r.moved, { calls: 1, seq: 8, version: 5 }, "sealed ahead as 7, written as 8 after the retry");
    assert.equal(r.warmAgain, 1);
    assert.deepEqual(r.rotated, { calls: 1, seq: 10 }, "sealed ahead under key 1, then written under key 2 in wasm");
    assert.equal(r.afterRotation, 2);
    assert.equal(r.presumed, 1);
    assert.deepEqual(r.keyIds, { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 2, 11: 2, 12: 2, 13: 2 });
    assert.deepEqual(r.events, [
      [1, "p-1", 1, 1],
      [2, "p-2", 1, 2],
      [3, "p-1", 2, 3],
      [4, "p-2", 2, 4],
      [5, "p-1", 3, 5],
      [6, "p-3", 1, 6],
      [7, "p-1", 4, 7],
      [8, "p-1", 5, 8],
      [9, "p-1", 6, 9],
      [10, "p-1", 7, 10],
      [11, "p-1", 8, 11],
      [12, "p-1", 9, 12],
      [13, "p-4", 1, 13],
    ]);
    assert.deepEqual(r.verify, { ok: true, checked: 13 });
  });

  test("a large encrypted batch the cache cannot predict reads what it lacks first and is still encrypted by WebCrypto; a head moved meanwhile falls back", async () => {
    const r = await run(async () => {
      const name = "enc-fill";
      await annal.EventStore.destroy(name);
      const kek = await h.kek(4);
      const encrypts = h.countEncrypts();
      const counted = encrypts.counted;
      try {
        const a = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: kek });
        const b = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: kek });
        const ev = (id, i, extra = {}) => ({ aggregateType: "diary", aggregateId: id, eventType: "noted", payload: { i }, ...extra });
        const range = (from, n, f) => Array.from({ length: n }, (_, k) => f(from + k));
        const out = {};
        // Nothing cached: 20 events over 20 aggregates are read for first,
        // then sealed by WebCrypto, one call each.
        [out.cold] = await counted(() => a.appendBatch(range(1, 20, (i) => ev(`p-${i}`, i))));
        // Fewer than 16: not worth a transaction of its own; sealed in wasm.
        [out.smallCold] = await counted(() => b.appendBatch(range(21, 3, (i) => ev(`p-${i}`, i, { idempotencyKey: `k-${i}` }))));
        // a has not seen b's head, b's aggregates or keys. Its cache is
        // complete (a found the store empty), so it takes b's keys for
        // unused and seals all 20 ahead; b's page has a's page key, nothing
        // is written, and a goes again: it reads what it lacks, its three
        // repeats resolve to b's events, and the 17 new events (on
        // aggregates a knows) are sealed ahead.
        const [mixedCalls, mixed] = await counted(() =>
          a.appendBatch([
            ...range(21, 3, (i) => ev(`p-${i}`, i, { idempotencyKey: `k-${i}` })),
            ...range(24, 17, (i) => ev(`p-${i % 23 || 23}`, i)),
          ]),
        );
        out.mixed = { calls: mixedCalls, seqs: mixed.map((e) => e.deviceSeq) };
        // Another connection appends while a's batch is being sealed:
        // a's page key is taken, nothing of that try is written, and the
        // batch goes again the ordinary way (in wasm), after b's event.
        // (A connection of its own, whose first append of one event is
        // sealed in wasm, so every call counted is a's.)
        encrypts.during(async () => {
          const c = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: kek });
          await c.append(ev("p-1", 0));
          c.close();
        });
        const [movedCalls, moved] = await counted(() => a.appendBatch(range(41, 20, (i) => ev(`q-${i}`, i))));
        out.moved = { calls: movedCalls, first: moved[0].deviceSeq, last: moved.at(-1).deviceSeq };
        out.events = (await b.events()).map((e) => [e.deviceSeq, e.aggregateId, e.aggregateVersion, e.payload.i]);
        out.verify = await b.verify();
        a.close();
        b.close();
        return out;
      } finally {
        encrypts.restore();
      }
    });
    assert.equal(r.cold, 20, "the first large batch after opening is sealed by WebCrypto");
    assert.equal(r.smallCold, 0);
    assert.deepEqual(r.mixed, { calls: 20 + 17, seqs: [21, 22, 23, ...Array.from({ length: 17 }, (_, k) => 24 + k)] });
    assert.deepEqual(r.moved, { calls: 20, first: 42, last: 61 }, "sealed ahead as 41–60, written as 42–61 after the other connection's 41");
    assert.equal(r.events.length, 61);
    assert.deepEqual(r.events.map((e) => e[0]), Array.from({ length: 61 }, (_, k) => k + 1));
    // Versions continue across both connections' appends.
    assert.deepEqual(r.events[40], [41, "p-1", 3, 0]);
    assert.deepEqual(r.events.filter((e) => e[1] === "p-1").map((e) => e[2]), [1, 2, 3]);
    assert.deepEqual(r.verify, { ok: true, checked: 61 });
  });

  test("maxRecordsPerKey: a new data key starts before the current one passes its limit", async () => {
    const r = await run(async () => {
      const name = "enc-max-records";
      await annal.EventStore.destroy(name);
      const out = {};
      out.tooLow = await h.caught(annal.EventStore.open({ name, userId: "u", keyEncryptionKey: await h.kek(5), maxRecordsPerKey: 99 }));
      const s = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: await h.kek(5), maxRecordsPerKey: 100 });
      for (let b = 0; b < 9; b++) await s.appendBatch(Array.from({ length: 10 }, (_, i) => h.ev(b * 10 + i + 1)));
      out.at90 = await s.keyInfo();
      // 15 more would take key 1 to 105 records: the whole batch goes under key 2.
      await s.appendBatch(Array.from({ length: 15 }, (_, i) => h.ev(91 + i)));
      out.at105 = await s.keyInfo();
      const ids = await h.keyIds(name);
      out.under1 = Object.keys(ids).filter((k) => ids[k] === 1).length;
      out.under2 = Object.keys(ids).filter((k) => ids[k] === 2).map(Number);
      out.verify = await s.verify();
      s.close();
      return out;
    });
    assertError(r.tooLow, "ANNAL_VALIDATION", "AnnalValidationError");
    assert.deepEqual(r.at90.keys, [{ id: 1, firstDeviceSeq: 1, records: 90, retired: false }]);
    assert.equal(r.at90.maxRecordsPerKey, 100);
    assert.equal(r.at105.current, 2);
    assert.deepEqual(r.at105.keys, [
      { id: 1, firstDeviceSeq: 1, records: 90, retired: false },
      { id: 2, firstDeviceSeq: 91, records: 15, retired: false },
    ]);
    assert.equal(r.under1, 90);
    assert.deepEqual(r.under2, Array.from({ length: 15 }, (_, i) => 91 + i));
    assert.deepEqual(r.verify, { ok: true, checked: 105 });
  });

  test("reencryptAll stopped half-way by close() resumes after reopening", async () => {
    const r = await run(async () => {
      const name = "enc-reencrypt";
      const { EventStore } = annal;
      await EventStore.destroy(name);
      const kek = await h.kek(3);
      const open = () => EventStore.open({ name, userId: "u", keyEncryptionKey: kek });
      const s = await open();
      for (let b = 0; b < 30; b++) await s.appendBatch(Array.from({ length: 10 }, (_, i) => h.ev(b * 10 + i + 1)));
      const pages = (await h.pages(name)).length;
      await s.rotateDataKey();
      await s.appendBatch(Array.from({ length: 5 }, (_, i) => h.ev(301 + i)));
      const progress = [];
      const first = await h.caught(
        s.reencryptAll({
          onProgress: (done, total) => {
            progress.push([done, total]);
            if (progress.length === 1) s.close();
          },
        }),
      );
      const s2 = await open();
      const midway = await s2.keyInfo();
      const midKeyIds = Object.values(await h.keyIds(name));
      const progress2 = [];
      const second = await s2.reencryptAll({ onProgress: (done, total) => progress2.push([done, total]) });
      const out = {
        pages,
        progress,
        first,
        midway,
        midKeyIds: { k1: midKeyIds.filter((k) => k === 1).length, k2: midKeyIds.filter((k) => k === 2).length },
        second,
        progress2Last: progress2[progress2.length - 1],
        after: await s2.keyInfo(),
        verify: await s2.verify(),
        payloads: (await s2.events()).map((e) => e.payload.i),
        keyIds: [...new Set(Object.values(await h.keyIds(name)))],
        appended: (await s2.append(h.ev(306))).deviceSeq,
      };
      s2.close();
      return out;
    });
    assert.ok(r.pages >= 30, `only ${r.pages} pages`);
    assert.ok(r.progress.length >= 1, "onProgress was called");
    assert.ok(["ANNAL_CLOSED", "ANNAL_LOCKED"].includes(r.first.code), `the interrupted run: ${JSON.stringify(r.first)}`);
    assert.notEqual(r.midway.reencryption, null, "the ring records the unfinished re-encryption");
    assert.equal(r.midway.reencryption.target, 2);
    assert.ok(r.midway.reencryption.nextDeviceSeq > 1 && r.midway.reencryption.nextDeviceSeq <= 301, JSON.stringify(r.midway));
    assert.ok(r.midKeyIds.k1 > 0 && r.midKeyIds.k2 > 5, `half-way: ${JSON.stringify(r.midKeyIds)}`);
    assert.equal(r.second.keyId, 2);
    assert.deepEqual(r.second.retired, [1]);
    assert.ok(r.second.reencrypted > 0 && r.second.reencrypted < 300, `resumed run re-encrypted ${r.second.reencrypted}`);
    assert.equal(r.second.reencrypted, r.midKeyIds.k1, "the resumed run moved exactly the records left under key 1");
    assert.equal(r.after.reencryption, null);
    assert.equal(r.after.current, 2);
    assert.deepEqual(
      r.after.keys.map((k) => [k.id, k.retired]),
      [
        [1, true],
        [2, false],
      ],
    );
    assert.equal(r.after.keys[1].records, 305);
    assert.deepEqual(r.verify, { ok: true, checked: 305 });
    assert.deepEqual(r.payloads, Array.from({ length: 305 }, (_, i) => i + 1));
    assert.deepEqual(r.keyIds, [2]);
    assert.equal(r.appended, 306);
  });

  test("a recovery secret opens the store and sets a new passphrase", async () => {
    const r = await run(async (passphrase) => {
      const name = "enc-recovery";
      const { EventStore } = annal;
      await EventStore.destroy(name);
      const s = await EventStore.open({ name, userId: "u", passphrase });
      await h.appendEach(s, 2);
      const secret = await s.exportRecoveryKey();
      s.close();
      // FORMAT.md §8.4.1: the passphrase and recovery slots unwrap with PBKDF2 and HKDF as documented.
      const meta = await testing.readMeta(name);
      const slots = meta.keys.slots.map((x) => ({ kind: x.kind, kdf: x.kdf, iterations: x.iterations, salt: x.salt?.length, iv: x.iv.length, wrapped: x.wrapped.length }));
      const viaPassphrase = await testing.openKeys(name, { passphrase });
      const viaRecovery = await testing.openKeys(name, { recoverySecret: secret });
      const independent = {
        slots,
        sameStore: viaPassphrase.storeId === viaRecovery.storeId,
        headMacs: [await viaPassphrase.headMac(meta.head), await viaRecovery.headMac(meta.head), meta.head.mac],
      };
      // The passphrase is forgotten. A typo in the secret is told apart from a wrong secret.
      const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
      let typo;
      for (let i = 0; !typo; i++) {
        const at = [3, 17, 30, 44, 60][i % 5] + Math.floor(i / 5);
        if (secret[at] === "-") continue;
        const c = alphabet[(alphabet.indexOf(secret[at]) + 1 + Math.floor(i / 5)) % 32];
        const candidate = secret.slice(0, at) + c + secret.slice(at + 1);
        if ((await h.caught(testing.parseRecoverySecret(candidate))).threw) typo = candidate;
      }
      const out = { secret, independent };
      out.typo = await h.caught(EventStore.open({ name, userId: "u", recoverySecret: typo }));
      // Readers ignore case, dashes and spaces, and read O as 0, I and L as 1.
      const sloppy = secret.toLowerCase().replace(/-/g, " ").replace(/0/g, "o").replace(/1/g, "l");
      const recovered = await EventStore.open({ name, userId: "u", recoverySecret: sloppy });
      out.events = (await recovered.events()).length;
      await recovered.changePassphrase({ recoverySecret: secret }, "my new passphrase");
      out.newSecret = await recovered.exportRecoveryKey();
      recovered.close();
      out.oldSecret = await h.caught(EventStore.open({ name, userId: "u", recoverySecret: secret }));
      const reopened = await EventStore.open({ name, userId: "u", passphrase: "my new passphrase" });
      out.reopened = { count: (await reopened.events()).length, verify: await reopened.verify() };
      reopened.close();
      const viaNew = await EventStore.open({ name, userId: "u", recoverySecret: out.newSecret });
      out.viaNew = viaNew.locked;
      viaNew.close();
      return out;
    }, PASSPHRASE);
    const group = "[0-9A-HJKMNP-TV-Z]{5}";
    assert.match(r.secret, new RegExp(`^(${group}-){10}${group}$`));
    assert.deepEqual(
      r.independent.slots.sort((a, b) => a.kind.localeCompare(b.kind)),
      [
        { kind: "passphrase", kdf: "PBKDF2-HMAC-SHA256", iterations: r.independent.slots.find((x) => x.kind === "passphrase").iterations, salt: 16, iv: 12, wrapped: 48 },
        { kind: "recovery", kdf: undefined, iterations: undefined, salt: undefined, iv: 12, wrapped: 48 },
      ],
    );
    assert.ok(r.independent.slots.find((x) => x.kind === "passphrase").iterations >= 600_000);
    assert.equal(r.independent.sameStore, true);
    assert.equal(new Set(r.independent.headMacs).size, 1, "both credentials give the head-MAC key that made the stored MAC");
    assertError(r.typo, "ANNAL_VALIDATION", "AnnalValidationError");
    assert.equal(r.events, 2);
    assert.notEqual(r.newSecret, r.secret);
    assertError(r.oldSecret, "ANNAL_BAD_KEY", "AnnalBadKeyError");
    assert.deepEqual(r.reopened, { count: 2, verify: { ok: true, checked: 2 } });
    assert.equal(r.viaNew, false);
  });

  test("an app's own CryptoKey: FORMAT.md §8.4 decrypts the store independently", async () => {
    const r = await run(async () => {
      const name = "enc-kek";
      await annal.EventStore.destroy(name);
      const kek = await h.kek(9);
      const s = await annal.EventStore.open({ name, userId: "u", tenantId: "t", keyEncryptionKey: kek });
      await s.append({ aggregateType: "diary", aggregateId: "patient-Müller", eventType: "noted", payload: { note: "頭痛 😣", n: 1 }, idempotencyKey: "k-1" });
      await s.appendBatch([h.ev(2), h.ev(3), h.ev(4)]);
      await s.rotateDataKey();
      await s.append(h.ev(5));
      const events = await s.events();
      const head = await s.head();
      const info = await s.keyInfo();
      const storeId = s.identity.storeId;
      s.close();

      const keys = await testing.openKeys(name, { keyEncryptionKey: kek });
      const log = await testing.readSealedLog(name, keys);
      const meta = await testing.readMeta(name);
      const dump = await h.rawDump(`annal:${name}`);
      const decoded = [];
      for (const rec of log) {
        const envelope = testing.parseEnvelope(rec.envelope);
        decoded.push({
          keyId: rec.keyId,
          headerSeq: rec.deviceSeq,
          envelope,
          payload: JSON.parse(new TextDecoder().decode(rec.payload)),
          rehash: (await testing.sha256Hex(testing.canonicalEnvelope(envelope, true))) === envelope.hash,
          digest: (await testing.sha256Hex(rec.salt, rec.payload)) === envelope.payload_digest,
        });
      }
      const pages = dump.stores.pages.values;
      const expectBlind = async (field, values) => [...new Set(await Promise.all(values.map((v) => keys.blind(field, v))))].sort();
      const blindPages = [];
      for (const p of pages) {
        const plain = await keys.openPage(p.records);
        const envs = plain.map((x) => testing.parseEnvelope(x.envelope));
        const last = new Map(envs.map((e) => [e.aggregate_id, e]));
        const heads = [];
        for (const e of last.values()) {
          heads.push([await keys.blind("aggregate_id", e.aggregate_id), e.aggregate_version, await keys.blind("aggregate_type", e.aggregate_type), e.device_seq]);
        }
        heads.sort((a, b) => (a[0] < b[0] ? -1 : 1));
        blindPages.push(
          JSON.stringify([p.aggregate_ids, p.aggregate_types, p.event_types, p.aggregate_heads]) ===
            JSON.stringify([
              await expectBlind("aggregate_id", envs.map((e) => e.aggregate_id)),
              await expectBlind("aggregate_type", envs.map((e) => e.aggregate_type)),
              await expectBlind("event_type", envs.map((e) => e.event_type)),
              heads,
            ]),
        );
      }
      const aggregatesKeys = dump.stores.aggregates.keys;
      const idemKeys = dump.stores.idempotency.keys;
      // Someone with the KEK but a wrong credential kind, or a wrong KEK, gets nothing.
      const wrongKek = await h.caught(testing.openKeys(name, { keyEncryptionKey: await h.kek(10) }));
      return {
        storeId,
        keysStoreId: keys.storeId,
        events: events.map((e) => ({ seq: e.deviceSeq, hash: e.hash, payload: e.payload })),
        decoded,
        head,
        storedHead: meta.head,
        macOfHead: await keys.headMac(meta.head),
        ring: keys.ring,
        info,
        blindPages,
        aggregatesKeys,
        idemKeys,
        expectedIdemKey: await keys.blind("idempotency_key", "k-1"),
        slots: meta.keys.slots.map((x) => ({ kind: x.kind, iv: x.iv.length, wrapped: x.wrapped.length })),
        wrongKek,
      };
    });
    assert.equal(r.keysStoreId, r.storeId);
    assert.deepEqual(r.slots, [{ kind: "key", iv: 12, wrapped: 48 }]);
    assert.equal(r.decoded.length, 5);
    r.decoded.forEach((d, i) => {
      assert.equal(d.headerSeq, i + 1);
      assert.equal(d.envelope.device_seq, i + 1);
      assert.equal(d.envelope.hash, r.events[i].hash, "independent decryption gives the same hash");
      assert.deepEqual(d.payload, r.events[i].payload);
      assert.ok(d.rehash && d.digest, "the plaintext is an annal/1 record of §8.2");
    });
    assert.deepEqual(
      r.decoded.map((d) => d.keyId),
      [1, 1, 1, 1, 2],
    );
    assert.equal(r.decoded[0].envelope.aggregate_id, "patient-Müller");
    assert.deepEqual(r.decoded[0].payload, { n: 1, note: "頭痛 😣" });
    assert.deepEqual({ device_seq: r.storedHead.device_seq, hash: r.storedHead.hash }, { device_seq: r.head.deviceSeq, hash: r.head.hash });
    assert.equal(r.macOfHead, r.storedHead.mac, "the head MAC is as §8.4.4 says");
    assert.deepEqual(r.ring, {
      current: 2,
      max_records_per_key: 2 ** 30,
      keys: [
        { id: 1, first_device_seq: 1, reencrypted: 0, retired: false },
        { id: 2, first_device_seq: 5, reencrypted: 0, retired: false },
      ],
      reencryption: null,
    });
    assert.equal(r.info.current, r.ring.current);
    assert.ok(r.blindPages.length >= 3 && r.blindPages.every(Boolean), `page metadata is blinded as §8.4.3 says: ${r.blindPages}`);
    assert.deepEqual(r.aggregatesKeys, [], "layout 3 writes no aggregates records");
    assert.deepEqual(r.idemKeys, [r.expectedIdemKey]);
    assert.equal(r.wrongKek.threw, true);
  });

  // The threat model of FORMAT.md §9 for an encrypted store: each mutation
  // is reported as expectation(..., { encrypted: true }) says. Those marked
  // `keys` are made by an attacker holding a data key (openKeys), the rest
  // by one without any key.
  const LENGTH = 10;
  const DRILLS = [
    ["flip one byte of a payload", { kind: "flipPayloadByte", seq: 4 }, true],
    ["change a field", { kind: "changeField", seq: 6 }, true],
    ["delete an event (no key)", { kind: "deleteEvent", seq: 3 }, false],
    ["delete an event (with a data key)", { kind: "deleteEvent", seq: 3 }, true],
    ["swap two events (no key)", { kind: "swapEvents", a: 5, b: 8 }, false],
    ["swap two events (with a data key)", { kind: "swapEvents", a: 5, b: 8 }, true],
    ["insert a forged event", { kind: "insertForged", seq: 7 }, true],
    ["truncate the tail (no key)", { kind: "truncateTail", count: 2 }, false],
    ["truncate the tail (with a data key)", { kind: "truncateTail", count: 2 }, true],
    ["truncate the tail and fix the head record", { kind: "truncateTailFixHead", count: 2 }, true],
    ["re-hash a whole suffix consistently", { kind: "rehashSuffix", from: 5 }, true],
    ["flip a ciphertext byte", { kind: "flipCiphertextByte", seq: 4 }, false],
    ["swap two ciphertexts", { kind: "swapCiphertexts", a: 2, b: 6 }, false],
    ["cut a record short", { kind: "cutRecord", seq: 7 }, false],
  ];

  describe("tamper drills on an encrypted store", () => {
    DRILLS.forEach(([label, mutation, withKeys], i) => {
      test(label, async () => {
        const r = await run(
          async ([name, mutation, withKeys, length, seed]) => {
            await annal.EventStore.destroy(name);
            const kek = await h.kek(seed);
            const s = await annal.EventStore.open({ name, userId: "auditor-test", keyEncryptionKey: kek });
            await h.appendEach(s, length);
            const before = await s.verify();
            const options = withKeys ? { keys: await testing.openKeys(name, { keyEncryptionKey: kek }) } : {};
            await testing.tamper(name, mutation, options);
            const verdict = await s.verify();
            const read = await h.caught(s.events());
            s.close();
            return { before, verdict, read, expected: testing.expectation(mutation, length, { encrypted: true }) };
          },
          [`enc-drill-${i}`, mutation, withKeys, LENGTH, 20 + i],
        );
        assert.deepEqual(r.before, { ok: true, checked: LENGTH });
        assert.equal(r.expected.detected, true, "an encrypted store detects every drill");
        assert.equal(r.verdict.ok, false, `${label}: verify() missed it`);
        assert.equal(r.verdict.reason, r.expected.reason, r.verdict.message);
        assert.equal(r.verdict.firstBadSeq, r.expected.firstBadSeq, r.verdict.message);
        // The head MAC fails after the chain itself verified; every other break stops the scan early.
        if (r.expected.reason === "HEAD_MAC_MISMATCH") assert.equal(r.verdict.checked, r.expected.firstBadSeq);
        else assert.equal(r.verdict.checked, r.expected.firstBadSeq - 1);
        // Reads check each record's own tag, hash and digest.
        if (["DECRYPT_FAILED", "MALFORMED", "HASH_MISMATCH", "PAYLOAD_DIGEST_MISMATCH"].includes(r.expected.reason)) {
          assert.equal(r.read.code, "ANNAL_TAMPERED", r.read.message);
          assert.equal(r.read.deviceSeq, r.expected.firstBadSeq, r.read.message);
        }
      });
    });

    test("the expectations table", () => {
      // Pure data, checked here so a change to it is a visible decision.
      const ex = (m, encrypted) => import("../../target/npm/package/dist/testing/index.js").then((t) => t.expectation(m, LENGTH, { encrypted }));
      return Promise.all([
        ex({ kind: "truncateTailFixHead", count: 2 }, true).then((e) => assert.deepEqual(e, { detected: true, firstBadSeq: 8, reason: "HEAD_MAC_MISMATCH" })),
        ex({ kind: "rehashSuffix", from: 5 }, true).then((e) => assert.deepEqual(e, { detected: true, firstBadSeq: 10, reason: "HEAD_MAC_MISMATCH" })),
        ex({ kind: "truncateTailFixHead", count: 2 }, false).then((e) => assert.deepEqual(e, { detected: false })),
        ex({ kind: "swapEvents", a: 5, b: 8 }, true).then((e) => assert.deepEqual(e, { detected: true, firstBadSeq: 5, reason: "OUT_OF_ORDER" })),
      ]);
    });
  });

  test("a lock in one tab locks the store in every tab and worker; a rotation is shared", async () => {
    const tabB = await openPage(env.context, env.url);
    await helpers(tabB);
    const spawned = tabB.waitForEvent("worker");
    await tabB.evaluate(() => {
      window.lockWorker = new Worker("/worker.js", { type: "module" });
    });
    const worker = await spawned;
    await worker.evaluate(() => new Promise(function wait(ok) {
      self.annalReady ? ok() : setTimeout(() => wait(ok), 20);
    }));
    await helpers(worker);
    const name = "enc-tabs";
    const openIn = (target) =>
      target.evaluate(async (name) => {
        self.shared = await annal.EventStore.open({ name, userId: "u", keyEncryptionKey: await h.kek(4) });
        self.sharedChange = h.nextLockChange(self.shared);
        return self.shared.locked;
      }, name);
    try {
      await run(async (name) => annal.EventStore.destroy(name), name);
      assert.equal(await openIn(env.page), false);
      assert.equal(await openIn(tabB), false);
      assert.equal(await openIn(worker), false);
      await run(() => self.shared.append(h.ev(1)));

      // Tab A locks: B and the worker lock too, and fire lockchange.
      const lockedA = await run(async () => {
        self.shared.lock();
        return self.shared.locked;
      });
      assert.equal(lockedA, true);
      const seenB = await tabB.evaluate(async () => ({ change: await self.sharedChange, locked: self.shared.locked, append: await h.caught(self.shared.append(h.ev(2))) }));
      assert.deepEqual(seenB.change, { locked: true, detail: true, isEvent: true, isLockChange: true });
      assert.equal(seenB.locked, true);
      assert.equal(seenB.append.code, "ANNAL_LOCKED", seenB.append.message);
      const seenW = await worker.evaluate(async () => ({ change: await self.sharedChange, locked: self.shared.locked, events: await h.caught(self.shared.events()) }));
      assert.deepEqual(seenW.change, { locked: true, detail: true, isEvent: true, isLockChange: true });
      assert.equal(seenW.events.code, "ANNAL_LOCKED", seenW.events.message);

      // Unlocking is per context: B unlocks, A and the worker stay locked.
      await tabB.evaluate(async () => self.shared.unlock({ keyEncryptionKey: await h.kek(4) }));
      await run(() => h.sleep(200));
      assert.equal(await tabB.evaluate(() => self.shared.locked), false);
      assert.equal(await run(() => self.shared.locked), true);
      assert.equal(await worker.evaluate(() => self.shared.locked), true);
      await run(async () => self.shared.unlock({ keyEncryptionKey: await h.kek(4) }));

      // A rotates; B's next append uses the new key.
      const rotated = await run(() => self.shared.rotateDataKey());
      assert.deepEqual(rotated, { keyId: 2 });
      const fromB = await tabB.evaluate(async (name) => {
        const e = await self.shared.append(h.ev(2));
        return { seq: e.deviceSeq, info: await self.shared.keyInfo(), keyIds: await h.keyIds(name), count: (await self.shared.events()).length };
      }, name);
      assert.equal(fromB.seq, 2);
      assert.equal(fromB.info.current, 2);
      assert.deepEqual(
        fromB.info.keys.map((k) => k.id),
        [1, 2],
      );
      assert.deepEqual(fromB.keyIds, { 1: 1, 2: 2 });
      assert.equal(fromB.count, 2);
      assert.deepEqual(await run(() => self.shared.verify()), { ok: true, checked: 2 });
    } finally {
      await run(() => self.shared?.close()).catch(() => {});
      await tabB.close();
    }
  });
});
