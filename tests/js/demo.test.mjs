// The demo app (www/) driven through its UI in headless Chromium: open a
// store, append through the form, list, verify, tamper, verify again,
// reject an invalid payload, export, close and destroy.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { serve } from "../../www/serve.mjs";
import { PACKAGE_DIR, ROOT, launch, readFile } from "./harness.mjs";

const STORE = "demo-test";

let server, browser, page;
const problems = [];

before(async () => {
  server = await serve({ mounts: { "/": join(ROOT, "www"), "/annal/": PACKAGE_DIR } });
  browser = await launch();
  const context = await browser.newContext({ acceptDownloads: true });
  page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(server.url) && !url.startsWith("blob:") && !url.startsWith("data:")) {
      problems.push(`request off the loopback server: ${url}`);
    }
  });
  await page.goto(`${server.url}/`);
  await page.waitForSelector('html[data-ready="true"]');
});

after(async () => {
  await browser?.close();
  server?.server.close();
});

const text = (sel) => page.locator(sel).innerText();
const rows = () => page.locator("#events tbody tr");

async function clickVerify() {
  await page.click('[data-testid="verify"]');
  await page.waitForSelector('[data-testid="verify-result"][data-state="done"]');
  return page.locator('[data-testid="verify-result"]');
}

test("the page loads with defaults and nothing enabled that needs a store", async () => {
  assert.equal(await page.inputValue("#store-name"), "demo");
  assert.equal(await page.inputValue("#user-id"), "nurse-1");
  assert.equal(await page.inputValue("#aggregate-type"), "diary");
  assert.equal(await page.inputValue("#aggregate-id"), "patient-42");
  assert.equal(await page.inputValue("#event-type"), "symptom-recorded");
  assert.deepEqual(JSON.parse(await page.inputValue("#payload")), { severity: 3, note: "headache" });
  assert.equal(await page.isDisabled('[data-testid="append"]'), true);
  assert.equal(await page.isDisabled('[data-testid="verify"]'), true);
  // Every form control has a label.
  const unlabelled = await page.$$eval("input, select, textarea", (els) =>
    els.filter((e) => e.labels.length === 0).map((e) => e.id),
  );
  assert.deepEqual(unlabelled, []);
});

