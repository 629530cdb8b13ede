// An acknowledged append survives the browser being killed (SIGKILL, as a
// crash or power cut would end it) right after the append resolved, and
// the store survives page reloads and close/reopen.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchKillable, launch, openPage, startServer, tempDir } from "./harness.mjs";

let server, profile;

before(async () => {
  server = await startServer();
  profile = await tempDir("annal-profile-");
});

after(async () => {
  server?.server.close();
  await profile?.cleanup();
});

test("an acknowledged append survives killing the browser", async () => {
  const acknowledged = [];
  for (let round = 0; round < 3; round++) {
    const chrome = await launchKillable(profile.dir);
    const page = await openPage(chrome.context, server.url);
    const event = await page.evaluate(async (round) => {
      const s = await annal.EventStore.open({ name: "durable", userId: "u" });
      return s.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: { round } });
    }, round);
    // The append has resolved: kill the browser process at once.
    await chrome.kill();
    acknowledged.push(event.hash);
  }
  const chrome = await launchKillable(profile.dir);
  const page = await openPage(chrome.context, server.url);
  const after = await page.evaluate(async () => {
    const s = await annal.EventStore.open({ name: "durable", userId: "u" });
    return { hashes: (await s.events()).map((e) => e.hash), verdict: await s.verify() };
  });
  await chrome.kill();
  assert.deepEqual(after.hashes, acknowledged);
  assert.deepEqual(after.verdict, { ok: true, checked: 3 });
});

test("events persist across page reloads and close/reopen", async () => {
  const browser = await launch();
  try {
    const page = await openPage(await browser.newContext(), server.url);
    const first = await page.evaluate(async () => {
      await annal.EventStore.destroy("reload");
      const s = await annal.EventStore.open({ name: "reload", userId: "u" });
      const e = await s.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: { n: 1 } });
      s.close();
      const again = await annal.EventStore.open({ name: "reload", userId: "u" });
      await again.append({ aggregateType: "t", aggregateId: "a", eventType: "e", payload: { n: 2 } });
      return { deviceId: again.identity.deviceId, hash: e.hash };
    });
    await page.reload();
    await page.waitForFunction(() => window.annalReady === true);
    const after = await page.evaluate(async () => {
      const s = await annal.EventStore.open({ name: "reload", userId: "u" });
      return { deviceId: s.identity.deviceId, events: await s.events(), verdict: await s.verify() };
    });
    assert.equal(after.deviceId, first.deviceId);
    assert.equal(after.events.length, 2);
    assert.equal(after.events[0].hash, first.hash);
    assert.deepEqual(after.verdict, { ok: true, checked: 2 });
  } finally {
    await browser.close();
  }
});
