import { Store } from "../wasm/annal.js";
import { AnnalError, AnnalValidationError, guard, guardSync } from "./errors.js";
import { initAnnal } from "./init.js";
import { StoreChannel, type ChannelMessage } from "./sync/channel.js";
import { systemClock } from "./sync/clock.js";
import { SyncController } from "./sync/controller.js";
import { LiveStream } from "./sync/live.js";
import { BACKGROUND_SYNC_TAG, postAndConfirm, postToServiceWorker } from "./sync/background.js";
import type {
  BackgroundSyncMode,
  Clock,
  EventBatchInfo,
  EventSubscriptionFilter,
  LiveSubscription,
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

/**
 * Fired as `"syncstatus"` whenever {@link EventStore.syncStatus} changes in
 * this context: a pass starts or ends (here or in another context), events
 * are appended or pulled, the store locks or unlocks, or leadership moves.
 */
export class SyncStatusEvent extends Event {
  readonly status: SyncStatus;
  readonly detail: SyncStatus;
  constructor(status: SyncStatus) {
    super("syncstatus");
    this.status = status;
    this.detail = status;
  }
}

/** Fired as `"syncprogress"` after each page of a pull is verified and stored. */
export class SyncProgressEvent extends Event {
  /** Ledger entries verified so far in this pass. */
  readonly verified: number;
  /** The checkpoint's `seq` now. */
  readonly seq: number;
  /** Whether more pages follow. */
  readonly more: boolean;
  constructor(verified: number, seq: number, more: boolean) {
    super("syncprogress");
    this.verified = verified;
    this.seq = seq;
    this.more = more;
  }
}

/**
 * Fired as `"syncerror"` when an automatic pass fails (a direct `sync()`
 * rejects instead). `ANNAL_LEDGER_FORK`, `ANNAL_UNAUTHORIZED` and
 * `ANNAL_SCHEMA_INCOMPATIBLE` stop automatic sync until `sync()` is called.
 */
export class SyncErrorEvent extends Event {
  readonly error: AnnalError;
  constructor(error: AnnalError) {
    super("syncerror");
    this.error = error;
  }
}

/** Fired as `"rejected"` or `"conflict"` when a pass stored new quarantined or conflicting events. */
export class SyncOutcomeEvent extends Event {
  /** The new entries, oldest first. */
  readonly items: Rejected[] | Conflict[];
  constructor(type: "rejected" | "conflict", items: Rejected[] | Conflict[]) {
    super(type);
    this.items = items;
  }
}

/** The events an {@link EventStore} fires. */
export interface EventStoreEventMap {
  lockchange: LockChangeEvent;
  syncstatus: SyncStatusEvent;
  syncprogress: SyncProgressEvent;
  syncerror: SyncErrorEvent;
  rejected: SyncOutcomeEvent;
  conflict: SyncOutcomeEvent;
}

type Subscriber = { filter: EventSubscriptionFilter; callback: (events: StoredEvent[], info: EventBatchInfo) => void };

function matches(filter: EventSubscriptionFilter, e: StoredEvent): boolean {
  return (
    (filter.aggregateId === undefined || filter.aggregateId === e.aggregateId) &&
    (filter.aggregateType === undefined || filter.aggregateType === e.aggregateType) &&
    (filter.eventType === undefined || filter.eventType === e.eventType)
  );
}

function checkFilter(filter: unknown, what: string): EventSubscriptionFilter {
  if (filter === undefined || filter === null) return {};
  if (typeof filter !== "object" || Array.isArray(filter)) {
    throw new AnnalValidationError("ANNAL_VALIDATION", `${what} takes a filter object { aggregateId?, aggregateType?, eventType? }`, { field: "filter" });
  }
  const f = filter as Record<string, unknown>;
  for (const [key, value] of Object.entries(f)) {
    if (key === "source") {
      if (value !== undefined && value !== "local" && value !== "remote") {
        throw new AnnalValidationError("ANNAL_VALIDATION", `source must be "local" or "remote"`, { field: "source" });
      }
    } else if (key === "aggregateId" || key === "aggregateType" || key === "eventType") {
      if (value !== undefined && typeof value !== "string") {
        throw new AnnalValidationError("ANNAL_VALIDATION", `${key} must be a string`, { field: key });
      }
    } else {
      throw new AnnalValidationError("ANNAL_VALIDATION", `unknown filter field ${key}; ${what} filters by aggregateId, aggregateType, eventType and source`, { field: key });
    }
  }
  return f as EventSubscriptionFilter;
}

function checkCallback(callback: unknown, what: string): void {
  if (typeof callback !== "function") {
    throw new AnnalValidationError("ANNAL_VALIDATION", `${what} needs a callback function as its second argument`, { field: "callback" });
  }
}

/** A whole number in `[min, max]`, or the default. */
function checkMs(options: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new AnnalValidationError("ANNAL_VALIDATION", `${key} must be a whole number of milliseconds from ${min} to ${max}`, { field: key });
  }
  return value;
}

