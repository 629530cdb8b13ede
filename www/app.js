// The annal demo: one page, no build step, no framework. Everything it loads
// comes from this server: the package from /annal/, this file, ui.js (the
// shared helpers), sync.js (the Sync card) and style.css; sync goes to
// annal-server through the same server's /sync/.

import { EventStore } from "/annal/dist/index.js";
import { tamper, expectation, openKeys } from "/annal/dist/testing/index.js";
import { $, clearError, el, fill, hashCode, log, onActionDone, run, showError, value } from "./ui.js";
import * as sync from "./sync.js";

/** The open store, or null. */
let store = null;
/** The last known head of the open store: { deviceSeq, hash }. */
let head = null;
/** The last tamper drill: { mutation, label, expected, headBefore, headAfter }. */
let lastDrill = null;
/** The object URL of the last export, revoked when the next one is made. */
let exportUrl = null;
/** The "lockchange" listener on the open store, removed when it closes. */
let lockListener = null;

// ------------------------------------------------------------ store state --

/** Whether the open store is encrypted and locked in this tab. */
const isLocked = () => store !== null && store.encrypted && store.locked;

/** Enables the sections that need an open store, and an unlocked one. */
function syncEnabled() {
  const open = store !== null;
  const encrypted = open && store.encrypted;
  const locked = isLocked();
  for (const id of ["append-fieldset", "verify-fieldset", "tamper-fieldset", "export-fieldset", "filter-fieldset"]) {
    $(id).disabled = !open || locked;
  }
  $("close").disabled = !open;
  $("crypto-panel").hidden = !encrypted;
  $("lock").disabled = !encrypted || locked;
  $("unlock").disabled = !locked;
  $("keys-fieldset").disabled = !encrypted || locked;
  $("passphrase-fieldset").disabled = !encrypted || locked;
  // The encrypted-only drills are offered on encrypted stores only.
  const sealed = $("tamper-sealed");
  sealed.hidden = sealed.disabled = !encrypted;
  if (!encrypted && sealed.contains($("tamper-kind").selectedOptions[0] ?? null)) $("tamper-kind").value = "changeField";
  sync.renderControls();
}

/** Shows the open store's identity and head. */
async function renderStatus() {
  const box = $("store-status");
  if (!store) {
    head = null;
    box.dataset.state = "closed";
    box.replaceChildren("No store open.");
    renderTamperPreview();
    return;
  }
  const id = store.identity;
  const locked = isLocked();
  head = locked ? null : await store.head();
  box.dataset.state = "open";
  box.dataset.encrypted = String(store.encrypted);
  box.dataset.locked = String(locked);
  if (head) box.dataset.headSeq = String(head.deviceSeq);
  else delete box.dataset.headSeq;
  box.replaceChildren(
    el(
      "p",
      {},
      el("span", { class: "badge ok" }, "open"),
      " ",
      store.encrypted
        ? el("span", { class: "badge crypt", title: "AES-256-GCM at rest", "data-testid": "encrypted-badge" }, "encrypted")
        : el("span", { class: "badge", title: "stored in the clear", "data-testid": "encrypted-badge" }, "plain"),
      " ",
      store.encrypted && el("span", { class: locked ? "badge bad" : "badge ok", "data-testid": "lock-badge" }, locked ? "locked" : "unlocked"),
      " ",
      el("strong", {}, id.name),
      ` (IndexedDB database `,
      el("code", {}, id.databaseName),
      ")",
    ),
    el(
      "dl",
      { class: "identity" },
      el("dt", {}, "user"), el("dd", {}, id.userId),
      el("dt", {}, "tenant"), el("dd", {}, id.tenantId),
      el("dt", {}, "device"), el("dd", {}, el("code", { title: id.deviceId }, id.deviceId)),
      el("dt", {}, "store id"), el("dd", {}, el("code", { title: id.storeId }, id.storeId)),
      el("dt", {}, "head"),
      head
        ? el("dd", { "data-testid": "head" }, `#${head.deviceSeq} `, el("code", { class: "hash full" }, head.hash))
        : el("dd", { "data-testid": "head", class: "muted" }, "locked: unlock to read it"),
    ),
  );
  renderTamperPreview();
}

/** Marks the last verification result as out of date. */
function markVerifyStale(why) {
  const box = $("verify-result");
  if (box.dataset.state !== "done") return;
  box.dataset.state = "stale";
  box.className = "verdict stale";
  box.prepend(el("p", { class: "stale-note" }, `${why} — verify again.`));
}