test("open, append, list, verify, tamper, verify, export, close, destroy", async () => {
  await page.fill("#store-name", STORE);
  await page.click('[data-testid="destroy"]');
  await page.waitForSelector('[data-testid="store-status"][data-state="destroyed"]');

  await page.click('[data-testid="open"]');
  await page.waitForSelector('[data-testid="store-status"][data-state="open"]');
  assert.match(await text('[data-testid="store-status"]'), /nurse-1/);
  assert.equal(await rows().count(), 0);

  // Five events through the form.
  for (let i = 1; i <= 5; i++) {
    await page.fill("#payload", JSON.stringify({ severity: i, note: `entry ${i}` }));
    if (i === 5) await page.fill("#event-type", "dose-taken");
    await page.click('[data-testid="append"]');
    await page.waitForSelector(`[data-testid="append-result"][data-seq="${i}"]`);
    await page.waitForSelector(`#events tbody tr[data-seq="${i}"]`);
  }
  assert.equal(await rows().count(), 5);
  const first = await rows().nth(0).locator("td").allInnerTexts();
  assert.equal(first[0], "1");
  assert.match(first[1], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.match(first[2], /diary\/patient-42/);
  assert.equal(first[3], "symptom-recorded");
  assert.deepEqual(JSON.parse(first[4]), { severity: 1, note: "entry 1" });
  assert.equal(first[5], "00000000…");
  assert.match(first[6], /^[0-9a-f]{8}…$/);
  // Each row's prevHash prefix is the previous row's hash prefix.
  const second = await rows().nth(1).locator("td").allInnerTexts();
  assert.equal(second[5], first[6]);

  // The filter.
  await page.fill("#filter-event-type", "dose-taken");
  await page.click('[data-testid="refresh"]');
  await page.waitForSelector('[data-testid="events-summary"][data-count="1"]');
  assert.equal(await rows().count(), 1);
  await page.click('[data-testid="clear-filter"]');
  await page.waitForSelector('[data-testid="events-summary"][data-count="5"]');
  await page.fill("#filter-aggregate-id", "patient-7");
  await page.click('[data-testid="refresh"]');
  await page.waitForSelector('[data-testid="events-summary"][data-count="0"]');
  await page.click('[data-testid="clear-filter"]');
  await page.waitForSelector('[data-testid="events-summary"][data-count="5"]');

  // An invalid payload: shown with its code, nothing written.
  await page.fill("#payload", "[1,2]");
  await page.click('[data-testid="append"]');
  await page.waitForSelector('[data-testid="append-error"]:not([hidden])');
  const error = await text('[data-testid="append-error"]');
  assert.match(error, /ANNAL_VALIDATION/);
  assert.equal(await page.getAttribute('[data-testid="append-error"]', "data-code"), "ANNAL_VALIDATION");
  // Not JSON at all: the page's own error, also shown.
  await page.fill("#payload", "{severity: 3");
  await page.click('[data-testid="append"]');
  await page.waitForSelector('[data-testid="append-error"][data-code="SyntaxError"]');
  await page.click('[data-testid="refresh"]');
  await page.waitForSelector('[data-testid="events-summary"][data-count="5"]');
  assert.equal(await rows().count(), 5);
  assert.equal(await page.getAttribute('[data-testid="store-status"]', "data-head-seq"), "5");

  // Verify: intact.
  let verdict = await clickVerify();
  assert.equal(await verdict.getAttribute("data-ok"), "true");
  assert.equal(await verdict.getAttribute("data-checked"), "5");
  assert.match(await verdict.innerText(), /Chain intact/);
  assert.equal(await text('[data-testid="verify-checked"]'), "5");
  assert.equal(await text('[data-testid="verify-progress-text"]'), "5 / 5");

  // Tamper: change a field of event 3.
  await page.selectOption('[data-testid="tamper-kind"]', "changeField");
  await page.fill('[data-testid="tamper-seq"]', "3");
  await page.click('[data-testid="tamper"]');
  await page.waitForSelector('[data-testid="tamper-result"][data-kind="changeField"]');
  assert.match(await text('[data-testid="tamper-expectation"]'), /detected at #3 with HASH_MISMATCH/);
  // Reading the log now fails on the damaged record, and says so.
  await page.waitForSelector('[data-testid="events-error"][data-code="ANNAL_TAMPERED"]');
  assert.match(await text('[data-testid="events-error"]'), /ANNAL_TAMPERED/);

  verdict = await clickVerify();
  assert.equal(await verdict.getAttribute("data-ok"), "false");
  assert.equal(await verdict.getAttribute("data-first-bad-seq"), "3");
  assert.equal(await verdict.getAttribute("data-reason"), "HASH_MISMATCH");
  assert.equal(await text('[data-testid="verify-reason"]'), "HASH_MISMATCH");
  assert.equal(await text('[data-testid="verify-first-bad-seq"]'), "#3");
  assert.notEqual(await text('[data-testid="verify-message"]'), "");
  assert.equal(await page.getAttribute('[data-testid="drill-match"]', "data-match"), "true");

  // Export: a download of the audit document.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export"]')]);
  assert.match(download.suggestedFilename(), /^annal-audit-demo-test-.*\.json$/);
  const doc = JSON.parse(await readFile(await download.path(), "utf8"));
  assert.equal(doc.format, "annal-audit/1");
  assert.equal(doc.events.length, 5);
  assert.equal(doc.store.user_id, "nurse-1");
  assert.equal(doc.head.device_seq, 5);

  // Close, then destroy.
  await page.click('[data-testid="close"]');
  await page.waitForSelector('[data-testid="store-status"][data-state="closed"]');
  assert.equal(await page.isDisabled('[data-testid="append"]'), true);
  await page.click('[data-testid="destroy"]');
  await page.waitForSelector('[data-testid="store-status"][data-state="destroyed"]');
  assert.equal(await page.isHidden('[data-testid="store-error"]'), true);
});

test("an undetectable drill is explained and compared with its expectation", async () => {
  await page.click('[data-testid="open"]');
  await page.waitForSelector('[data-testid="store-status"][data-state="open"]');
  await page.click('[data-testid="append-samples"]');
  await page.waitForSelector('[data-testid="append-result"][data-seq="5"]');

  await page.selectOption('[data-testid="tamper-kind"]', "rehashSuffix");
  await page.fill('[data-testid="tamper-seq"]', "2");
  await page.click('[data-testid="tamper"]');
  await page.waitForSelector('[data-testid="tamper-result"][data-kind="rehashSuffix"]');
  assert.match(await text('[data-testid="tamper-expectation"]'), /not detected/);

  const verdict = await clickVerify();
  assert.equal(await verdict.getAttribute("data-ok"), "true");
  assert.equal(await page.getAttribute('[data-testid="drill-match"]', "data-match"), "true");
  assert.match(await text('[data-testid="drill-explain"]'), /receipt/);

  await page.fill("#store-name", STORE);
  await page.click('[data-testid="destroy"]');
  await page.waitForSelector('[data-testid="store-status"][data-state="destroyed"]');
});

test("no console errors, failed requests or off-server requests", () => {
  assert.deepEqual(problems, []);
});
