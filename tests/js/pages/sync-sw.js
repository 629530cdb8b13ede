// The app's service worker in the background-sync tests: it syncs the
// stores named in its URL through annal/sw, with tokens from the app's own
// auth server (here a test double that mints them with annal-server's CLI).
// It reports each pass to that server, since no page may be open to hear.
import * as annalSw from "/annal/dist/sw.js";

const { registerAnnalSync } = annalSw;
// For the tests' evaluate(): a service worker may not import() later.
self.annalSw = annalSw;

const params = new URL(self.location.href).searchParams;
const serverUrl = params.get("server");
const auth = params.get("auth");
const names = (params.get("names") ?? "").split(",").filter(Boolean);
// `nosync`: play a browser without Background Sync (Firefox, Safari).
if (params.has("nosync")) delete self.SyncManager;

// What a real app does here: exchange a refresh credential it keeps for a
// short-lived access token. `refresh` is true when the last one was refused.
async function getToken(name, refresh) {
  const response = await fetch(`${auth}/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, refresh }),
  });
  if (!response.ok) throw new Error(`the auth server answered ${response.status}`);
  return (await response.json()).token;
}

function report(name, result) {
  return fetch(`${auth}/report`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, ...result }),
  }).catch(() => undefined);
}

registerAnnalSync(
  names.map((name) => ({
    name,
    serverUrl,
    getToken: (refresh) => getToken(name, refresh),
    onResult: (result) =>
      report(name, result.error ? { ok: false, code: result.error.code, message: result.error.message } : { ok: true, report: result.report }),
  })),
);

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