function resetVerify() {
  const box = $("verify-result");
  box.dataset.state = "idle";
  box.className = "verdict";
  for (const key of ["ok", "checked", "firstBadSeq", "reason"]) delete box.dataset[key];
  box.replaceChildren("Not verified yet.");
  $("verify-progress").value = 0;
  $("verify-progress-text").textContent = "";
}

// ------------------------------------------------------------------ open --

$("store-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run($("open"), $("store-error"), "Open", async () => {
    if (store) {
      closeStore();
      await renderStatus();
      renderEvents(null);
      await renderCrypto();
    }
    const options = { name: $("store-name").value, userId: $("user-id").value, durability: $("durability").value };
    const tenantId = value("tenant-id");
    if (tenantId) options.tenantId = tenantId;
    // Passphrases are taken as typed: spaces count.
    const passphrase = $("passphrase").value;
    if (passphrase) options.passphrase = passphrase;
    store = await EventStore.open(options);
    lockListener = (event) => void onLockChange(event);
    store.addEventListener("lockchange", lockListener);
    sync.attach(store);
    lastDrill = null;
    resetVerify();
    $("append-result").replaceChildren();
    $("tamper-result").replaceChildren();
    clearCryptoResult();
    syncEnabled();
    await renderStatus();
    log(`Opened ${store.encrypted ? "encrypted" : "plain"} store "${store.identity.name}" as ${store.identity.userId} (head #${head.deviceSeq}).`);
    await renderCrypto();
    await refreshEvents();
  });
});

function closeStore() {
  const name = store.identity.name;
  try {
    // Closing erases an encrypted store's keys: not a lock to report.
    store.removeEventListener("lockchange", lockListener);
    sync.detach();
    store.close();
  } finally {
    store = null;
    lockListener = null;
    hideRecoverySecret();
    clearCryptoResult();
    $("reencrypt-progress").value = 0;
    $("reencrypt-progress-text").textContent = "";
    syncEnabled();
  }
  log(`Closed store "${name}".`);
}

$("close").addEventListener("click", () => {
  run($("close"), $("store-error"), "Close", async () => {
    if (!store) return;
    closeStore();
    await renderStatus();
    renderEvents(null);
    await renderCrypto();
  });
});

$("destroy").addEventListener("click", () => {
  run($("destroy"), $("store-error"), "Destroy", async () => {
    const name = $("store-name").value;
    if (store && store.identity.name === name) {
      closeStore();
      await renderStatus();
      renderEvents(null);
      await renderCrypto();
    }
    await EventStore.destroy(name);
    lastDrill = null;
    resetVerify();
    $("append-result").replaceChildren();
    $("tamper-result").replaceChildren();
    $("export-result").replaceChildren();
    clearCryptoResult();
    const box = $("store-status");
    if (!store) {
      box.dataset.state = "destroyed";
      box.replaceChildren(el("p", {}, el("span", { class: "badge" }, "destroyed"), ` Store "${name}" and all its events were deleted.`));
    }
    log(`Destroyed store "${name}" (IndexedDB database annal:${name} deleted).`);
  });
});

// ------------------------------------------------------------ encryption --

/** Shows whether the open store is encrypted, whether it is locked, and its key ring. */
async function renderCrypto() {
  const state = $("crypto-state");
  const info = $("key-info");
  syncEnabled();
  if (!store || !store.encrypted) {
    state.dataset.state = store ? "plain" : "closed";
    fill(state,
      store
        ? el("p", {}, el("span", { class: "badge" }, "plain"), " This store keeps its events in the clear; encryption is fixed when a store is created. To see it, open a new store name with a passphrase.")
        : "Open a store to see how it is stored.",
    );
    clearKeyInfo();
    return;
  }
  const locked = store.locked;
  state.dataset.state = locked ? "locked" : "unlocked";
  fill(state,
    el(
      "p",
      {},
      el("span", { class: "badge crypt" }, "encrypted"),
      " ",
      el("span", { class: locked ? "badge bad" : "badge ok", "data-testid": "crypto-lock-badge" }, locked ? "locked" : "unlocked"),
      " ",
      locked
        ? "The keys are erased from memory in this tab: the data sections stay disabled until you unlock."
        : "Every event is sealed with AES-256-GCM under the current data key.",
    ),
  );
  if (locked) {
    clearKeyInfo();
    fill(info, el("p", { class: "muted" }, "Locked: unlock to see the key ring."));
    return;
  }
  renderKeyInfo(await store.keyInfo());
}

