// What every card of the demo page shares: building elements, the activity
// log, and how errors are shown (always with their code) while a button's
// action runs.

import { AnnalError } from "/annal/dist/index.js";

export const $ = (id) => document.getElementById(id);

/** Creates an element with attributes and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, String(value));
    else if (key in node) node[key] = value;
    else node.setAttribute(key, String(value));
  }
  node.append(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return node;
}

/** Replaces a node's children, leaving out null, undefined and false. */
export function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== undefined && c !== null && c !== false));
}

export const short = (hash) => (typeof hash === "string" ? `${hash.slice(0, 8)}…` : "—");

export function hashCode(hash) {
  return el("code", { class: "hash", title: hash }, short(hash));
}

export function value(id) {
  return $(id).value.trim();
}

/** Adds a line to the activity log. */
export function log(text, kind = "info") {
  const time = new Date().toLocaleTimeString();
  const list = $("log");
  list.prepend(el("li", { class: `log-${kind}` }, el("time", {}, time), " ", text));
  while (list.children.length > 100) list.lastElementChild.remove();
}

/** The code shown for an error: annal's stable code, or the JS error name. */
export function codeOf(error) {
  if (error instanceof AnnalError) return error.code;
  if (error && typeof error.code === "string") return error.code;
  return error?.name ?? "Error";
}

/** What to do about the errors a user of the demo meets first. */
const HINTS = {
  ANNAL_LOCKED: "The store is encrypted and locked: type its passphrase in the passphrase field above, then open the store again (or press Unlock if it is open).",
  ANNAL_BAD_KEY: "The passphrase does not unlock this store. Nothing was read or changed: check it and try again. A wrong key is never a sign of tampering.",
  ANNAL_OFFLINE: "The sync server could not be reached (is the demo offline?). Nothing is lost: the events wait in the outbox, and sync tries again by itself at the next attempt time.",
  ANNAL_UNAUTHORIZED: "The server refused the token, even a fresh one, or no token could be had. A real app would sign the user in again; here, check that the demo server is running with annal-server (make demo).",
  ANNAL_LEDGER_FORK: "The server's history no longer matches what this store verified, so sync stopped; every local event is kept. In this demo it usually means the server's database (target/demo/) was deleted while this browser kept the store: destroy the store, with its events, to start over.",
  ANNAL_SCHEMA_INCOMPATIBLE: "The server speaks no sync protocol version of this annal; nothing was pushed. Rebuild both (make demo).",
};

/** Shows `error` in `box` with its code, message and details. Never swallowed. */
export function showError(box, error, action) {
  const code = codeOf(error);
  const message = error?.message ?? String(error);
  const hint = error instanceof AnnalError ? HINTS[code] : undefined;
  const details = [];
  if (error?.field !== undefined) details.push(el("li", {}, "field: ", el("code", {}, error.field)));
  if (error?.deviceSeq !== undefined) details.push(el("li", {}, "deviceSeq: ", el("code", {}, String(error.deviceSeq))));
  if (error?.eventId !== undefined) details.push(el("li", {}, "eventId: ", el("code", {}, error.eventId)));
  if (!(error instanceof AnnalError)) {
    details.push(el("li", { class: "muted" }, "Not an AnnalError: raised by the demo page, its server or the tamper drill."));
  }
  fill(box,
    el("p", { class: "error-title" }, el("span", { class: "badge", "data-testid": "error-code" }, code), " ", `${action} failed`),
    el("p", { class: "error-message", "data-testid": "error-message" }, message),
    hint && el("p", { class: "error-hint", "data-testid": "error-hint" }, hint),
    ...(details.length ? [el("ul", { class: "error-details" }, details)] : []),
  );
  box.dataset.code = code;
  box.hidden = false;
  log(`${action} failed — ${code}: ${message}`, "error");
}

export function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.code;
}

/** Re-derives which controls apply; an action may have opened or closed the store. */
let afterAction = () => {};

/** Sets what runs after every action of {@link run}. */
export function onActionDone(f) {
  afterAction = f;
}

/**
 * Runs an action for a button: disables it meanwhile, and shows any error
 * in `errorBox` (cleared first).
 */
export async function run(button, errorBox, action, op) {
  clearError(errorBox);
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await op();
  } catch (error) {
    showError(errorBox, error, action);
  } finally {
    button.disabled = was;
    button.removeAttribute("aria-busy");
    afterAction();
  }
}
