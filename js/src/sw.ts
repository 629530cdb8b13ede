/**
 * `annal/sw`: sync from the app's service worker, with no page open.
 *
 * ```js
 * // sw.js, registered with { type: "module" }
 * import { registerAnnalSync } from "annal/sw";
 * registerAnnalSync({ name: "diary-u1", serverUrl: "https://sync.example.org", getToken: (refresh) => myTokens(refresh) });
 * ```
 *
 * This module loads in a service worker: no dynamic `import()`, no
 * top-level await, no `window`, no `localStorage`.
 */
import { AnnalLockedError, AnnalValidationError, guard, toAnnalError, type AnnalError } from "./errors.js";
import { loadKeyEncryptionKey } from "./kek_store.js";
import { EventStore } from "./store.js";
import { BACKGROUND_SYNC_TAG, isWorkerMessage } from "./sync/background.js";
import type { SyncOptions, SyncReport } from "./types.js";

export { BACKGROUND_SYNC_TAG } from "./sync/background.js";
export { storeKeyEncryptionKey, loadKeyEncryptionKey, forgetKeyEncryptionKey } from "./kek_store.js";

/** What {@link annalSync} needs to sync one store. */
export interface AnnalSyncOptions {
  /** The store's name, as the page opened it. */
  name: string;
  serverUrl: string;
  /**
   * A bearer token for the store's user, obtained in the worker (e.g. from
   * a refresh credential the app keeps in IndexedDB). `refresh` is `true`
   * when the last one was refused: return a fresh one, never the same.
   */
  getToken: (refresh: boolean) => Promise<string> | string;
  scope?: SyncOptions["scope"];
  timeoutMs?: number;
  /**
   * For an encrypted store: its key-encryption key, or a function that
   * finds it. By default the key kept with `storeKeyEncryptionKey(name,
   * key)` is used; failing that, the session key a page handed over with
   * `store.requestBackgroundSync()`.
   */
  keyEncryptionKey?: CryptoKey | (() => Promise<CryptoKey | undefined> | CryptoKey | undefined);
  /**
   * Told how each background pass of {@link registerAnnalSync} ended, e.g.
   * to show a notification or to log `ANNAL_LOCKED` where no page is open
   * to hear it. A throw or rejection here is ignored.
   */
  onResult?: (result: AnnalSyncResult) => unknown;
}

/** How one background pass ended: a report, or the error that stopped it. */
export type AnnalSyncResult = { report: SyncReport; error?: undefined } | { report?: undefined; error: AnnalError };

interface ExtendableEventLike extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface SyncEventLike extends ExtendableEventLike {
  readonly tag: string;
}
interface MessageEventLike extends ExtendableEventLike {
  readonly data: unknown;
  readonly ports?: readonly MessagePort[];
}

/** Session keys handed over by pages, in this worker's memory only. */
const sessions = new Map<string, { key: CryptoKey; channel: BroadcastChannel | undefined }>();

function forgetSession(name: string): void {
  const s = sessions.get(name);
  s?.channel?.close();
  sessions.delete(name);
}

/** Keeps a page's session key until a lock anywhere (or the worker stopping). */
function keepSession(name: string, key: CryptoKey): void {
  forgetSession(name);
  let channel: BroadcastChannel | undefined;
  if (typeof BroadcastChannel !== "undefined") {
    // The store's key channel (docs/FORMAT.md §8.4): a lock in any context drops the session.
    channel = new BroadcastChannel(`annal:${name}`);
    channel.onmessage = (e: MessageEvent) => {
      if ((e.data as { type?: unknown } | null)?.type === "lock") forgetSession(name);
    };
  }
  sessions.set(name, { key, channel });
}

function check(options: AnnalSyncOptions): void {
  const o = options as unknown as Record<string, unknown> | null;
  if (!o || typeof o !== "object") {
    throw new AnnalValidationError("ANNAL_VALIDATION", "annalSync() takes { name, serverUrl, getToken }", { field: "options" });
  }
  if (typeof o.name !== "string" || o.name.length === 0) {
    throw new AnnalValidationError("ANNAL_VALIDATION", "name must be the store's name, as the page opened it", { field: "name" });
  }
  if (typeof o.getToken !== "function") {
    throw new AnnalValidationError("ANNAL_VALIDATION", "getToken must be a function (refresh: boolean) => Promise<string>", { field: "getToken" });
  }
  if (o.onResult !== undefined && typeof o.onResult !== "function") {
    throw new AnnalValidationError("ANNAL_VALIDATION", "onResult must be a function ({ report } | { error }) => void", { field: "onResult" });
  }
}

async function credentialFor(options: AnnalSyncOptions): Promise<{ keyEncryptionKey: CryptoKey } | { sessionKey: CryptoKey } | Record<string, never>> {
  const given = typeof options.keyEncryptionKey === "function" ? await options.keyEncryptionKey() : options.keyEncryptionKey;
  const kek = given ?? (await loadKeyEncryptionKey(options.name));
  if (kek) return { keyEncryptionKey: kek };
  const session = sessions.get(options.name);
  if (session) return { sessionKey: session.key };
  return {};
}

