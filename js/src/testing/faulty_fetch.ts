/**
 * A fault-injecting `fetch` for tests of an app's sync: pass its `fetch`
 * as the sync option, and it forwards every request to the real one
 * unless a fault says otherwise.
 *
 * ```ts
 * const net = new FaultyFetch();
 * store.configureSync({ serverUrl, getToken, fetch: net.fetch });
 * net.loseResponses(3, { method: "POST", path: "/v1/events" }); // the server commits, the app hears nothing
 * net.respondWith(503, { retryAfter: 30 });
 * ```
 *
 * Faults apply to the requests that match them (every request by default),
 * in the order they were added, each for its `count` of requests.
 */
export type FetchLike = (request: Request) => Promise<Response>;

/** Which requests a fault applies to: the method, and the URL's path (exact, or a RegExp). */
export interface FaultMatch {
  method?: string;
  path?: string | RegExp;
}

/** How many matching requests a fault takes (default 1), and which. */
export interface FaultOptions {
  count?: number;
  match?: FaultMatch;
}

/** One request that went through, and what was done to it. */
export interface FaultyFetchEntry {
  method: string;
  path: string;
  /** The fault that applied, or `undefined` when it went through untouched. */
  fault: FaultKind | undefined;
  /** The status the caller saw, `undefined` when it saw a network error. */
  status: number | undefined;
}

export type FaultKind = "fail" | "status" | "delay" | "hang" | "lose" | "duplicate";

interface Fault {
  kind: FaultKind;
  remaining: number;
  /** Matching requests to let through first (`failNth`). */
  skip: number;
  match: FaultMatch;
  status?: number | undefined;
  retryAfter?: number | undefined;
  ms?: number | undefined;
}

function matches(match: FaultMatch, request: Request): boolean {
  if (match.method !== undefined && match.method.toUpperCase() !== request.method) return false;
  if (match.path === undefined) return true;
  const path = new URL(request.url).pathname;
  return typeof match.path === "string" ? match.path === path : match.path.test(path);
}

function networkError(what: string): TypeError {
  // What fetch itself rejects with when the network fails.
  return new TypeError(`Failed to fetch (FaultyFetch: ${what})`);
}

function abortError(request: Request): unknown {
  return request.signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

function checkCount(count: number | undefined, what: string): number {
  const n = count ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${what}: count must be a whole number ≥ 1`);
  return n;
}

export class FaultyFetch {
  readonly #inner: FetchLike;
  #faults: Fault[] = [];
  /** Every request, oldest first. */
  readonly log: FaultyFetchEntry[] = [];

  /** `inner` is the fetch to forward to: the global one by default. */
  constructor(inner: FetchLike = (request) => globalThis.fetch(request)) {
    this.#inner = inner;
  }

  /** The function to pass as the `fetch` sync option. */
  readonly fetch: FetchLike = (request) => this.#send(request);

  /** The `n`th matching request from now (1 for the next) fails as if the network dropped. */
  failNth(n: number, match: FaultMatch = {}): this {
    if (!Number.isInteger(n) || n < 1) throw new RangeError("failNth: n must be a whole number ≥ 1");
    return this.#add({ kind: "fail", remaining: 1, skip: n - 1, match });
  }

  /** The next `count` matching requests fail as if the network dropped. */
  fail(options: FaultOptions = {}): this {
    return this.#add({ kind: "fail", remaining: checkCount(options.count, "fail"), skip: 0, match: options.match ?? {} });
  }

  /** The next `count` matching requests are answered with `status` here, never sent; `retryAfter` in seconds. */
  respondWith(status: number, options: FaultOptions & { retryAfter?: number } = {}): this {
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError("respondWith: status must be an HTTP status from 200 to 599");
    return this.#add({ kind: "status", status, retryAfter: options.retryAfter, remaining: checkCount(options.count, "respondWith"), skip: 0, match: options.match ?? {} });
  }

  /** The next `count` matching requests wait `ms` before they are sent. */
  delay(ms: number, options: FaultOptions = {}): this {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError("delay: ms must be ≥ 0");
    return this.#add({ kind: "delay", ms, remaining: checkCount(options.count, "delay"), skip: 0, match: options.match ?? {} });
  }

  /** The next `count` matching requests are never answered: they end only when aborted (sync's `timeoutMs`, `cancelSync()`). */
  hang(options: FaultOptions = {}): this {
    return this.#add({ kind: "hang", remaining: checkCount(options.count, "hang"), skip: 0, match: options.match ?? {} });
  }

  /**
   * The next `count` matching requests reach the server, which answers in
   * full (so it has committed), and then the caller gets a network error
   * instead of the answer.
   */
  loseResponses(count = 1, match: FaultMatch = {}): this {
    return this.#add({ kind: "lose", remaining: checkCount(count, "loseResponses"), skip: 0, match });
  }

  /** The next `count` matching requests are sent twice, one after the other; the caller gets the second answer. */
  duplicate(count = 1, match: FaultMatch = {}): this {
    return this.#add({ kind: "duplicate", remaining: checkCount(count, "duplicate"), skip: 0, match });
  }

  /** Removes every fault that has not run out yet. */
  clear(): this {
    this.#faults = [];
    return this;
  }

  /** How many logged requests match `match`, and optionally had fault `fault`. */
  count(match: FaultMatch = {}, fault?: FaultKind | null): number {
    return this.log.filter((e) => {
      if (match.method !== undefined && match.method.toUpperCase() !== e.method) return false;
      if (match.path !== undefined && !(typeof match.path === "string" ? match.path === e.path : match.path.test(e.path))) return false;
      return fault === undefined || (fault === null ? e.fault === undefined : e.fault === fault);
    }).length;
  }

  #add(fault: Fault): this {
    this.#faults.push(fault);
    return this;
  }

  /** The fault for `request`, used up by one. */
  #take(request: Request): Fault | undefined {
    for (const f of this.#faults) {
      if (f.remaining <= 0 || !matches(f.match, request)) continue;
      if (f.skip > 0) {
        f.skip--;
        continue;
      }
      f.remaining--;
      return f;
    }
    return undefined;
  }

  async #send(request: Request): Promise<Response> {
    const entry: FaultyFetchEntry = { method: request.method, path: new URL(request.url).pathname, fault: undefined, status: undefined };
    this.log.push(entry);
    const fault = this.#take(request);
    entry.fault = fault?.kind;
    const answer = (response: Response) => {
      entry.status = response.status;
      return response;
    };
    switch (fault?.kind) {
      case undefined:
        return answer(await this.#inner(request));
      case "fail":
        throw networkError("the network failed");
      case "status": {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter);
        const body = JSON.stringify({ code: "FAULTY_FETCH", message: `injected ${fault.status}` });
        return answer(new Response(body, { status: fault.status ?? 500, headers }));
      }
      case "delay":
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, fault.ms);
          request.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(abortError(request));
          });
        });
        return answer(await this.#inner(request));
      case "hang":
        return new Promise<Response>((_, reject) => {
          if (request.signal.aborted) reject(abortError(request));
          request.signal.addEventListener("abort", () => reject(abortError(request)));
        });
      case "lose": {
        const response = await this.#inner(request);
        await response.arrayBuffer();
        throw networkError("the answer was lost after the server handled the request");
      }
      case "duplicate": {
        const copy = request.clone();
        const first = await this.#inner(request);
        await first.arrayBuffer();
        return answer(await this.#inner(copy));
      }
    }
  }
}
