// The README's app snippet must work when pasted: it runs here as written,
// with only the bare "annal" import pointed at the packed package.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { launch, openPage, ROOT, startServer } from "./harness.mjs";

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
