// The Sync card: connects the open store to annal-server through the demo
// server (www/demo_backend.mjs), shows store.syncStatus() as it changes,
// and unplugs the network on purpose, so the outbox can be watched filling
// up while offline and draining once the network is back.

import { $, clearError, el, fill, hashCode, log, run, showError } from "./ui.js";

/** The open store (app.js attaches it), or null. */
let store = null;
/** Whether configureSync() was called on it. */
let connected = false;
/** [type, listener] pairs on the store, removed when it closes. */
let listeners = [];
/** The running store.live() stream, or null. */
let live = null;
/** The demo server's network switch: true, false, or null when it has no sync backend. */
let online = null;
/** annal-server's own URL, which the switch does not cut off. */
let directUrl = null;
/** Passes that failed in this tab since Connect: the retries. */
let failures = 0;
/** The status shown now, which the countdown reads. */
let shown = null;
/** Ticks the countdown and the live stream's state while a store is open. */
let ticker;
/** The last state other than "syncing", to log where passes leave things. */
let settled = null;
/** Ignores lists read for an earlier state of the store. */
let outcomesRead = 0;

const STATES = {
  idle: ["ok", "The last pass succeeded, or none has run yet."],
  syncing: ["busy", "A pass is running, in this tab or another one."],
  offline: ["warn", "The server could not be reached. The events wait in the outbox, and sync tries again by itself at the next attempt time."],
  error: ["bad", "The last pass failed for a reason waiting will not fix (see the last error). Automatic sync waits for “Sync now”."],
  locked: ["bad", "The store is locked in this tab: its events wait until it is unlocked."],
};

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const time = (ms) => (ms === null ? "—" : new Date(ms).toLocaleTimeString());

function inSeconds(ms) {
  const s = Math.max(0, Math.ceil((ms - Date.now()) / 1000));
  return s === 0 ? "now" : `in ${s} s`;
}

// -------------------------------------------------------------- network --

async function readNetwork() {
  const res = await fetch("/demo/network", { cache: "no-store" });
  if (res.status === 404) {
    online = null;
  } else {
    if (!res.ok) throw new Error(`the demo server answered ${res.status} to GET /demo/network`);
    ({ online, annalServer: directUrl } = await res.json());
  }
  renderNetwork();
}

function renderNetwork() {
  const button = $("network-toggle");
  const box = $("network-state");
  box.dataset.online = String(online);
  if (online === null) {
    button.textContent = "Go offline";
    fill(box, el("span", { class: "badge" }, "no sync server"), " This server runs without annal-server: start the demo with ", el("code", {}, "make demo"), " to sync.");
    return;
  }
  button.textContent = online ? "Go offline" : "Go online";
  button.className = online ? "danger" : "primary";
  button.setAttribute("aria-pressed", String(!online));
  fill(box,
    el("span", { class: online ? "badge ok" : "badge warn", "data-testid": "network-badge" }, online ? "network: online" : "network: offline"),
    " ",
    online
      ? "The demo server passes the page's sync requests on to annal-server."
      : "The demo server drops every sync connection, as a lost network would: watch the state turn offline and pending count up as you append.",
    " annal-server itself listens on ",
    el("code", {}, directUrl),
    " and lets this page in (CORS); a Server URL pointing there is not cut off by the switch.",
  );
}

/** The switch is the demo server's, shared by every tab of the demo. */
async function setNetwork(want) {
  const res = await fetch("/demo/network", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ online: want }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`the demo server answered ${res.status} to POST /demo/network: ${body.error ?? "no reason given"}`);
  online = body.online;
  renderNetwork();
}

// ---------------------------------------------------------------- token --

/**
 * getToken for configureSync(). The demo server mints tokens with
 * `annal-server token` (POST /demo/token, loopback only). A real app gets
 * them from its own auth server, for the user who signed in; nothing like
 * /demo/token belongs in production.
 */