function clearKeyInfo() {
  const box = $("key-info");
  for (const key of ["current", "keys", "reencrypting"]) delete box.dataset[key];
  box.replaceChildren();
}

/** Renders store.keyInfo(): the current key, every key with its records, and any unfinished re-encryption. */
function renderKeyInfo(info) {
  const box = $("key-info");
  box.dataset.current = String(info.current);
  box.dataset.keys = String(info.keys.length);
  box.dataset.reencrypting = String(info.reencryption !== null);
  const stateOf = (k) => (k.retired ? "retired" : k.id === info.current ? "current" : "in use");
  fill(box,
    el(
      "p",
      {},
      "Current data key: ",
      el("strong", { "data-testid": "key-current" }, `key ${info.current}`),
      ` · annal starts a new key before one has encrypted ${info.maxRecordsPerKey.toLocaleString("en")} events.`,
    ),
    el(
      "table",
      { class: "keys" },
      el("caption", { class: "visually-hidden" }, "Data keys, oldest first"),
      el("thead", {}, el("tr", {}, ["key", "first deviceSeq", "records", "state"].map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        info.keys.map((k) =>
          el(
            "tr",
            { "data-key-id": k.id, "data-retired": String(k.retired), "data-records": k.records },
            el("td", { class: "num" }, String(k.id)),
            el("td", { class: "num" }, String(k.firstDeviceSeq)),
            el("td", { class: "num" }, String(k.records)),
            el("td", {}, el("span", { class: k.retired ? "badge" : k.id === info.current ? "badge ok" : "badge crypt" }, stateOf(k))),
          ),
        ),
      ),
    ),
    el(
      "p",
      { class: info.reencryption ? "explain" : "muted", "data-testid": "reencryption-state" },
      info.reencryption
        ? `Re-encryption in progress: records before #${info.reencryption.nextDeviceSeq} are under key ${info.reencryption.target}. Press “Re-encrypt all” to resume it.`
        : "No re-encryption in progress.",
    ),
  );
}

function clearCryptoResult() {
  const box = $("crypto-result");
  delete box.dataset.action;
  box.replaceChildren();
}

function setCryptoResult(action, ...children) {
  const box = $("crypto-result");
  box.dataset.action = action;
  fill(box, el("p", {}, ...children));
}

/** Brings the page in line with whether the store is locked in this tab. */
async function applyLockState() {
  if (isLocked()) hideRecoverySecret();
  syncEnabled();
  await renderStatus();
  await renderCrypto();
  await refreshEvents();
}

/** "lockchange": a lock or unlock here, or a lock in another tab or worker. */
async function onLockChange(event) {
  log(
    event.locked ? "Store locked (here or in another tab): its keys were erased from memory in this tab." : "Store unlocked in this tab.",
    event.locked ? "warn" : "ok",
  );
  try {
    await applyLockState();
  } catch (error) {
    showError($("crypto-error"), error, "Updating after a lock change");
  }
}

$("lock").addEventListener("click", () => {
  run($("lock"), $("crypto-error"), "Lock", async () => {
    store.lock();
    await applyLockState();
  });
});

$("unlock").addEventListener("click", () => {
  run($("unlock"), $("crypto-error"), "Unlock", async () => {
    const passphrase = $("passphrase").value;
    if (!passphrase) throw new TypeError("type the store's passphrase in the passphrase field above, then press Unlock");
    await store.unlock(passphrase);
    await applyLockState();
  });
});

$("rotate").addEventListener("click", () => {
  run($("rotate"), $("crypto-error"), "Rotate data key", async () => {
    clearCryptoResult();
    const { keyId } = await store.rotateDataKey();
    setCryptoResult("rotate", el("span", { class: "badge ok" }, "rotated"), ` New events are now encrypted under key ${keyId}; older ones stay under their keys until “Re-encrypt all”.`);
    log(`Rotated: new events use data key ${keyId}.`);
    await renderCrypto();
  });
});

$("reencrypt").addEventListener("click", () => {
  const progress = $("reencrypt-progress");
  const text = $("reencrypt-progress-text");
  progress.value = 0;
  text.textContent = "";
  run($("reencrypt"), $("crypto-error"), "Re-encrypt", async () => {
    clearCryptoResult();
    const started = performance.now();
    const result = await store.reencryptAll({
      onProgress: (done, total) => {
        progress.max = Math.max(total, 1);
        progress.value = done;
        text.textContent = `${done} / ${total}`;
      },
    });
    const ms = Math.round(performance.now() - started);
    if (!text.textContent) text.textContent = "nothing to move";
    const retired = result.retired.length ? `retired key${result.retired.length === 1 ? "" : "s"} ${result.retired.join(", ")}` : "no key retired";
    setCryptoResult(
      "reencrypt",
      el("span", { class: "badge ok" }, "re-encrypted"),
      ` ${result.reencrypted} event${result.reencrypted === 1 ? "" : "s"} moved to key ${result.keyId}; ${retired} (${ms} ms). Hashes are unchanged.`,
    );
    log(`Re-encrypted ${result.reencrypted} events under key ${result.keyId}; ${retired}.`);
    markVerifyStale("The records were re-encrypted since");
    await renderCrypto();
  });
});

$("recovery").addEventListener("click", () => {
  run($("recovery"), $("crypto-error"), "Export recovery secret", async () => {
    const secret = await store.exportRecoveryKey();
    $("recovery-secret").textContent = secret;
    $("recovery-box").hidden = false;
    // Never logged: the secret is on screen once, nowhere else.
    log("Exported a new recovery secret (shown once; any earlier one stopped working).", "warn");
  });
});

function hideRecoverySecret() {
  $("recovery-secret").textContent = "";
  $("recovery-box").hidden = true;
}

$("recovery-done").addEventListener("click", hideRecoverySecret);

$("passphrase-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run($("change-passphrase"), $("crypto-error"), "Change passphrase", async () => {
    clearCryptoResult();
    const next = $("new-passphrase").value;
    await store.changePassphrase($("current-passphrase").value, next);
    $("current-passphrase").value = "";
    $("new-passphrase").value = "";
    // Unlock and the tamper drills read the field above: keep it working.
    $("passphrase").value = next;
    setCryptoResult(
      "passphrase",
      el("span", { class: "badge ok" }, "changed"),
      " The passphrase was replaced (no event was re-encrypted); the old one no longer opens the store. The passphrase field above now holds the new one.",
    );
    log("Changed the passphrase.");
  });
});

