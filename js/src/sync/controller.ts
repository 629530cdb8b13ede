import type { Store } from "../../wasm/annal.js";
import { AnnalCancelledError, AnnalError, guard, toAnnalError, errorFromCode } from "../errors.js";
import type { Clock, SyncReport } from "../types.js";
import { StoreChannel, lockName, type ChannelMessage } from "./channel.js";

/** What the controller needs from the store it syncs. */
export interface SyncHost {
  readonly raw: Store;
  readonly name: string;
  readonly channel: StoreChannel;
  /** This context pulled and stored these events (the JSON text of their array). */
  pulled(json: string): void;
  /** Something that may change `syncStatus()` happened. */
  statusChanged(): void;
  /** A pass reported progress: entries verified so far, and whether more follow. */
  progress(verified: number, seq: number, more: boolean): void;
  /** A pass ended; `error` when it failed. */
  passEnded(report: SyncReport | undefined, error: AnnalError | undefined, automatic: boolean): void;
}

/** The automatic part of `configureSync()`. */
export interface Schedule {
  auto: boolean;
  intervalMs: number;
  debounceMs: number;
  clock: Clock;
}

/** How long a context waits for the lock holder to take a forwarded request. */
const ACK_MS = 2_000;
/** How often a context waiting for a forwarded pass checks the holder is alive. */
const HOLDER_POLL_MS = 1_000;

type Waiter = { resolve(report: SyncReport): void; reject(error: AnnalError): void; acked: boolean };

function locks(): LockManager | undefined {
  return typeof navigator !== "undefined" && navigator.locks ? navigator.locks : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}

function cancelled(): AnnalCancelledError {
  return new AnnalCancelledError("ANNAL_CANCELLED", "sync was cancelled by cancelSync(); nothing was lost; call sync() to go on");
}

function randomId(): string {
  return crypto.randomUUID();
}

/**
 * Which context syncs, and when. One context of the origin at a time holds
 * the Web Lock `annal-sync:<name>`: with automatic sync on, a context asks
 * for it when configured and keeps it until it closes (or `cancelSync()`),
 * so closing that tab hands sync to the next. `sync()` in a context without
 * the lock is forwarded to the holder over BroadcastChannel; where no one
 * holds it, the context takes it for one pass.
 *
 * The triggers (appends anywhere, `online`, the page becoming visible, the
 * interval, the retry time) act only in the holder, and never sooner than
 * the retry schedule allows, except `online` and a direct `sync()`.
 */
export class SyncController {
  readonly #host: SyncHost;
  readonly #schedule: Schedule;
  #leader = false;
  /** Holding the lock for one pass, outside leadership. */
  #holding = 0;
  #release: (() => void) | undefined;
  /** The lock is asked for and not granted yet; `#granted` resolves when it is (or the request fails). */
  #requesting = false;
  #granted: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Automatic sync waits: for an unlock, or (after a fatal error) for a direct sync(). */
  #paused: "locked" | "fatal" | undefined;
  #running: Promise<SyncReport> | undefined;
  #again = false;
  #debounce: unknown;
  #retry: unknown;
  #interval: unknown;
  #detach: (() => void)[] = [];
  readonly #waiters = new Map<string, Waiter>();
  #remoteSyncing = false;
  readonly #unlisten: () => void;

  constructor(host: SyncHost, schedule: Schedule) {
    this.#host = host;
    this.#schedule = schedule;
    this.#unlisten = host.channel.listen((m) => this.#onMessage(m));
  }

  /** Whether this context holds the sync lock as the syncing context. */
  get leader(): boolean {
    return this.#leader;
  }

  /** Whether a pass runs here or in another context. */
  get syncing(): boolean {
    return this.#running !== undefined || this.#remoteSyncing;
  }

