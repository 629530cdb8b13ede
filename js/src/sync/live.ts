import type { Clock, LiveSubscription } from "../types.js";

/** What a live stream needs from its store. */
export interface LiveHost {
  readonly serverUrl: string;
  /**
   * Narrows what the server announces (`GET /v1/stream?eventType=&aggregateId=`),
   * so a busy tenant does not wake this stream for events it ignores.
   */
  readonly filter: { eventType?: string | undefined; aggregateId?: string | undefined };
  getToken(refresh: boolean): Promise<string> | string;
  readonly clock: Clock;
  /** Sends the stream's request: the sync option `fetch`, or the global one. */
  fetch(request: Request): Promise<Response>;
  /** The seq of the last verified ledger entry (0 before the first pull). */
  checkpointSeq(): Promise<number>;
  /** A sync pass, which pulls and verifies what the stream announced. */
  sync(): Promise<unknown>;
  /** The stream closed for good. */
  closed(): void;
}

/** Longest wait between reconnections. */
const RECONNECT_CAP_MS = 30_000;

/** One Server-Sent Events frame. */
interface Frame {
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * Splits a `text/event-stream` into frames (the WHATWG rules: lines end in
 * CRLF, LF or CR; `:` starts a comment; a blank line ends a frame).
 */
export class SseParser {
  #buffer = "";
  #id: string | undefined;
  #event = "";
  #data: string[] = [];

  /** Feeds decoded text; returns the frames it completed. */
  push(text: string): Frame[] {
    this.#buffer += text;
    const frames: Frame[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer);
      if (!match) break;
      // A lone CR at the very end may be the first half of CRLF.
      if (match[0] === "\r" && match.index === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      if (line === "") {
        if (this.#data.length > 0) frames.push({ id: this.#id, event: this.#event || "message", data: this.#data.join("\n") });
        this.#event = "";
        this.#data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.#data.push(value);
      else if (field === "event") this.#event = value;
      else if (field === "id" && !value.includes("\0")) this.#id = value;
    }
    return frames;
  }
}

/**
 * The server's SSE stream (`GET /v1/stream`), read through `fetch` so the
 * token travels in the `Authorization` header, never in the URL. Each entry
 * it announces is fetched again by a sync pass, which verifies it against
 * the stored checkpoint before anyone sees it; the stream itself is only
 * trusted to say "there is more". It reconnects with backoff and resumes
 * with `Last-Event-ID`; the pass on every (re)connection recovers anything
 * sent while it was away.
 */
export class LiveStream implements LiveSubscription {
  readonly #host: LiveHost;
  #abort: AbortController | undefined;
  #closed = false;
  #connected = false;
  #lastId: string | undefined;
  #syncing: Promise<void> | undefined;
  #again = false;
  #timer: unknown;
  #wake: (() => void) | undefined;

  constructor(host: LiveHost) {
    this.#host = host;
    void this.#loop();
  }

  get connected(): boolean {
    return this.#connected;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#connected = false;
    this.#abort?.abort();
    if (this.#timer !== undefined) this.#host.clock.clearTimeout(this.#timer);
    this.#wake?.();
    this.#host.closed();
  }

  async #loop(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      const heard = await this.#connect().catch(() => false);
      this.#connected = false;
      if (this.#closed) return;
      failures = heard ? 1 : failures + 1;
      const ceiling = Math.min(RECONNECT_CAP_MS, 1_000 * 2 ** Math.min(failures - 1, 15));
      await new Promise<void>((wake) => {
        this.#wake = wake;
        this.#timer = this.#host.clock.setTimeout(wake, Math.random() * ceiling);
      });
      this.#timer = this.#wake = undefined;
    }
  }

  /** One connection; resolves with whether it delivered anything. */
  async #connect(): Promise<boolean> {
    let refresh = false;
    for (;;) {
      const token = await this.#host.getToken(refresh);
      const url = new URL(`${this.#host.serverUrl.replace(/\/+$/, "")}/v1/stream`);
      const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
      if (this.#lastId !== undefined) headers["Last-Event-ID"] = this.#lastId;
      else url.searchParams.set("after", String(await this.#host.checkpointSeq()));
      const { eventType, aggregateId } = this.#host.filter;
      if (eventType !== undefined) url.searchParams.set("eventType", eventType);
      if (aggregateId !== undefined) url.searchParams.set("aggregateId", aggregateId);
      this.#abort = new AbortController();
      const response = await this.#host.fetch(new Request(url, { headers, signal: this.#abort.signal, cache: "no-store" }));
      if (response.status === 401 && !refresh) {
        refresh = true;
        await response.body?.cancel();
        continue;
      }
      if (!response.ok || !response.body) {
        await response.body?.cancel();
        return false;
      }
      this.#connected = true;
      // Whatever happened while disconnected comes with this pass.
      this.#pull();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      let heard = false;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || this.#closed) return heard;
          for (const frame of parser.push(value)) {
            if (frame.id !== undefined) this.#lastId = frame.id;
            if (frame.event === "entry") {
              heard = true;
              this.#pull();
            }
          }
        }
      } finally {
        reader.releaseLock();
      }
    }
  }

  /** A verifying pull, coalesced: at most one runs, and one more after it. */
  #pull(): void {
    if (this.#closed) return;
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#syncing = this.#host
      .sync()
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.#syncing = undefined;
        if (this.#again) {
          this.#again = false;
          this.#pull();
        }
      });
  }
}