// ---------------------------------------------------------------- append --

/** Reads the payload textarea. Not valid JSON: nothing reaches annal. */
function readPayload() {
  const text = $("payload").value;
  try {
    return JSON.parse(text);
  } catch (error) {
    const wrapped = new SyntaxError(`the payload is not valid JSON, so nothing was sent to annal (${error.message})`);
    throw wrapped;
  }
}

function afterAppend(events) {
  const last = events[events.length - 1];
  const box = $("append-result");
  box.dataset.seq = String(last.deviceSeq);
  box.replaceChildren(
    el("span", { class: "badge ok" }, events.length === 1 ? "appended" : `appended ${events.length}`),
    " ",
    events.length === 1
      ? `#${last.deviceSeq} ${last.eventType} on ${last.aggregateType}/${last.aggregateId}`
      : `#${events[0].deviceSeq}–#${last.deviceSeq} on ${last.aggregateType}/${last.aggregateId}`,
    ` (aggregate version ${last.aggregateVersion}), hash `,
    hashCode(last.hash),
  );
  for (const e of events) log(`Appended #${e.deviceSeq} ${e.eventType} to ${e.aggregateType}/${e.aggregateId}.`);
  markVerifyStale("Events were appended since");
}

$("append-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run($("append"), $("append-error"), "Append", async () => {
    $("append-result").replaceChildren();
    const stored = await store.append({
      aggregateType: $("aggregate-type").value,
      aggregateId: $("aggregate-id").value,
      eventType: $("event-type").value,
      payload: readPayload(),
    });
    afterAppend([stored]);
    await renderStatus();
    await renderCrypto();
    await refreshEvents();
  });
});

$("append-samples").addEventListener("click", () => {
  run($("append-samples"), $("append-error"), "Append samples", async () => {
    $("append-result").replaceChildren();
    const aggregateType = $("aggregate-type").value;
    const aggregateId = $("aggregate-id").value;
    const samples = [
      ["symptom-recorded", { severity: 2, note: "mild headache" }],
      ["dose-taken", { drug: "ibuprofen", doseMg: 400 }],
      ["symptom-recorded", { severity: 1, note: "better after the dose" }],
      ["sleep-logged", { hours: 7.5, quality: "good" }],
      ["symptom-recorded", { severity: 0, note: "no symptoms" }],
    ];
    const stored = await store.appendBatch(
      samples.map(([eventType, payload]) => ({ aggregateType, aggregateId, eventType, payload })),
    );
    afterAppend(stored);
    await renderStatus();
    await renderCrypto();
    await refreshEvents();
  });
});

// ---------------------------------------------------------------- events --