/**
 * One sync pass of store `options.name` from a service worker: opens the
 * store (unlocking an encrypted one with its kept key or a page's session
 * key), pushes the outbox and pulls, then closes it. When a page holds the
 * sync lock, the pass runs in that page instead. Rejecting tells the
 * browser to retry the `sync` event later.
 *
 * @throws `ANNAL_LOCKED` for an encrypted store with no unlock available
 *   here: no kept key-encryption key and no page session. The events wait
 *   in the outbox; they go when a page unlocks the store.
 * @throws `ANNAL_VALIDATION` with `field: "name"` when no page has created
 *   the store yet (nothing is created here).
 * @throws as `store.sync()` otherwise (`ANNAL_OFFLINE`, ...).
 */
export async function annalSync(options: AnnalSyncOptions): Promise<SyncReport> {
  return guard(async () => {
    check(options);
    const credential = await credentialFor(options);
    let store: EventStore;
    try {
      store = await EventStore.open({ name: options.name, ...credential } as Parameters<typeof EventStore.open>[0]);
    } catch (thrown) {
      const error = toAnnalError(thrown);
      if (error.code === "ANNAL_VALIDATION" && error.field === "userId") {
        throw new AnnalValidationError(
          "ANNAL_VALIDATION",
          `store ${JSON.stringify(options.name)} does not exist in this origin yet: there is nothing to sync until a page creates it`,
          { field: "name" },
        );
      }
      if (error.code === "ANNAL_BAD_KEY" && "sessionKey" in credential) forgetSession(options.name);
      if (error.code === "ANNAL_LOCKED" || (error.code === "ANNAL_BAD_KEY" && "sessionKey" in credential)) {
        throw new AnnalLockedError(
          "ANNAL_LOCKED",
          `store ${JSON.stringify(options.name)} is encrypted and the service worker has no unlock for it: keep its key with ` +
            "storeKeyEncryptionKey(), or unlock it in a page and call store.requestBackgroundSync(). Its events wait in the outbox.",
        );
      }
      throw error;
    }
    try {
      const sync: SyncOptions = { serverUrl: options.serverUrl, getToken: options.getToken, auto: false };
      if (options.scope !== undefined) sync.scope = options.scope;
      if (options.timeoutMs !== undefined) sync.timeoutMs = options.timeoutMs;
      store.configureSync(sync);
      return await store.sync();
    } finally {
      store.close();
    }
  });
}

/**
 * A pass of {@link registerAnnalSync}: {@link annalSync}, told to
 * `onResult`. A store no page has created yet has nothing to sync: that is
 * no failure, and `onResult` is not called.
 */
async function backgroundPass(options: AnnalSyncOptions): Promise<SyncReport | undefined> {
  let result: AnnalSyncResult;
  try {
    result = { report: await annalSync(options) };
  } catch (thrown) {
    const error = toAnnalError(thrown);
    if (error.code === "ANNAL_VALIDATION" && error.field === "name") return undefined;
    result = { error };
  }
  try {
    await options.onResult?.(result);
  } catch {
    // The app's listener failing must not change what the browser is told.
  }
  if (result.error) throw result.error;
  return result.report;
}

/**
 * Handles a page's message to the worker (from `store.requestBackgroundSync()`):
 * keeps a session key, or syncs now. Returns whether it was annal's.
 */
export function handleAnnalMessage(event: MessageEventLike, stores: AnnalSyncOptions[]): boolean {
  const data = event.data;
  if (!isWorkerMessage(data)) return false;
  if (data.annal === "session") {
    if (data.key instanceof CryptoKey) keepSession(data.name, data.key);
    // The page waits for this before it registers the sync event.
    event.ports?.[0]?.postMessage({ kept: data.key instanceof CryptoKey });
    return true;
  }
  const options = stores.find((s) => s.name === data.name);
  if (options) event.waitUntil(backgroundPass(options).catch(() => undefined));
  return true;
}

/**
 * Installs annal's service-worker listeners for `stores`: `sync` and
 * `periodicsync` with tag `annal-sync`, and page messages. As a fallback
 * for browsers without Background Sync, it also syncs each time the worker
 * starts. Call it once, at the top level of the worker script (browsers
 * take listeners only during the first evaluation).
 */
export function registerAnnalSync(stores: AnnalSyncOptions | AnnalSyncOptions[]): void {
  const list = Array.isArray(stores) ? stores : [stores];
  list.forEach(check);
  const scope = globalThis as unknown as EventTarget;
  const all = async () => {
    const results = await Promise.allSettled(list.map((s) => backgroundPass(s)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    // A rejection makes the browser retry the sync event later.
    if (failed) throw failed.reason;
  };
  const onSync = (e: Event) => {
    const event = e as SyncEventLike;
    if (event.tag === BACKGROUND_SYNC_TAG) event.waitUntil(all());
  };
  scope.addEventListener("sync", onSync);
  scope.addEventListener("periodicsync", onSync);
  scope.addEventListener("message", (e) => void handleAnnalMessage(e as MessageEventLike, list));
  // Browsers without Background Sync (Firefox, Safari): sync when the worker starts.
  const hasBackgroundSync = typeof (globalThis as { SyncManager?: unknown }).SyncManager !== "undefined";
  if (!hasBackgroundSync) void all().catch(() => undefined);
}