  /** Asks for the lock if automatic sync is on. */
  start(): void {
    if (!this.#schedule.auto || this.#stopped) return;
    const manager = locks();
    if (!manager) {
      // Without Web Locks (very old browsers) every context syncs for itself.
      this.#becomeLeader();
      return;
    }
    let granted!: () => void;
    this.#granted = new Promise<void>((ok) => (granted = ok));
    this.#requesting = true;
    void manager
      .request(lockName(this.#host.name), () => {
        this.#requesting = false;
        granted();
        if (this.#stopped) return undefined;
        this.#becomeLeader();
        return new Promise<void>((release) => (this.#release = release));
      })
      .catch(() => {
        this.#requesting = false;
        granted();
      });
  }

  /**
   * One pass now, here or in the context that holds the lock. This context
   * may itself be queued for the lock (automatic sync): then it never waits
   * for the lock outright, which it would get only to keep, but forwards
   * to the holder until it is the holder itself.
   */
  async sync(): Promise<SyncReport> {
    const manager = locks();
    for (let attempt = 0; ; attempt++) {
      if (this.#stopped && attempt > 0) throw cancelled();
      if (this.#leader || this.#holding > 0 || !manager) return this.#pass(false);
      // Just granted, or about to be: the callback runs a task later.
      if (this.#requesting) await Promise.race([this.#granted, sleep(50)]);
      if (this.#leader) continue;
      const mine = await manager.request(lockName(this.#host.name), { ifAvailable: true }, async (lock) => {
        if (!lock) return undefined;
        this.#holding++;
        try {
          return { report: await this.#pass(false) };
        } finally {
          this.#holding--;
        }
      });
      if (mine) return mine.report;
      const forwarded = await this.#forward();
      if (forwarded) return forwarded;
      if (attempt >= 4 && !this.#requesting && !this.#leader) {
        // The holder never answers (a frozen tab): wait for the lock itself.
        return manager.request(lockName(this.#host.name), async () => {
          this.#holding++;
          try {
            return await this.#pass(false);
          } finally {
            this.#holding--;
          }
        });
      }
    }
  }

  /** An append happened in some context of the store. */
  appended(): void {
    if (!this.#leader || this.#stopped) return;
    if (this.#debounce !== undefined) this.#schedule.clock.clearTimeout(this.#debounce);
    this.#debounce = this.#schedule.clock.setTimeout(() => {
      this.#debounce = undefined;
      void this.#auto("append");
    }, this.#schedule.debounceMs);
  }

  /** The store was unlocked in this context. */
  unlocked(): void {
    if (this.#paused === "locked") {
      this.#paused = undefined;
      void this.#auto("unlock");
    }
  }

  /**
   * Stops automatic sync here (until `configureSync()` again), gives up the
   * lock, and cancels the pass running here and the passes waiting for one.
   */
  stop(): void {
    this.#stopped = true;
    this.#resign();
    for (const [id, w] of this.#waiters) {
      this.#waiters.delete(id);
      w.reject(cancelled());
    }
    try {
      this.#host.raw.cancelSync();
    } catch {
      // A closed store has nothing running.
    }
  }

  /** Leaves the channel and gives up the lock, for `close()`. */
  close(): void {
    this.stop();
    this.#unlisten();
  }

  #becomeLeader(): void {
    this.#leader = true;
    const clock = this.#schedule.clock;
    const on = (target: EventTarget | undefined, type: string, f: () => void) => {
      if (!target?.addEventListener) return;
      target.addEventListener(type, f);
      this.#detach.push(() => target.removeEventListener(type, f));
    };
    on(globalThis, "online", () => void this.#auto("online"));
    if (typeof document !== "undefined") {
      on(document, "visibilitychange", () => {
        if (document.visibilityState === "visible") void this.#auto("visible");
      });
    }
    const tick = () => {
      this.#interval = clock.setTimeout(() => {
        void this.#auto("interval");
        tick();
      }, this.#schedule.intervalMs);
    };
    tick();
    this.#host.statusChanged();
    void this.#auto("leader");
  }

  #resign(): void {
    const clock = this.#schedule.clock;
    for (const t of [this.#debounce, this.#retry, this.#interval]) if (t !== undefined) clock.clearTimeout(t);
    this.#debounce = this.#retry = this.#interval = undefined;
    for (const d of this.#detach.splice(0)) d();
    const wasLeader = this.#leader;
    this.#leader = false;
    this.#release?.();
    this.#release = undefined;
    if (wasLeader) this.#host.statusChanged();
  }

  /** An automatic pass, if the schedule allows one now. */
  async #auto(reason: "leader" | "append" | "online" | "visible" | "interval" | "retry" | "unlock"): Promise<void> {
    if (!this.#leader || this.#stopped) return;
    if (this.#paused === "fatal") return;
    if (this.#paused === "locked" && reason !== "unlock") return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (reason !== "online" && reason !== "retry") {
      const status = await guard(() => this.#host.raw.syncStatus()).catch(() => undefined);
      const next = status?.nextAttemptAt as number | null | undefined;
      if (typeof next === "number" && next > this.#schedule.clock.now()) {
        this.#armRetry(next);
        return;
      }
    }
    await this.#pass(true).catch(() => undefined);
  }

  #armRetry(at: number): void {
    const clock = this.#schedule.clock;
    if (this.#retry !== undefined) clock.clearTimeout(this.#retry);
    this.#retry = clock.setTimeout(() => {
      this.#retry = undefined;
      void this.#auto("retry");
    }, Math.max(0, at - clock.now()));
  }

  /** Runs a pass in this context (one at a time), telling everyone. */
  async #pass(automatic: boolean): Promise<SyncReport> {
    while (this.#running) await this.#running.catch(() => undefined);
    const run = this.#run(automatic);
    this.#running = run;
    try {
      return await run;
    } finally {
      this.#running = undefined;
      this.#host.channel.post({ type: "status", syncing: false });
      this.#host.statusChanged();
      if (this.#again && this.#leader && !this.#stopped) {
        this.#again = false;
        void this.#auto("append");
      }
    }
  }

  async #run(automatic: boolean): Promise<SyncReport> {
    const host = this.#host;
    host.channel.post({ type: "status", syncing: true });
    host.statusChanged();
    const onProgress = (verified: number, seq: number, more: boolean) => host.progress(verified, seq, more);
    const onPulled = (json: string) => {
      host.channel.post({ type: "pulled", json });
      host.pulled(json);
    };
    try {
      const report = (await guard(() => host.raw.sync(onProgress, onPulled))) as SyncReport;
      if (!automatic && this.#paused === "fatal") this.#paused = undefined;
      host.passEnded(report, undefined, automatic);
      return report;
    } catch (thrown) {
      const error = toAnnalError(thrown);
      switch (error.code) {
        case "ANNAL_OFFLINE": {
          if (this.#leader) {
            const status = await guard(() => host.raw.syncStatus()).catch(() => undefined);
            if (typeof status?.nextAttemptAt === "number") this.#armRetry(status.nextAttemptAt);
          }
          break;
        }
        case "ANNAL_LOCKED":
          this.#paused = "locked";
          break;
        case "ANNAL_CANCELLED":
        case "ANNAL_CLOSED":
          break;
        default:
          // Not a matter of waiting (a refused token, a forked ledger, an
          // incompatible server): automatic sync waits for a sync() call.
          this.#paused = "fatal";
      }
      host.passEnded(undefined, error, automatic);
      throw error;
    }
  }

  /** Asks the lock holder for a pass; `undefined` if it did not take it. */
  async #forward(): Promise<SyncReport | undefined> {
    const id = randomId();
    const done = new Promise<SyncReport>((resolve, reject) => this.#waiters.set(id, { resolve, reject, acked: false }));
    done.catch(() => undefined);
    this.#host.channel.post({ type: "sync-request", id });
    const deadline = Date.now() + ACK_MS;
    while (Date.now() < deadline) {
      const w = this.#waiters.get(id);
      if (!w) return done;
      if (w.acked) break;
      await sleep(50);
    }
    const w = this.#waiters.get(id);
    if (!w) return done;
    if (!w.acked) {
      this.#waiters.delete(id);
      return undefined;
    }
    // Taken: wait for the reply, unless the holder goes away first.
    for (;;) {
      const result = await Promise.race([done.then(() => "done" as const, () => "done" as const), sleep(HOLDER_POLL_MS).then(() => "poll" as const)]);
      if (result === "done") return done;
      const held = await locks()!.query();
      if (!held.held?.some((l) => l.name === lockName(this.#host.name))) {
        this.#waiters.delete(id);
        return undefined;
      }
    }
  }

  #onMessage(m: ChannelMessage): void {
    switch (m.type) {
      case "appended":
        this.appended();
        this.#host.statusChanged();
        break;
      case "pulled":
        // The store delivers them to its subscribers itself.
        this.#host.statusChanged();
        break;
      case "status":
        this.#remoteSyncing = m.syncing;
        this.#host.statusChanged();
        break;
      case "sync-request":
        if ((this.#leader || this.#holding > 0) && !this.#stopped) {
          this.#host.channel.post({ type: "sync-ack", id: m.id });
          this.#pass(false).then(
            (report) => this.#host.channel.post({ type: "sync-reply", id: m.id, report }),
            (e: AnnalError) => this.#host.channel.post({ type: "sync-reply", id: m.id, error: { code: e.code, message: e.message } }),
          );
        }
        break;
      case "sync-ack": {
        const w = this.#waiters.get(m.id);
        if (w) w.acked = true;
        break;
      }
      case "sync-reply": {
        const w = this.#waiters.get(m.id);
        if (!w) break;
        this.#waiters.delete(m.id);
        if (m.report) w.resolve(m.report);
        else w.reject(errorFromCode(m.error?.code ?? "ANNAL_INTERNAL", m.error?.message ?? "the syncing context failed"));
        break;
      }
    }
  }
}