function currentFilter() {
  const filter = {};
  const aggregateId = value("filter-aggregate-id");
  const eventType = value("filter-event-type");
  if (aggregateId) filter.aggregateId = aggregateId;
  if (eventType) filter.eventType = eventType;
  return filter;
}

/** Renders events, or clears the table (`null`). */
function renderEvents(events, filter = {}) {
  const body = $("events").tBodies[0];
  const summary = $("events-summary");
  if (events === null) {
    body.replaceChildren();
    summary.textContent = !store ? "Open a store to see its events." : isLocked() ? "The store is locked: unlock it to see its events." : "";
    summary.dataset.count = "";
    return;
  }
  body.replaceChildren(
    ...events.map((e) =>
      el(
        "tr",
        { "data-seq": e.deviceSeq },
        el("td", { class: "num" }, String(e.deviceSeq)),
        el("td", { class: "time" }, e.createdAt),
        el("td", {}, `${e.aggregateType}/${e.aggregateId} `, el("small", { class: "muted" }, `v${e.aggregateVersion}`)),
        el("td", {}, e.eventType),
        el("td", { class: "payload" }, el("code", { title: JSON.stringify(e.payload, null, 2) }, JSON.stringify(e.payload))),
        el("td", {}, hashCode(e.prevHash)),
        el("td", {}, hashCode(e.hash)),
      ),
    ),
  );
  const conditions = Object.entries(filter).map(([k, v]) => `${k} = "${v}"`);
  summary.dataset.count = String(events.length);
  summary.textContent =
    `${events.length} event${events.length === 1 ? "" : "s"}` +
    (conditions.length ? ` matching ${conditions.join(" and ")}` : "") +
    (events.length === 0 && !conditions.length ? " yet — append one above." : ".");
}

/** Reads the events matching the filter. Errors are shown, the table cleared. */
async function refreshEvents() {
  const box = $("events-error");
  clearError(box);
  if (!store || isLocked()) return renderEvents(null);
  const filter = currentFilter();
  try {
    renderEvents(await store.events(filter), filter);
  } catch (error) {
    renderEvents(null);
    $("events-summary").textContent = "The events could not be read.";
    showError(box, error, "Listing events");
  }
}

$("filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run($("refresh"), $("events-error"), "Listing events", refreshEvents);
});

$("clear-filter").addEventListener("click", () => {
  $("filter-aggregate-id").value = "";
  $("filter-event-type").value = "";
  run($("clear-filter"), $("events-error"), "Listing events", refreshEvents);
});

// ---------------------------------------------------------------- verify --

const REASONS = {
  MALFORMED: "A stored record could not be parsed.",
  HASH_MISMATCH: "An event's fields no longer match the hash it was sealed with.",
  PAYLOAD_DIGEST_MISMATCH: "A payload no longer matches the digest its event was sealed with.",
  IDENTITY_MISMATCH: "An event claims another store, tenant, user or device.",
  MISSING_EVENT: "A sequence number is missing: an event was deleted.",
  OUT_OF_ORDER: "Events are not in sequence order.",
  BROKEN_LINK: "An event's prevHash is not the hash of the event before it.",
  TRUNCATED: "The log ends before its recorded head: events were cut off the end.",
  HEAD_MISMATCH: "The last event does not match the recorded head.",
  INDEX_MISMATCH: "An index derived from the log (aggregate versions) disagrees with it.",
  DECRYPT_FAILED: "A sealed record does not decrypt: its ciphertext was changed, moved or swapped.",
  HEAD_MAC_MISMATCH: "The recorded head does not carry a valid MAC: the log was shortened or rewritten without the key.",
};

const UNDETECTABLE =
  "An unkeyed local chain cannot see this edit, because the attacker left a log that is consistent with itself; " +
  "what anchors the chain is a head hash held elsewhere — a server receipt, or an exported head compared with a receipt " +
  "(annal-verify FILE --expect-head HASH).";

const HEAD_MAC_EXPLAIN =
  "The drill played an attacker holding a data key (obtained with openKeys() from the passphrase) but not the head-MAC key: " +
  "it decrypted, edited and re-encrypted records and left a chain that is consistent with itself, which a plain store's verify() " +
  "cannot see. The head MAC is keyed by a key derived from the master key that no data key reveals, so the rewritten head " +
  "fails it, reported at the head's own deviceSeq.";

function describeExpectation(expected) {
  return expected.detected
    ? `detected at #${expected.firstBadSeq} with ${expected.reason}`
    : "not detected by an unkeyed verify()";
}

