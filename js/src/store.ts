import { Store } from "../wasm/annal.js";
import { guard, guardSync } from "./errors.js";
import { initAnnal } from "./init.js";
import type {
  Aggregate,
  AppendEvent,
  EventFilter,
  Head,
  OpenOptions,
  StoreIdentity,
  StoredEvent,
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
 * An append-only, hash-chained event log in IndexedDB. Works in pages,
 * dedicated workers and service workers.
 *
 * ```ts
 * const store = await EventStore.open({ name: `diary-${userId}`, userId });
 * await store.append({ aggregateType: "diary", aggregateId: "d-1", eventType: "symptom-recorded", payload: { severity: 3 } });
 * ```
 */
export class EventStore {
  readonly #raw: Store;

  private constructor(raw: Store) {
    this.#raw = raw;
  }

  /** Opens the store, creating it (with a new device id) the first time. */
  static async open(options: OpenOptions): Promise<EventStore> {
    return guard(async () => {
      await initAnnal();
      return new EventStore(await Store.open(options));
    });
  }

  /** Deletes a store and all its events. Open connections are closed first. */
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

  /** Appends one event. Resolves once it is durable, with the stored event. */
  append(event: AppendEvent): Promise<StoredEvent> {
    return guard(() => this.#raw.append(event));
  }

  /** Appends events atomically: all are written, or none. */
  appendBatch(events: AppendEvent[]): Promise<StoredEvent[]> {
    return guard(() => this.#raw.appendBatch(events));
  }

  /** Every event matching `filter`, oldest first unless `reverse`. */
  events(filter?: EventFilter): Promise<StoredEvent[]> {
    return guard(() => this.#raw.events(rawFilter(filter)));
  }

  /**
   * The events matching `filter`, read in pages, so a log of any size never
   * sits in memory at once: `for await (const e of store.iterate()) ...`.
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

  /** An aggregate's current version and all its events. */
  aggregate(aggregateId: string): Promise<Aggregate> {
    return guard(() => this.#raw.aggregate(aggregateId));
  }

  /** The last event's `deviceSeq` and `hash` (0 and 64 zeros when empty). */
  head(): Promise<Head> {
    return guard(() => this.#raw.head());
  }

  /** Recomputes every hash and link. Never throws for tampering: reports it. */
  verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    return guard(() => this.#raw.verify(options.onProgress));
  }

  /**
   * A self-contained audit document (JSON) of the whole log: the store's
   * identity, every event with its salt and payload, and the head. Check it
   * offline with `annal-verify FILE`.
   */
  exportAudit(): Promise<Blob> {
    return guard(() => this.#raw.exportAudit());
  }

  /** Closes the store. Later calls fail with `ANNAL_CLOSED`. */
  close(): void {
    guardSync(() => this.#raw.close());
  }
}
