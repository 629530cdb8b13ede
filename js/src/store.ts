import { Store } from "../wasm/annal.js";
import { guard, guardSync } from "./errors.js";
import { initAnnal } from "./init.js";
import type {
  Aggregate,
  AppendEvent,
  Conflict,
  Credential,
  EventFilter,
  Head,
  KeyInfo,
  OpenOptions,
  ReencryptOptions,
  ReencryptResult,
  RotateResult,
  Rejected,
  StoreIdentity,
  StoredEvent,
  SyncOptions,
  SyncReport,
  SyncStatus,
  VerifyOptions,
  VerifyResult,
} from "./types.js";

/** Dates become Unix milliseconds; the rest is passed through and checked in Rust. */
function rawFilter(filter: EventFilter | undefined): unknown {
  if (filter === undefined || filter === null) return undefined;
  const raw: Record<string, unknown> = { ...filter };
  for (const key of ["since", "until"] as const) {
    const value = filter[key];
    if (value instanceof Date) raw[key] = value.getTime();
  }
  return raw;
}

/**
 * Fired at an {@link EventStore} as `"lockchange"` when the store locks or
 * unlocks in this context, including a lock made in another tab or worker.
 * A plain `Event` subclass, so it works in pages, workers and service
 * workers alike; `detail` mirrors `CustomEvent` for code that expects one.
 */
export class LockChangeEvent extends Event {
  /** Whether the store is now locked. */
  readonly locked: boolean;
  /** `{ locked }`, as a `CustomEvent` would carry it. */
  readonly detail: { readonly locked: boolean };

  constructor(locked: boolean) {
    super("lockchange");
    this.locked = locked;
    this.detail = { locked };
  }
}

/** The events an {@link EventStore} fires. */
export interface EventStoreEventMap {
  lockchange: LockChangeEvent;
}