/** The comparison of the last drill's expectation with an actual result. */
function drillComparison(result) {
  if (!lastDrill) return null;
  const { expected } = lastDrill;
  const matches = expected.detected
    ? !result.ok && result.firstBadSeq === expected.firstBadSeq && result.reason === expected.reason
    : result.ok;
  const children = [
    el("p", {}, el("strong", {}, "Last tamper drill: "), lastDrill.label),
    el(
      "dl",
      { class: "compare" },
      el("dt", {}, "expected"),
      el("dd", { "data-testid": "drill-expected" }, describeExpectation(expected)),
      el("dt", {}, "actual"),
      el("dd", { "data-testid": "drill-actual" }, result.ok ? `ok, ${result.checked} checked` : `detected at #${result.firstBadSeq} with ${result.reason}`),
    ),
    el(
      "p",
      { class: matches ? "match" : "mismatch", "data-testid": "drill-match", "data-match": String(matches) },
      matches ? "✓ The result matches the threat model." : "≠ The result differs from the threat model (was the log already altered before this drill, or has it changed since?).",
    ),
  ];
  if (expected.detected && expected.reason === "HEAD_MAC_MISMATCH") {
    children.push(el("p", { class: "explain", "data-testid": "drill-explain" }, HEAD_MAC_EXPLAIN));
  }
  if (!expected.detected) {
    children.push(el("p", { class: "explain", "data-testid": "drill-explain" }, UNDETECTABLE));
    const { headBefore, headAfter } = lastDrill;
    children.push(
      el(
        "p",
        { class: "muted" },
        `Head before the drill: #${headBefore.deviceSeq} `,
        hashCode(headBefore.hash),
        `; now: #${headAfter.deviceSeq} `,
        hashCode(headAfter.hash),
        ". A receipt for the earlier head would not match.",
      ),
    );
  }
  return el("div", { class: "drill" }, children);
}

function renderVerify(result, ms) {
  const box = $("verify-result");
  box.dataset.state = "done";
  box.dataset.ok = String(result.ok);
  box.dataset.checked = String(result.checked);
  if (result.ok) {
    delete box.dataset.firstBadSeq;
    delete box.dataset.reason;
    box.className = "verdict ok";
    fill(box,
      el("p", { class: "verdict-title" }, "✓ Chain intact"),
      el("p", {}, el("strong", { "data-testid": "verify-checked" }, String(result.checked)), ` event${result.checked === 1 ? "" : "s"} checked: every hash, payload digest and link matches (ok: true, ${ms} ms).`),
      drillComparison(result),
    );
  } else {
    box.dataset.firstBadSeq = String(result.firstBadSeq);
    box.dataset.reason = result.reason;
    box.className = "verdict bad";
    fill(box,
      el("p", { class: "verdict-title" }, "✗ Tampering detected at event ", el("span", { "data-testid": "verify-first-bad-seq" }, `#${result.firstBadSeq}`)),
      el("p", {}, el("span", { class: "badge bad reason", "data-testid": "verify-reason" }, result.reason), " ", REASONS[result.reason] ?? ""),
      el("p", { class: "verify-message", "data-testid": "verify-message" }, result.message ?? ""),
      el("p", { class: "muted" }, `ok: false · checked: ${result.checked} event${result.checked === 1 ? "" : "s"} before the break · firstBadSeq: ${result.firstBadSeq} · ${ms} ms`),
      drillComparison(result),
    );
  }
}

$("verify").addEventListener("click", () => {
  const box = $("verify-result");
  box.dataset.state = "running";
  box.className = "verdict";
  box.replaceChildren("Verifying…");
  const progress = $("verify-progress");
  const text = $("verify-progress-text");
  progress.value = 0;
  text.textContent = "";
  run($("verify"), $("verify-error"), "Verify", async () => {
    const started = performance.now();
    let result;
    try {
      result = await store.verify({
        onProgress: (checked, total) => {
          progress.max = Math.max(total, 1);
          progress.value = checked;
          text.textContent = `${checked} / ${total}`;
        },
      });
    } catch (error) {
      box.dataset.state = "error";
      box.replaceChildren("Verification could not run (see the error below).");
      throw error;
    }
    const ms = Math.round(performance.now() - started);
    if (result.ok) {
      progress.max = Math.max(result.checked, 1);
      progress.value = result.checked;
      text.textContent = `${result.checked} / ${result.checked}`;
    }
    renderVerify(result, ms);
    log(result.ok ? `Verified: ok, ${result.checked} checked.` : `Verify: broken at #${result.firstBadSeq} (${result.reason}).`, result.ok ? "ok" : "error");
  });
});

