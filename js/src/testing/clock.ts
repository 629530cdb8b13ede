import type { Clock } from "../types.js";

type Timer = { at: number; order: number; callback: () => void };

/**
 * A clock that moves only when told to, for `configureSync({ clock })` in
 * tests: retries, the interval and the debounce all wait on it, so a test
 * can check the retry schedule without waiting minutes.
 *
 * ```ts
 * const clock = new FakeClock(Date.UTC(2026, 0, 1));
 * store.configureSync({ serverUrl, getToken, clock });
 * await clock.advance(30_000); // fires every timer due in the next 30 s
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Map<number, Timer>();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = ++this.#order;
    this.#timers.set(handle, { at: this.#now + Math.max(0, ms), order: handle, callback });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** When the earliest timer fires, or `undefined` when none waits. */
  get nextTimerAt(): number | undefined {
    let next: number | undefined;
    for (const t of this.#timers.values()) if (next === undefined || t.at < next) next = t.at;
    return next;
  }

  /** How many timers wait. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due, in
   * order, and letting the work each one starts settle (promises and real
   * I/O get `settleMs` of real time) before the next.
   */
  async advance(ms: number, settleMs = 0): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      let due: Timer | undefined;
      for (const t of this.#timers.values()) {
        if (t.at <= end && (!due || t.at < due.at || (t.at === due.at && t.order < due.order))) due = t;
      }
      if (!due) break;
      this.#timers.delete(due.order);
      this.#now = Math.max(this.#now, due.at);
      due.callback();
      await new Promise((ok) => setTimeout(ok, settleMs));
    }
    this.#now = end;
  }
}