/** The options `configureSync()` takes. */
const SYNC_OPTIONS = ["serverUrl", "getToken", "scope", "auto", "intervalMs", "debounceMs", "timeoutMs", "clock", "fetch"];

function checkClock(value: unknown): Clock {
  if (value === undefined) return systemClock;
  const c = value as Partial<Clock> | null;
  if (!c || typeof c.now !== "function" || typeof c.setTimeout !== "function" || typeof c.clearTimeout !== "function") {
    throw new AnnalValidationError("ANNAL_VALIDATION", "clock must have now(), setTimeout(callback, ms) and clearTimeout(handle), like FakeClock from annal/testing", {
      field: "clock",
    });
  }
  return c as Clock;
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
  readonly #name: string;
  readonly #channel: StoreChannel;
  readonly #subscribers = new Set<Subscriber>();
  readonly #lives = new Set<LiveStream>();
  #sync: SyncController | undefined;
  #syncOptions: SyncOptions | undefined;
  #clock: Clock = systemClock;
  #statusTimer: ReturnType<typeof setTimeout> | undefined;
  /** Appended seqs not yet announced to other contexts (see #announce). */
  #unannounced: { from: number; to: number } | undefined;
  #announceTimer: ReturnType<typeof setTimeout> | undefined;
  #lastStatus = "";
  /** Listeners of "syncstatus": without one, status is not computed at all. */
  readonly #statusListeners = new Set<unknown>();
  #closed = false;

  private constructor(raw: Store, name: string) {
    super();
    this.#raw = raw;
    this.#name = name;
    this.#channel = new StoreChannel(name);
    this.#channel.listen((m) => this.#onMessage(m));
    guardSync(() =>
      raw.onLockChange((locked: boolean) => {
        this.dispatchEvent(new LockChangeEvent(locked));
        if (!locked) this.#sync?.unlocked();
        this.#statusChanged();
      }),
    );
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
      const raw = await Store.open(options);
      return new EventStore(raw, (options as { name: string }).name);
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
    return guard(async () => {
      const stored = (await this.#raw.append(event)) as StoredEvent;
      this.#appended([stored]);
      return stored;
    });
  }

  /**
   * Appends events atomically: all are written, or none.
   *
   * @throws as {@link EventStore.append}.
   */
  appendBatch(events: AppendEvent[]): Promise<StoredEvent[]> {
    return guard(async () => {
      const stored = (await this.#raw.appendBatch(events)) as StoredEvent[];
      this.#appended(stored);
      return stored;
    });
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
   * With `auto` (the default) sync then runs by itself: after appends
   * (debounced by `debounceMs`), on `online`, when the page becomes
   * visible, every `intervalMs`, and at the retry time after a failure.
   * Only one context of the origin syncs at a time: the one holding the Web
   * Lock `annal-sync:<name>` ({@link SyncStatus.leader}); closing it hands
   * sync to the next. Failures of automatic passes fire `"syncerror"`.
   *
   * @throws `ANNAL_VALIDATION` (with `field`) for missing or malformed
   *   options: a `serverUrl` that is not an `http://` or `https://` URL, a
   *   `getToken` that is not a function, a `scope` other than `"own"` or
   *   `"tenant"`. Fix the input; the earlier settings stay.
   * @throws `ANNAL_CLOSED` after `close()`.
   */
  configureSync(options: SyncOptions): void {
    guardSync(() => {
      const o = (options ?? {}) as unknown as Record<string, unknown>;
      const unknown = Object.keys(o).find((k) => !SYNC_OPTIONS.includes(k));
      if (unknown !== undefined) {
        throw new AnnalValidationError("ANNAL_VALIDATION", `unknown sync option ${JSON.stringify(unknown)}; configureSync() takes ${SYNC_OPTIONS.join(", ")}`, {
          field: unknown,
        });
      }
      if (o.auto !== undefined && typeof o.auto !== "boolean") {
        throw new AnnalValidationError("ANNAL_VALIDATION", "auto must be true or false", { field: "auto" });
      }
      const schedule = {
        auto: o.auto !== false,
        intervalMs: checkMs(o, "intervalMs", 60_000, 1_000, 86_400_000),
        debounceMs: checkMs(o, "debounceMs", 1_000, 0, 600_000),
        clock: checkClock(o.clock),
      };
      this.#raw.configureSync({ ...options, clock: schedule.clock });
      this.#sync?.close();
      this.#syncOptions = options;
      this.#clock = schedule.clock;
      this.#sync = new SyncController(
        {
          raw: this.#raw,
          name: this.#name,
          channel: this.#channel,
          pulled: (json) => this.#deliverPulled(json),
          statusChanged: () => this.#statusChanged(),
          progress: (verified, seq, more) => this.dispatchEvent(new SyncProgressEvent(verified, seq, more)),
          passEnded: (report, error, automatic) => this.#passEnded(report, error, automatic),
        },
        schedule,
      );
      this.#sync.start();
    });
  }

  /**
   * One sync pass, now: pushes the outbox (this device's events above the
   * acknowledged watermark) in device order until it is empty, then pulls
   * and verifies the server ledger from the last checkpoint. Events of
   * other devices land in {@link EventStore.remoteEvents}; events the
   * server quarantined or flagged, in {@link EventStore.rejected} and
   * {@link EventStore.conflicts}. No event is lost or duplicated by a
   * failed or repeated pass. A second `sync()` in this context waits for
   * the running one, then runs. When another tab or worker holds the sync
   * lock, the pass runs there and this call resolves with its report.
   *
   * @throws `ANNAL_CANCELLED` when {@link EventStore.cancelSync} stopped it.
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
    return guard(async () => {
      if (!this.#sync) return (await this.#raw.sync(undefined, undefined)) as SyncReport;
      return this.#sync.sync();
    });
  }

  /**
   * Stops sync in this context: automatic sync ends (and the sync lock
   * passes to another context) until {@link EventStore.configureSync} is
   * called again, and a pass running here (or forwarded from here) rejects
   * with `ANNAL_CANCELLED`, its request in flight aborted. Nothing is lost:
   * events not yet acknowledged stay in the outbox. `sync()` still works.
   */
  cancelSync(): void {
    this.#sync?.stop();
    guardSync(() => this.#raw.cancelSync());
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
    return guard(async () => {
      const status = (await this.#raw.syncStatus()) as SyncStatus;
      status.leader = this.#sync?.leader ?? false;
      if (this.#sync?.syncing && status.state !== "locked") status.state = "syncing";
      return status;
    });
  }

  /**
   * Calls `callback(events, { source })` for new events of this store that
   * match `filter`: this device's appends in any tab or worker (`"local"`),
   * and other devices' events once pulled and verified (`"remote"`). Events
   * that exist already are not replayed: read them with `events()`. Returns
   * the function that unsubscribes; nothing stays registered after it.
   *
   * @throws `ANNAL_VALIDATION` for a malformed filter or a missing callback.
   */
  subscribe(filter: EventSubscriptionFilter | undefined, callback: (events: StoredEvent[], info: EventBatchInfo) => void): () => void {
    return guardSync(() => {
      const f = checkFilter(filter, "subscribe()");
      checkCallback(callback, "subscribe()");
      const subscriber: Subscriber = { filter: f, callback };
      this.#subscribers.add(subscriber);
      return () => void this.#subscribers.delete(subscriber);
    });
  }

  /**
   * Follows the server in real time: opens its Server-Sent Events stream
   * (through `fetch`, so the token goes in the `Authorization` header), and
   * for each entry it announces runs a pull that verifies it before
   * `callback` sees it. So `callback` gets other devices' events matching
   * `filter`, verified, in ledger order, seconds after they reach the
   * server. The stream reconnects with backoff and resumes with
   * `Last-Event-ID`; a pull on every reconnection recovers what was missed.
   * `close()` on the result closes the stream.
   *
   * @throws `ANNAL_VALIDATION` before {@link EventStore.configureSync}, and
   *   for a malformed filter or a missing callback.
   */
  live(filter: Omit<EventSubscriptionFilter, "source"> | undefined, callback: (events: StoredEvent[]) => void): LiveSubscription {
    return guardSync(() => {
      const f = checkFilter(filter, "live()");
      checkCallback(callback, "live()");
      const options = this.#syncOptions;
      if (!options) {
        throw new AnnalValidationError("ANNAL_VALIDATION", "call configureSync({ serverUrl, getToken }) before live()", { field: "sync" });
      }
      const unsubscribe = this.subscribe({ ...f, source: "remote" }, (events) => callback(events));
      const stream: LiveStream = new LiveStream({
        serverUrl: options.serverUrl,
        filter: { eventType: f.eventType, aggregateId: f.aggregateId },
        getToken: (refresh) => options.getToken(refresh),
        clock: this.#clock,
        fetch: (request) => (options.fetch ? options.fetch(request) : fetch(request)),
        checkpointSeq: async () => (await this.syncStatus()).checkpoint?.seq ?? 0,
        sync: () => this.sync(),
        closed: () => {
          unsubscribe();
          this.#lives.delete(stream);
        },
      });
      this.#lives.add(stream);
      return stream;
    });
  }

  /**
   * Asks the app's service worker (which calls `registerAnnalSync` or
   * `annalSync` from `annal/sw`) to sync this store in the background, even
   * after every page is closed. Uses Background Sync (tag `annal-sync`)
   * where the browser has it (Chromium); else periodic background sync
   * where granted; else a message, so the worker syncs now and again when
   * it next starts. On an encrypted store unlocked with a passphrase, it
   * also hands the worker this unlock's session key (a non-extractable
   * `CryptoKey`, kept in the worker's memory only) so it can sync while the
   * store stays unlocked here. Resolves with the mechanism used.
   *
   * @throws `ANNAL_VALIDATION` when no service worker controls this page
   *   (register one first), or outside a page.
   */
  requestBackgroundSync(): Promise<BackgroundSyncMode> {
    return guard(async () => {
      const container = typeof navigator !== "undefined" ? navigator.serviceWorker : undefined;
      if (!container || typeof window === "undefined") {
        throw new AnnalValidationError("ANNAL_VALIDATION", "requestBackgroundSync() works in a page that registered a service worker", { field: "serviceWorker" });
      }
      // A worker registered but still installing is waited for, briefly.
      const registration = (await container.getRegistration())
        ? await Promise.race([container.ready, new Promise<undefined>((ok) => setTimeout(() => ok(undefined), 5_000))])
        : undefined;
      if (!registration?.active) {
        throw new AnnalValidationError(
          "ANNAL_VALIDATION",
          "no active service worker: register one that calls registerAnnalSync() from annal/sw, then call requestBackgroundSync() again",
          { field: "serviceWorker" },
        );
      }
      const key = this.#raw.sessionKey() as CryptoKey | null;
      if (key) await postAndConfirm(registration.active, { annal: "session", name: this.#name, key });
      const withSync = registration as ServiceWorkerRegistration & {
        sync?: { register(tag: string): Promise<void> };
        periodicSync?: { register(tag: string, options: { minInterval: number }): Promise<void> };
      };
      if (withSync.sync) {
        await withSync.sync.register(BACKGROUND_SYNC_TAG);
        return "sync";
      }
      if (withSync.periodicSync) {
        try {
          await withSync.periodicSync.register(BACKGROUND_SYNC_TAG, { minInterval: 12 * 60 * 60 * 1000 });
          postToServiceWorker(registration.active, { annal: "sync", name: this.#name });
          return "periodicsync";
        } catch {
          // Not granted (the site is not installed): fall through.
        }
      }
      postToServiceWorker(registration.active, { annal: "sync", name: this.#name });
      return "message";
    });
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
    this.#closed = true;
    for (const live of [...this.#lives]) live.close();
    this.#sync?.close();
    this.#sync = undefined;
    this.#subscribers.clear();
    this.#flushAnnouncement();
    this.#channel.close();
    if (this.#statusTimer !== undefined) clearTimeout(this.#statusTimer);
    guardSync(() => this.#raw.close());
  }

  /** Tells subscribers, other contexts and the scheduler about new local events. */
  #appended(events: StoredEvent[]): void {
    if (events.length === 0) return;
    this.#announce(events[0]!.deviceSeq, events[events.length - 1]!.deviceSeq);
    this.#deliver(events, "local");
    this.#sync?.appended();
    this.#statusChanged();
  }

  /**
   * Tells other contexts about seqs `from..=to`, in a task of its own: a
   * BroadcastChannel post costs about 0.1 ms, which should not be part of
   * an append's latency, and appends that end together share one message.
   * Only contiguous ranges are merged, since another context's appends may
   * sit between two of ours.
   */
  #announce(from: number, to: number): void {
    const pending = this.#unannounced;
    if (pending && pending.to + 1 === from) {
      pending.to = to;
    } else {
      this.#flushAnnouncement();
      this.#unannounced = { from, to };
    }
    this.#announceTimer ??= setTimeout(() => this.#flushAnnouncement(), 0);
  }

  #flushAnnouncement(): void {
    if (this.#announceTimer !== undefined) clearTimeout(this.#announceTimer);
    this.#announceTimer = undefined;
    const pending = this.#unannounced;
    this.#unannounced = undefined;
    if (pending) this.#channel.post({ type: "appended", ...pending });
  }

  /** Pulled events, as the JSON text of their array, to the subscribers that want remote events. */
  #deliverPulled(json: string): void {
    if (typeof json !== "string" || ![...this.#subscribers].some((s) => s.filter.source !== "local")) return;
    this.#deliver(JSON.parse(json) as StoredEvent[], "remote");
  }

  #deliver(events: StoredEvent[], source: "local" | "remote"): void {
    for (const s of [...this.#subscribers]) {
      if (s.filter.source !== undefined && s.filter.source !== source) continue;
      const mine = events.filter((e) => matches(s.filter, e));
      if (mine.length === 0) continue;
      try {
        s.callback(mine, { source });
      } catch (e) {
        // A subscriber's bug must not break appends or sync.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  #onMessage(m: ChannelMessage): void {
    if (this.#closed) return;
    if (m.type === "pulled") this.#deliverPulled(m.json);
    if (m.type === "appended") {
      if (![...this.#subscribers].some((s) => s.filter.source !== "remote")) return;
      // Read them here: the message carries only their range.
      this.events({ fromSeq: m.from, toSeq: m.to }).then(
        (events) => this.#deliver(events, "local"),
        () => undefined,
      );
    }
  }

  override addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void {
    if (type === "syncstatus" && listener) {
      this.#statusListeners.add(listener);
      this.#statusChanged();
    }
    super.addEventListener(type, listener, options);
  }

  override removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void {
    if (type === "syncstatus") this.#statusListeners.delete(listener);
    super.removeEventListener(type, listener, options);
  }

  /**
   * Recomputes the status soon (coalesced) and fires "syncstatus" if it
   * changed. Reading it costs a transaction, which would hold up appends
   * for nothing when no one listens.
   */
  #statusChanged(): void {
    if (this.#closed || this.#statusTimer !== undefined || this.#statusListeners.size === 0) return;
    this.#statusTimer = setTimeout(() => {
      this.#statusTimer = undefined;
      if (this.#closed) return;
      this.syncStatus().then(
        (status) => {
          const key = JSON.stringify(status);
          if (key === this.#lastStatus || this.#closed) return;
          this.#lastStatus = key;
          this.dispatchEvent(new SyncStatusEvent(status));
        },
        () => undefined,
      );
    }, 20);
  }

  #passEnded(report: SyncReport | undefined, error: AnnalError | undefined, automatic: boolean): void {
    if (error && automatic && error.code !== "ANNAL_CANCELLED" && error.code !== "ANNAL_CLOSED") {
      this.dispatchEvent(new SyncErrorEvent(error));
    }
    if (report && report.rejected > 0) {
      this.rejected().then(
        (all) => this.dispatchEvent(new SyncOutcomeEvent("rejected", all.slice(-report.rejected))),
        () => undefined,
      );
    }
    if (report && report.conflicts > 0) {
      this.conflicts().then(
        (all) => this.dispatchEvent(new SyncOutcomeEvent("conflict", all.slice(-report.conflicts))),
        () => undefined,
      );
    }
  }
}