// ---------------------------------------------------------------- tamper --

// `keys`: on an encrypted store the drill edits a record's contents, so it
// needs the store's keys (openKeys); the others move sealed records whole.
const MUTATIONS = {
  flipPayloadByte: {
    label: "Flip a byte of a payload",
    input: "Record (deviceSeq)",
    describe: "Changes one byte in the stored payload of the event, as if a value had been edited in place.",
    keys: true,
  },
  changeField: {
    label: "Change a field of an event",
    input: "Record (deviceSeq)",
    describe: "Rewrites the event's eventType (appends “-edited”) without re-sealing it.",
    keys: true,
  },
  deleteEvent: {
    label: "Delete an event",
    input: "Record (deviceSeq)",
    describe: "Removes the event from the log, leaving a gap.",
  },
  swapEvents: {
    label: "Swap two events",
    input: "Record (deviceSeq)",
    describe: "Exchanges the stored positions of two events.",
  },
  insertForged: {
    label: "Insert a forged event",
    input: "Before record (deviceSeq)",
    describe: "Inserts a correctly hashed copy of the event that points to a made-up predecessor.",
    keys: true,
  },
  truncateTail: {
    label: "Cut events off the end",
    input: "Number of events",
    describe: "Deletes the newest events but leaves the recorded head alone.",
  },
  truncateTailFixHead: {
    label: "Cut events off the end and fix the head",
    input: "Number of events",
    describe: "Deletes the newest events and moves the recorded head back to match.",
    keys: true,
  },
  rehashSuffix: {
    label: "Rewrite an event and re-hash everything after it",
    input: "From record (deviceSeq)",
    describe: "Replaces the event's payload, then recomputes every hash from there on and the head.",
    keys: true,
  },
  flipCiphertextByte: {
    label: "Flip a byte of a ciphertext",
    input: "Record (deviceSeq)",
    describe: "Flips the last byte of the sealed record's ciphertext (its authentication tag), without any key.",
  },
  swapCiphertexts: {
    label: "Swap two ciphertexts",
    input: "Record (deviceSeq)",
    describe: "Exchanges the nonces and ciphertexts of two sealed records but keeps their clear headers, without any key.",
  },
  cutRecord: {
    label: "Cut a sealed record short",
    input: "Record (deviceSeq)",
    describe: "Cuts the page holding the record off in the middle of its ciphertext, without any key.",
  },
};

const WITH_KEYS =
  " On this encrypted store the drill first obtains the keys with openKeys() from the passphrase typed above, then decrypts, " +
  "edits and re-encrypts records with fresh nonces: an attacker holding a data key, but not the head-MAC key.";
const WITHOUT_KEYS =
  " On this encrypted store the drill holds no key: it moves, drops or damages sealed records as opaque bytes, guided by their clear headers.";

function readInt(id, what) {
  const raw = $(id).value.trim();
  const n = Number(raw);
  if (raw === "" || !Number.isInteger(n) || n < 1) {
    throw new RangeError(`${what} must be a whole number ≥ 1 (got "${raw}")`);
  }
  return n;
}

/** The mutation the form describes. */
function readMutation() {
  const kind = $("tamper-kind").value;
  const n = readInt("tamper-seq", MUTATIONS[kind].input);
  switch (kind) {
    case "swapEvents":
    case "swapCiphertexts":
      return { kind, a: n, b: readInt("tamper-seq-b", "The second record") };
    case "truncateTail":
    case "truncateTailFixHead":
      return { kind, count: n };
    case "rehashSuffix":
      return { kind, from: n };
    default:
      return { kind, seq: n };
  }
}

function mutationLabel(m) {
  const { label } = MUTATIONS[m.kind];
  if ("a" in m) return `${label}: #${m.a} ↔ #${m.b}`;
  if ("count" in m) return `${label}: ${m.count} event${m.count === 1 ? "" : "s"}`;
  if ("from" in m) return `${label}: from #${m.from}`;
  return `${label}: #${m.seq}`;
}

