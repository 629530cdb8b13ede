// The tamper suite: named mutations of a valid log, made behind annal's
// back in IndexedDB, each expecting verify() to fail at the right seq with
// the right reason, or, for the two an unkeyed chain cannot see, to pass.
// The tampered store is then exported and checked offline with
// annal-verify, which must agree, and which catches the other two once it
// is given the original head as an anchor (as a server receipt would be).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { launch, openPage, startServer, tempDir, VERIFY_BIN } from "./harness.mjs";

const LENGTH = 10;
const MUTATIONS = [
  ["flip one byte of a payload", { kind: "flipPayloadByte", seq: 4 }],
  ["change a field", { kind: "changeField", seq: 6 }],
  ["delete an event", { kind: "deleteEvent", seq: 3 }],
  ["swap two events", { kind: "swapEvents", a: 5, b: 8 }],
  ["insert a forged event with a correct own hash but a wrong prev_hash", { kind: "insertForged", seq: 7 }],
  ["truncate the tail", { kind: "truncateTail", count: 2 }],
  ["truncate the tail and fix the head record", { kind: "truncateTailFixHead", count: 2 }],
  ["re-hash a whole suffix consistently", { kind: "rehashSuffix", from: 5 }],
];

let server, browser, page, tmp;

before(async () => {
  server = await startServer();
  browser = await launch();
  page = await openPage(await browser.newContext(), server.url);
  tmp = await tempDir("annal-tamper-");
});

after(async () => {
  await browser?.close();
  server?.server.close();
  await tmp?.cleanup();
});

function annalVerify(file, ...args) {
  return new Promise((ok) => {
    execFile(VERIFY_BIN, [file, ...args], (error, stdout, stderr) => ok({ code: error ? error.code : 0, stdout, stderr }));
  });
}

describe("tamper suite", () => {
  MUTATIONS.forEach(([name, mutation], i) => {
    test(name, async () => {
      const r = await page.evaluate(
        async ([store, mutation, length]) => {
          await annal.EventStore.destroy(store);
          const s = await annal.EventStore.open({ name: store, userId: "auditor-test" });
          for (let i = 1; i <= length; i++) {
            await s.append({
              aggregateType: "diary",
              aggregateId: `patient-${i % 3}`,
              eventType: i % 2 ? "symptom-recorded" : "dose-taken",
              payload: { i, severity: i % 5, note: "douleur légère" },
            });
          }
          const before = await s.verify();
          const originalHead = (await s.head()).hash;
          await testing.tamper(store, mutation);
          const verdict = await s.verify();
          const exported = await (await s.exportAudit()).text();
          s.close();
          return { before, originalHead, verdict, exported, expected: testing.expectation(mutation, length) };
        },
        [`tamper-${i}`, mutation, LENGTH],
      );
      assert.deepEqual(r.before, { ok: true, checked: LENGTH });

      const file = join(tmp.dir, `tamper-${i}.json`);
      await writeFile(file, r.exported);
      const offline = await annalVerify(file);

      if (r.expected.detected) {
        assert.equal(r.verdict.ok, false, `${name}: verify() missed it`);
        assert.equal(r.verdict.firstBadSeq, r.expected.firstBadSeq, r.verdict.message);
        assert.equal(r.verdict.reason, r.expected.reason, r.verdict.message);
        assert.ok(r.verdict.checked < LENGTH);
        assert.equal(offline.code, 1, offline.stdout + offline.stderr);
        assert.match(offline.stdout, new RegExp(`^FAILED at device_seq ${r.expected.firstBadSeq}: ${r.expected.reason} `));
      } else {
        // Undetectable without an anchor, and the test says exactly that.
        assert.equal(r.verdict.ok, true, `${name}: an unkeyed check cannot see this, yet reported ${r.verdict.reason}`);
        assert.equal(offline.code, 0, offline.stdout + offline.stderr);
        assert.match(offline.stdout, /^ok \d+ events/);
        const anchored = await annalVerify(file, "--expect-head", r.originalHead);
        assert.equal(anchored.code, 1, anchored.stdout);
        assert.match(anchored.stdout, /HEAD_MISMATCH/);
      }
    });
  });

  test("an untouched export verifies offline, also against its own head", async () => {
    const r = await page.evaluate(async () => {
      await annal.EventStore.destroy("tamper-none");
      const s = await annal.EventStore.open({ name: "tamper-none", userId: "u" });
      await s.appendBatch(Array.from({ length: 25 }, (_, i) => ({ aggregateType: "t", aggregateId: `a${i % 4}`, eventType: "e", payload: { i } })));
      const out = { head: (await s.head()).hash, text: await (await s.exportAudit()).text() };
      s.close();
      return out;
    });
    const file = join(tmp.dir, "untouched.json");
    await writeFile(file, r.text);
    assert.deepEqual(await annalVerify(file), { code: 0, stdout: "ok 25 events\n", stderr: "" });
    assert.equal((await annalVerify(file, "--expect-head", r.head)).code, 0);
  });
});