function tokenSource({ tenantId, userId }, scope) {
  let cached = null;
  return async (refresh) => {
    if (cached && !refresh) return cached;
    const res = await fetch("/demo/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant: tenantId, user: userId, scope, refresh }),
    });
    const body = await res.json().catch(() => ({}));
    // Thrown here, it reaches the page as sync()'s ANNAL_UNAUTHORIZED.
    if (!res.ok) throw new Error(`the demo token endpoint answered ${res.status}: ${body.error ?? "no reason given"}`);
    cached = body.token;
    log(refresh ? "Fetched a fresh token: the server refused the last one." : `Fetched a token for ${userId} in ${tenantId} (scope ${scope}) from the demo server.`);
    return cached;
  };
}

// ----------------------------------------------------------- indicator --

function renderIndicator(status) {
  const box = $("sync-status");
  shown = status;
  for (const key of ["pending", "acked", "leader"]) delete box.dataset[key];
  if (!store || !connected || !status) {
    box.dataset.state = store ? "disconnected" : "closed";
    fill(box, el("p", { class: "muted" }, store ? "Not connected: press Connect to sync this store." : "Open a store, then connect it to the sync server."));
    return;
  }
  const [kind, meaning] = STATES[status.state] ?? ["", ""];
  box.dataset.state = status.state;
  box.dataset.pending = String(status.pending);
  box.dataset.acked = String(status.acked);
  box.dataset.leader = String(status.leader);
  const checkpoint = status.checkpoint;
  fill(box,
    el("p", {}, el("span", { class: `badge ${kind}`, "data-testid": "sync-state" }, status.state), " ", meaning),
    el(
      "dl",
      { class: "identity" },
      el("dt", {}, "pending"),
      el("dd", {}, el("strong", { "data-testid": "sync-pending" }, String(status.pending)), ` ${status.pending === 1 ? "event waits" : "events wait"} in the outbox; the server has acknowledged every event up to #${status.acked}`),
      el("dt", {}, "leader"),
      el("dd", { "data-testid": "sync-leader" }, status.leader ? "this tab: it syncs for every tab of this store" : "another tab or worker syncs for this one (or none yet)"),
      el("dt", {}, "last sync"),
      el("dd", { "data-testid": "sync-last-sync" }, status.lastSyncAt === null ? "none yet in this tab" : time(status.lastSyncAt)),
      el("dt", {}, "next attempt"),
      el("dd", { "data-testid": "sync-next-attempt" }, nextAttempt(status)),
      el("dt", {}, "last error"),
      el("dd", { "data-testid": "sync-last-error", class: status.lastError ? "" : "muted" }, status.lastError ?? "none"),
      el("dt", {}, "failed passes"),
      el("dd", { "data-testid": "sync-failures" }, `${failures} since Connect`),
      el("dt", {}, "checkpoint"),
      el("dd", {}, checkpoint ? [`${checkpoint.ledger} #${checkpoint.seq} `, hashCode(checkpoint.hash)] : "nothing pulled yet"),
    ),
  );
}

function nextAttempt(status) {
  return status.nextAttemptAt === null ? "—" : `${time(status.nextAttemptAt)} (${inSeconds(status.nextAttemptAt)})`;
}

/** The countdown to the next attempt, and whether the live stream is connected. */
function tick() {
  const next = document.querySelector('[data-testid="sync-next-attempt"]');
  if (next && shown) next.textContent = nextAttempt(shown);
  renderLive();
}

function onStatus(status) {
  renderIndicator(status);
  // Passes come and go every few seconds; only where they leave things is news.
  if (status.state !== "syncing" && status.state !== settled) {
    if (settled !== null) log(`Sync is ${status.state}: ${plural(status.pending, "event")} pending.`, status.state === "idle" ? "ok" : "warn");
    settled = status.state;
  }
  if (status.state !== "syncing" && status.state !== "locked") void renderOutcomes();
}

// -------------------------------------------------------------- outcomes --