/** Updates the label, the description and the expected outcome as the form changes. */
function renderTamperPreview() {
  const kind = $("tamper-kind").value;
  const info = MUTATIONS[kind];
  $("tamper-seq-label").textContent = info.input;
  $("tamper-seq-b-wrap").hidden = kind !== "swapEvents" && kind !== "swapCiphertexts";
  const parts = [info.describe];
  const encrypted = store !== null && store.encrypted;
  if (encrypted) parts.push(info.keys ? WITH_KEYS : WITHOUT_KEYS);
  if (head) {
    try {
      const expected = expectation(readMutation(), head.deviceSeq, { encrypted });
      parts.push(` On this ${head.deviceSeq}-event log, verify() should report: ${describeExpectation(expected)}.`);
      if (!expected.detected) parts.push(` ${UNDETECTABLE}`);
      if (expected.detected && expected.reason === "HEAD_MAC_MISMATCH") {
        parts.push(" A plain store cannot see this edit; here the head MAC, whose key the attacker lacks, catches it.");
      }
    } catch {
      // An incomplete number: the preview waits for a valid one.
    }
  }
  $("tamper-description").textContent = parts.join("");
}

/**
 * The keys a drill that edits records on an encrypted store needs: from
 * annal/testing's independent reader, with the passphrase typed above.
 */
async function drillKeys() {
  const passphrase = $("passphrase").value;
  if (!passphrase) {
    throw new TypeError("this drill edits a record's contents, so it needs the store's keys: type the passphrase in the passphrase field above");
  }
  return openKeys(store.identity.name, { passphrase });
}

$("tamper-kind").addEventListener("change", renderTamperPreview);
$("tamper-seq").addEventListener("input", renderTamperPreview);
$("tamper-seq-b").addEventListener("input", renderTamperPreview);

$("tamper-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run($("tamper"), $("tamper-error"), "Tamper", async () => {
    $("tamper-result").replaceChildren();
    const mutation = readMutation();
    const encrypted = store.encrypted;
    const withKeys = encrypted && MUTATIONS[mutation.kind].keys === true;
    const headBefore = await store.head();
    const expected = expectation(mutation, headBefore.deviceSeq, { encrypted });
    await tamper(store.identity.name, mutation, withKeys ? { keys: await drillKeys() } : {});
    const headAfter = await store.head();
    const label = mutationLabel(mutation) + (!encrypted ? "" : withKeys ? " (with a data key)" : " (without any key)");
    lastDrill = { mutation, label, expected, headBefore, headAfter };
    const box = $("tamper-result");
    box.dataset.kind = mutation.kind;
    box.dataset.withKeys = String(withKeys);
    fill(box,
      el("p", {}, el("span", { class: "badge bad" }, "tampered"), " ", lastDrill.label),
      withKeys && el("p", { class: "muted" }, "The keys came from openKeys(name, { passphrase }) in annal/testing, which reads the store as docs/FORMAT.md §8.4 says; the drill used the data key, never the head-MAC key."),
      el("p", { "data-testid": "tamper-expectation" }, "Expected from verify(): ", el("strong", {}, describeExpectation(expected)), "."),
      el("p", { class: "muted" }, "Now press “Verify chain”."),
    );
    log(`Tampered: ${lastDrill.label} (expected: ${describeExpectation(expected)}).`, "warn");
    markVerifyStale("The stored data was altered since");
    await renderStatus();
    await refreshEvents();
  });
});

// ---------------------------------------------------------------- export --

$("export").addEventListener("click", () => {
  run($("export"), $("export-error"), "Export", async () => {
    $("export-result").replaceChildren();
    const blob = await store.exportAudit();
    const doc = JSON.parse(await blob.text());
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const filename = `annal-audit-${store.identity.name}-${stamp}.json`;
    if (exportUrl) URL.revokeObjectURL(exportUrl);
    exportUrl = URL.createObjectURL(blob);
    const link = el("a", { href: exportUrl, download: filename, "data-testid": "export-link" }, filename);
    const count = Array.isArray(doc.events) ? doc.events.length : "?";
    $("export-result").replaceChildren(
      el("p", {}, el("span", { class: "badge ok" }, "exported"), ` ${count} events, ${blob.size.toLocaleString()} bytes (${doc.format}), head #${doc.head?.device_seq} `, hashCode(doc.head?.hash)),
      el("p", {}, "Saved as ", link, ". Check it offline with ", el("code", {}, `annal-verify ${filename}`), "."),
    );
    link.click();
    log(`Exported the audit document (${count} events, ${blob.size} bytes).`);
  });
});

// ------------------------------------------------------------------ start --

window.addEventListener("unhandledrejection", (event) => {
  showError($("store-error"), event.reason, "An operation");
});

onActionDone(syncEnabled);
syncEnabled();
await renderStatus();
await renderCrypto();
renderEvents(null);
renderTamperPreview();
try {
  await sync.init();
} catch (error) {
  showError($("sync-error"), error, "Reading the network switch");
}
document.documentElement.dataset.ready = "true";