// Typed listeners for the events above; other types fall through to EventTarget.
export interface EventStore {
  addEventListener<K extends keyof EventStoreEventMap>(
    type: K,
    listener: (this: EventStore, event: EventStoreEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof EventStoreEventMap>(
    type: K,
    listener: (this: EventStore, event: EventStoreEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/**
 * An append-only, hash-chained event log in IndexedDB. Works in pages,
 * dedicated workers and service workers.
 *
 * ```ts
 * const store = await EventStore.open({ name: `diary-${userId}`, userId });
 * await store.append({ aggregateType: "diary", aggregateId: "d-1", eventType: "symptom-recorded", payload: { severity: 3 } });
 * ```
 *
 * Every method rejects (or throws) only with an `AnnalError` subclass. On
 * any store, data methods reject with `ANNAL_CLOSED` after `close()`, and
 * with `ANNAL_STORAGE` or `ANNAL_QUOTA_EXCEEDED` when IndexedDB fails. On
 * an encrypted store they reject with `ANNAL_LOCKED` while it is locked:
 * call {@link EventStore.unlock} and retry.
 *
 * An encrypted store fires a {@link LockChangeEvent} (`"lockchange"`) when
 * it locks or unlocks in this context.
 */
export class EventStore extends EventTarget {
  readonly #raw: Store;

  private constructor(raw: Store) {
    super();
    this.#raw = raw;
    guardSync(() => raw.onLockChange((locked: boolean) => void this.dispatchEvent(new LockChangeEvent(locked))));
  }

  /**
   * Opens the store, creating it (with a new device id) the first time. A
   * new store opened with a `passphrase` or `keyEncryptionKey` is encrypted
   * (docs/FORMAT.md §8.4); an existing encrypted store needs one of its
   * credentials (`passphrase`, `keyEncryptionKey` or `recoverySecret`).
   *
   * @throws `ANNAL_VALIDATION` for invalid options, for a store of another
   *   user or tenant, for a passphrase shorter than 8 characters when
   *   creating the store, for a credential given to a plain store, and for
   *   a recovery secret with a typo (its checksum fails): fix the input.
   * @throws `ANNAL_LOCKED` when the store is encrypted and no credential was
   *   given: ask the user and open again with one.
   * @throws `ANNAL_BAD_KEY` when the credential does not unlock the store:
   *   ask again. Nothing was read or changed.
   * @throws `ANNAL_TAMPERED` when the store's key ring fails its MAC.
   * @throws `ANNAL_SCHEMA` for a database from a newer annal, and
   *   `ANNAL_STORAGE` when IndexedDB is unavailable.
   */
  static async open(options: OpenOptions): Promise<EventStore> {
    return guard(async () => {
      await initAnnal();
      return new EventStore(await Store.open(options));
    });
  }

  /**
   * Deletes a store and all its events. Open connections are closed first.
   *
   * @throws `ANNAL_STORAGE` when IndexedDB fails.
   */
  static async destroy(name: string): Promise<void> {
    return guard(async () => {
      await initAnnal();
      await Store.destroy(name);
    });
  }

  /** Who this store belongs to. */
  get identity(): StoreIdentity {
    return guardSync(() => this.#raw.identity as StoreIdentity);
  }

  /** Whether the store encrypts its records at rest (fixed when it was created). */
  get encrypted(): boolean {
    return guardSync(() => this.#raw.encrypted);
  }

  /**
   * Whether an encrypted store is locked in this context, by `lock()` here
   * or in another tab or worker (and after `close()`, which also erases the
   * keys). Always `false` for a plain store.
   */
  get locked(): boolean {
    return guardSync(() => this.#raw.locked);
  }

  /**
   * Appends one event. Resolves once it is durable, with the stored event.
   *
   * @throws `ANNAL_VALIDATION` (fix the input) or `ANNAL_VERSION_CONFLICT`
   *   (reload the aggregate and decide again); nothing was written.
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  append(event: AppendEvent): Promise<StoredEvent> {
    return guard(() => this.#raw.append(event));
  }

  /**
   * Appends events atomically: all are written, or none.
   *
   * @throws as {@link EventStore.append}.
   */
  appendBatch(events: AppendEvent[]): Promise<StoredEvent[]> {
    return guard(() => this.#raw.appendBatch(events));
  }

  /**
   * Every event matching `filter`, oldest first unless `reverse`.
   *
   * @throws `ANNAL_TAMPERED` (with `deviceSeq`) when an event fails its
   *   integrity check: run `verify()`, restore from a backup or the server.
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  events(filter?: EventFilter): Promise<StoredEvent[]> {
    return guard(() => this.#raw.events(rawFilter(filter)));
  }

  /**
   * The events matching `filter`, read in pages, so a log of any size never
   * sits in memory at once: `for await (const e of store.iterate()) ...`.
   *
   * @throws as {@link EventStore.events}, from the page being read.
   */
  async *iterate(filter?: EventFilter): AsyncGenerator<StoredEvent, void, undefined> {
    const cursor = guardSync(() => this.#raw.iterate(rawFilter(filter)));
    try {
      for (;;) {
        const page: StoredEvent[] | null = await guard(() => cursor.next());
        if (page === null) return;
        yield* page;
      }
    } finally {
      cursor.free();
    }
  }

  /**
   * An aggregate's current version and all its events.
   *
   * @throws as {@link EventStore.events}.
   */
  aggregate(aggregateId: string): Promise<Aggregate> {
    return guard(() => this.#raw.aggregate(aggregateId));
  }

  /**
   * The last event's `deviceSeq` and `hash` (0 and 64 zeros when empty).
   *
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  head(): Promise<Head> {
    return guard(() => this.#raw.head());
  }

  /**
   * Recomputes every hash and link, and on an encrypted store decrypts
   * every record and checks the head MAC. Never throws for tampering:
   * reports it (`DECRYPT_FAILED`, `HEAD_MAC_MISMATCH` and the reasons of
   * docs/FORMAT.md §6).
   *
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    return guard(() => this.#raw.verify(options.onProgress));
  }

  /**
   * A self-contained audit document (JSON) of the whole log: the store's
   * identity, every event with its salt and payload, and the head. Check it
   * offline with `annal-verify FILE`. An export is plaintext, also from an
   * encrypted store: treat the file as the data it holds.
   *
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  exportAudit(): Promise<Blob> {
    return guard(() => this.#raw.exportAudit());
  }

  /**
   * Locks an encrypted store: its keys are erased from memory here, and
   * every other tab and worker that has the store open locks too. Data
   * methods then reject with `ANNAL_LOCKED` until {@link EventStore.unlock}.
   * Use it on logout or after inactivity. Does nothing on a locked or
   * closed store.
   *
   * @throws `ANNAL_VALIDATION` on a plain store, which has nothing to lock.
   */
  lock(): void {
    guardSync(() => this.#raw.lock());
  }

  /**
   * Unlocks a locked encrypted store in this context only: keys never
   * travel between tabs and workers, so each one unlocks with its own
   * credential. A passphrase can be given as a string.
   *
   * @throws `ANNAL_BAD_KEY` when the credential does not unlock the store:
   *   ask again. The store stays locked.
   * @throws `ANNAL_VALIDATION` for a malformed credential or a recovery
   *   secret with a typo, and on a plain store.
   * @throws `ANNAL_CLOSED` after `close()`: open the store again instead.
   */
  unlock(credential: Credential): Promise<void> {
    return guard(() => this.#raw.unlock(credential));
  }

  /**
   * Replaces the passphrase. `current` proves the right to do so: the old
   * passphrase, or `{ keyEncryptionKey }` or `{ recoverySecret }` (so a
   * user who lost the passphrase can set a new one after recovery). The
   * master key is rewrapped; no event is re-encrypted. Other tabs keep
   * working; the old passphrase no longer opens the store.
   *
   * @throws `ANNAL_BAD_KEY` when `current` does not unlock the store.
   * @throws `ANNAL_VALIDATION` when the new passphrase is shorter than 8
   *   characters, and on a plain store.
   * @throws `ANNAL_LOCKED` while the store is locked: unlock first.
   */
  changePassphrase(current: Credential, newPassphrase: string): Promise<void> {
    return guard(() => this.#raw.changePassphrase(current, newPassphrase));
  }

  /**
   * Starts a new data key: events appended from now on, here and in every
   * other tab or worker, are encrypted under it. Older events stay under
   * their keys until {@link EventStore.reencryptAll}. annal also rotates by
   * itself before a key reaches `maxRecordsPerKey`.
   *
   * @throws `ANNAL_VALIDATION` on a plain store.
   * @throws `ANNAL_LOCKED` while the store is locked: unlock first.
   */
  rotateDataKey(): Promise<RotateResult> {
    return guard(() => this.#raw.rotateDataKey());
  }

  /**
   * Re-encrypts every older record under the current data key, one page
   * per transaction, then retires the older keys. Hashes never change.
   * Resumable: if the page closes, the store is closed or locked, or the
   * browser dies mid-way, call it again after reopening and it continues
   * where it stopped ({@link KeyInfo.reencryption}).
   *
   * @throws `ANNAL_TAMPERED` when a record fails its integrity check; it is
   *   left as it was. Run `verify()`.
   * @throws `ANNAL_CLOSED` or `ANNAL_LOCKED` when the store was closed or
   *   locked during the run: reopen or unlock, and call it again.
   * @throws `ANNAL_VALIDATION` on a plain store.
   */
  reencryptAll(options: ReencryptOptions = {}): Promise<ReencryptResult> {
    return guard(() => this.#raw.reencryptAll(options.onProgress));
  }

  /**
   * Creates a recovery secret, 55 letters and digits in groups of five, that
   * unlocks the store when the passphrase is lost (`{ recoverySecret }`).
   * Show it to the user once, to write down or print; annal keeps only a
   * key wrapped by it. Calling it again replaces the earlier secret, which
   * then stops working.
   *
   * @throws `ANNAL_VALIDATION` on a plain store.
   * @throws `ANNAL_LOCKED` while the store is locked: unlock first.
   */
  exportRecoveryKey(): Promise<string> {
    return guard(() => this.#raw.exportRecoveryKey());
  }

  /**
   * The key ring: the current data key, every key with the records it
   * encrypted and whether it is retired, and any unfinished re-encryption.
   * Holds no key material.
   *
   * @throws `ANNAL_VALIDATION` on a plain store.
   * @throws `ANNAL_LOCKED` while the store is locked: unlock first.
   */
  keyInfo(): Promise<KeyInfo> {
    return guard(() => this.#raw.keyInfo());
  }

  /**
   * Connects this store to an annal-server. Call it once after `open()`;
   * nothing is sent until {@link EventStore.sync}. Calling it again replaces
   * the settings.
   *
   * ```ts
   * store.configureSync({ serverUrl: "https://sync.example.org", getToken: (refresh) => myAuth.token({ refresh }) });
   * ```
   *
   * @throws `ANNAL_VALIDATION` (with `field`) for missing or malformed
   *   options: a `serverUrl` that is not an `http://` or `https://` URL, a
   *   `getToken` that is not a function, a `scope` other than `"own"` or
   *   `"tenant"`. Fix the input; the earlier settings stay.
   * @throws `ANNAL_CLOSED` after `close()`.
   */
  configureSync(options: SyncOptions): void {
    guardSync(() => this.#raw.configureSync(options));
  }

  /**
   * One sync pass, now: pushes the outbox (this device's events above the
   * acknowledged watermark) in device order until it is empty, then pulls
   * and verifies the server ledger from the last checkpoint. Events of
   * other devices land in {@link EventStore.remoteEvents}; events the
   * server quarantined or flagged, in {@link EventStore.rejected} and
   * {@link EventStore.conflicts}. No event is lost or duplicated by a
   * failed or repeated pass. A second `sync()` in this context waits for
   * the running one, then runs.
   *
   * @throws `ANNAL_OFFLINE` when the server cannot be reached, times out or
   *   answers 5xx or 429: the events wait in the outbox; call `sync()`
   *   again later ({@link SyncStatus.nextAttemptAt} says when).
   * @throws `ANNAL_UNAUTHORIZED` when the server refused even the fresh
   *   token from `getToken(true)`, or `getToken` threw or rejected: sign
   *   the user in again. The events wait.
   * @throws `ANNAL_LEDGER_FORK` when the server's history no longer matches
   *   what this device verified: sync stops, every local event is kept;
   *   report it to the server's operator.
   * @throws `ANNAL_SCHEMA_INCOMPATIBLE` when the server speaks no sync
   *   protocol version this annal speaks; nothing was pushed. Upgrade the
   *   app or the server.
   * @throws `ANNAL_VALIDATION` when {@link EventStore.configureSync} was not
   *   called first, or `getToken` returned something other than a
   *   non-empty string.
   * @throws `ANNAL_STORAGE` when the server refused a request (a 4xx other
   *   than 401) or answered something that is not annal's protocol: check
   *   that `serverUrl` points at an annal-server. Also when IndexedDB fails.
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  sync(): Promise<SyncReport> {
    return guard(() => this.#raw.sync());
  }

  /**
   * Where sync stands: idle, offline (with the next attempt time) or in
   * error, how many events wait in the outbox, the watermark, and the last
   * verified ledger checkpoint. Show `pending` to the user so they can see
   * what has not reached the server yet.
   *
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  syncStatus(): Promise<SyncStatus> {
    return guard(() => this.#raw.syncStatus());
  }

  /**
   * This device's events that the server quarantined, with its reason
   * (`code`, `message`) and receipt, oldest first. They stay in the local
   * log and in the server's ledger, set aside; annal never drops them.
   * Show them to someone who can act (often: upgrade the app or the
   * server's schema limits).
   *
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  rejected(): Promise<Rejected[]> {
    return guard(() => this.#raw.rejected());
  }

  /**
   * This device's events that the server took as conflicts (another event
   * of the same aggregate has the same `aggregateVersion`), with the ids
   * they conflict with and their receipts, oldest first. Both events are
   * kept; resolving them is the app's decision, usually by appending a
   * new event.
   *
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  conflicts(): Promise<Conflict[]> {
    return guard(() => this.#raw.conflicts());
  }

  /**
   * The verified events of other devices pulled from the server ledger
   * (the user's other devices, or with scope `"tenant"` every device of the
   * tenant), in ledger order, in the same shape as {@link EventStore.events}.
   *
   * @throws `ANNAL_TAMPERED` when a stored pulled event fails its integrity
   *   check.
   * @throws `ANNAL_LOCKED` while an encrypted store is locked: unlock, retry.
   */
  remoteEvents(): Promise<StoredEvent[]> {
    return guard(() => this.#raw.remoteEvents());
  }

  /**
   * Closes the store. Later calls fail with `ANNAL_CLOSED`. An encrypted
   * store's keys are erased from memory.
   */
  close(): void {
    guardSync(() => this.#raw.close());
  }
}