/** Lists what the server said about this store's events, and counts what it pulled. */
async function renderOutcomes() {
  const s = store;
  const read = ++outcomesRead;
  if (!s || !connected) {
    fill($("sync-outcomes"));
    return;
  }
  let rejected, conflicts, remote;
  try {
    [rejected, conflicts, remote] = await Promise.all([s.rejected(), s.conflicts(), s.remoteEvents()]);
  } catch (error) {
    if (s === store && read === outcomesRead) showError($("sync-error"), error, "Reading the sync results");
    return;
  }
  if (s !== store || read !== outcomesRead) return;
  fill($("sync-outcomes"),
    el(
      "div",
      {},
      el("h3", {}, "Quarantined by the server ", el("span", { class: "badge", "data-testid": "sync-rejected-count" }, String(rejected.length))),
      el("p", { class: "hint" }, "rejected(): events the server set aside with a reason (for example a schemaVersion above its limit). Kept here and there, never dropped."),
      el(
        "ul",
        { class: "outcome-list", "data-testid": "sync-rejected", "data-count": rejected.length },
        rejected.map((r) => el("li", {}, `#${r.deviceSeq} `, el("span", { class: "badge bad" }, r.code), ` ${r.message} (server seq ${r.receipt.server_seq})`)),
      ),
    ),
    el(
      "div",
      {},
      el("h3", {}, "Conflicts ", el("span", { class: "badge", "data-testid": "sync-conflicts-count" }, String(conflicts.length))),
      el("p", { class: "hint" }, "conflicts(): events of this device that share an aggregate version with another device's. Both are kept; the app decides, usually by appending a new event."),
      el(
        "ul",
        { class: "outcome-list", "data-testid": "sync-conflicts", "data-count": conflicts.length },
        // Full ids: UUIDv7s made in the same millisecond share their first digits.
        conflicts.map((c) => el("li", {}, `#${c.deviceSeq} conflicts with `, c.conflictsWith.map((id) => el("code", {}, id)), ` (server seq ${c.receipt.server_seq})`)),
      ),
    ),
    el(
      "p",
      { class: "muted", "data-testid": "sync-remote", "data-count": remote.length },
      `remoteEvents(): ${plural(remote.length, "event")} of other devices pulled and verified.`,
    ),
  );
}

// ------------------------------------------------------------------ live --

function stopLive() {
  if (!live) return;
  live.close();
  live = null;
  log("Live stream closed.");
  renderLive();
}

function renderLive() {
  const button = $("live-toggle");
  button.textContent = live ? "Stop live" : "Live";
  button.setAttribute("aria-pressed", String(live !== null));
  const box = $("live-state");
  box.dataset.live = String(live !== null);
  box.dataset.connected = String(live?.connected ?? false);
  box.textContent = !live
    ? "Live is off: other devices' events arrive with the next pass."
    : live.connected
      ? "Live: connected to the server's event stream."
      : "Live: connecting to the server's event stream…";
}

function onLiveEvents(events) {
  const list = $("live-list");
  for (const e of events) {
    list.prepend(
      el(
        "li",
        { "data-event-id": e.eventId },
        `${e.eventType} on ${e.aggregateType}/${e.aggregateId} (#${e.deviceSeq} of device `,
        el("code", {}, e.deviceId),
        ", by ",
        e.userId,
        ") ",
        hashCode(e.hash),
      ),
    );
    log(`Live: ${e.eventType} on ${e.aggregateType}/${e.aggregateId} arrived from another device, verified.`, "ok");
  }
  list.dataset.count = String(list.children.length);
}

// --------------------------------------------------------------- actions --

function showReport(report) {
  const box = $("sync-result");
  for (const [key, value] of Object.entries(report)) box.dataset[key] = String(value);
  fill(box,
    el(
      "p",
      {},
      el("span", { class: "badge ok" }, "synced"),
      ` pushed ${report.pushed}, pulled ${report.pulled}, verified ${report.verified} ledger ${report.verified === 1 ? "entry" : "entries"};`,
      ` ${report.rejected} quarantined, ${plural(report.conflicts, "conflict")}; acknowledged up to #${report.acked}.`,
    ),
  );
  log(`Synced: pushed ${report.pushed}, pulled ${report.pulled}, verified ${report.verified}.`, "ok");
}

async function syncNow() {
  $("sync-result").replaceChildren();
  let report;
  try {
    report = await store.sync();
  } catch (error) {
    failures++;
    if (shown) renderIndicator(shown);
    throw error;
  }
  showReport(report);
}

