// The README's app snippet must work when pasted: it runs here as written,
// with only the bare "annal" import pointed at the packed package; and its
// sync snippet runs against a real annal-server with its placeholders filled.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { launch, openPage, ROOT, startAnnalServer, startServer } from "./harness.mjs";

let server, browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.server.close();
});

test("the README snippet runs as written", async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const snippet = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((code) => code.includes('from "annal"'));
  assert.ok(snippet, "README has a js snippet importing annal");
  const page = await openPage(await browser.newContext(), server.url);
  const logs = [];
  const errors = [];
  page.on("console", (m) => (m.type() === "error" ? errors : logs).push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  const code = snippet.replace('from "annal"', `from "${server.url}/annal/dist/index.js"`);
  await page.evaluate(async (code) => {
    const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
    await import(url);
  }, code);
  assert.deepEqual(errors, []);
  assert.ok(logs.some((l) => /^stored #1 [0-9a-f]{64}$/.test(l)), logs.join("\n"));
  assert.ok(logs.includes("verified 2 events"), logs.join("\n"));
  assert.ok(logs.some((l) => /^audit export: \d+ bytes$/.test(l)), logs.join("\n"));
});

test("the README sync snippet runs against a real annal-server, with its placeholders filled in", async () => {
  const annal = await startAnnalServer({ origin: server.url, tenant: "study-ABC" });
  try {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    const snippet = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((code) => code.includes("store.configureSync({"));
    assert.ok(snippet, "README has the sync snippet");
    const token = await annal.token("nurse-42", "own", { tenant: "study-ABC" });
    const page = await openPage(await browser.newContext(), server.url);
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // What the snippet takes as given: an open store, the app's auth and UI.
    const prelude = `
      const { EventStore } = await import("${server.url}/annal/dist/index.js");
      await EventStore.destroy("readme-sync");
      const store = await EventStore.open({ name: "readme-sync", userId: "nurse-42", tenantId: "study-ABC" });
      await store.append({ aggregateType: "diary", aggregateId: "patient-7", eventType: "symptom-recorded", payload: { severity: 2 } });
      const auth = { token: async () => ${JSON.stringify(token)} };
      const shown = (self.shown = []);
      const showPending = (state, pending) => shown.push({ state, pending });
      const tellSomeone = () => {};
      const rendered = (self.rendered = []);
      const render = (events) => rendered.push(...events);
      self.readmeStore = store;
    `;
    const code = prelude + snippet.replace("https://sync.example.org", annal.url);
    await page.evaluate(async (code) => {
      const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
      await import(url);
    }, code);
    const r = await page.evaluate(async () => {
      await new Promise((ok) => setTimeout(ok, 200));
      return { status: await self.readmeStore.syncStatus(), shown: self.shown };
    });
    assert.deepEqual(errors, []);
    assert.equal(r.status.pending, 0);
    assert.ok(r.shown.some((s) => s.state === "idle" && s.pending === 0), JSON.stringify(r.shown));
    assert.equal((await annal.pull(token)).items.length, 1);
    await page.close();
  } finally {
    await annal.close();
  }
});