$("sync-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run($("sync-connect"), $("sync-error"), "Connect", async () => {
    stopLive();
    const serverUrl = $("sync-server-url").value.trim();
    const scope = $("sync-scope").value;
    const auto = $("sync-auto").checked;
    store.configureSync({ serverUrl, scope, auto, getToken: tokenSource(store.identity, scope) });
    connected = true;
    failures = 0;
    $("sync-result").replaceChildren();
    log(`Connected to ${serverUrl} (scope ${scope}, ${auto ? "automatic sync" : "sync on “Sync now” only"}).`);
    renderIndicator(await store.syncStatus());
    await renderOutcomes();
  });
});

$("sync-now").addEventListener("click", () => {
  run($("sync-now"), $("sync-error"), "Sync", syncNow);
});

$("network-toggle").addEventListener("click", () => {
  const want = !online;
  run($("network-toggle"), $("sync-error"), want ? "Go online" : "Go offline", async () => {
    await setNetwork(want);
    log(online ? "Network back: the demo server passes sync requests on again." : "Network unplugged: the demo server drops every sync connection.", online ? "ok" : "warn");
    // A real network coming back fires "online", on which the store syncs
    // at once; this switch is the demo server's, so the page starts the pass.
    if (online && store && connected) await syncNow();
  });
});

$("live-toggle").addEventListener("click", () => {
  run($("live-toggle"), $("sync-error"), "Live", async () => {
    if (live) return stopLive();
    live = store.live({}, onLiveEvents);
    log("Live stream opened: other devices' events show up below as they reach the server.");
    renderLive();
  });
});

// Another tab may have flipped the shared switch.
window.addEventListener("focus", () => void readNetwork().catch((error) => showError($("sync-error"), error, "Reading the network switch")));

// ------------------------------------------------------------ for app.js --

/** Enables what applies: Connect needs a store and a sync backend, the rest a connected store. */
export function renderControls() {
  $("sync-fieldset").disabled = !store || online === null;
  $("sync-now").disabled = !connected;
  $("live-toggle").disabled = !connected;
  $("network-toggle").disabled = online === null;
}

/** A store was opened: it starts disconnected. */
export function attach(s) {
  store = s;
  connected = false;
  settled = null;
  failures = 0;
  const on = (type, listener) => {
    s.addEventListener(type, listener);
    listeners.push([type, listener]);
  };
  on("syncstatus", (e) => onStatus(e.status));
  on("syncerror", (e) => {
    failures++;
    const { code, message } = e.error;
    if (code === "ANNAL_OFFLINE") log(`Automatic sync: ${code} — ${message}. Retrying at the next attempt time.`, "warn");
    // These stop automatic sync until "Sync now": the user must see them.
    else showError($("sync-error"), e.error, "Automatic sync");
  });
  on("rejected", (e) => log(`The server quarantined ${plural(e.items.length, "event")}: ${e.items.map((r) => `#${r.deviceSeq} ${r.code}`).join(", ")}.`, "warn"));
  on("conflict", (e) => log(`The server flagged ${plural(e.items.length, "conflict")}: ${e.items.map((c) => `#${c.deviceSeq}`).join(", ")}.`, "warn"));
  ticker = setInterval(tick, 1000);
  $("live-list").replaceChildren();
  $("live-list").dataset.count = "0";
  renderIndicator(null);
  void renderOutcomes();
  renderControls();
}

/** The store is about to close: stop listening and reset the card. */
export function detach() {
  stopLive();
  if (store) for (const [type, listener] of listeners) store.removeEventListener(type, listener);
  listeners = [];
  clearInterval(ticker);
  store = null;
  connected = false;
  $("sync-result").replaceChildren();
  $("live-list").replaceChildren();
  $("live-list").dataset.count = "0";
  clearError($("sync-error"));
  renderIndicator(null);
  void renderOutcomes();
  renderControls();
}

/** Fills in the defaults and reads the network switch. */
export async function init() {
  // Same origin as the page: the demo server proxies /sync/ to annal-server.
  $("sync-server-url").value = `${location.origin}/sync`;
  renderIndicator(null);
  renderLive();
  await readNetwork();
  renderControls();
}
