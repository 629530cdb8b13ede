// 9. Sync with a local annal-server: draining a queue of events, and the
// first pull of a fresh device, on SQLite and (unless --no-postgres or
// --smoke) PostgreSQL.

import { readFile } from "node:fs/promises";
import { expectEqual, expectTrue } from "../checks.mjs";
import { SERVER_RESULTS } from "../paths.mjs";
import { seedDevice } from "../seed_device.mjs";
import { postgresServer, sqliteServer, ledgerItems } from "../sync_servers.mjs";

const TENANT = "bench";
const DB = { drain: "bench-sync-drain", pull: "bench-sync-pull" };
const BACKENDS = { sqlite: sqliteServer, postgres: postgresServer };
/**
 * The pull's time is the client's (see its share outside fetch), so it is
 * measured on SQLite only: seeding 100,000 more events on PostgreSQL would
 * add minutes and say nothing new.
 */
const PULL_BACKEND = "sqlite";
const PULL_USER = "bench-pull-user";

export default {
  id: "sync",
  title: "9. Sync with annal-server on 127.0.0.1",
  baselines:
    "**Drain**: a fresh store of a user of its own (one per run, so the ledger holds nothing else) appends N events offline (appendBatch of 1,000, not timed), then `configureSync({ auto: false })` and `sync()` until the outbox is empty, timed: " +
    "the pushes (batches of 500) and the pull that ends each pass, which brings the device's own events back through the ledger. " +
    "The server's ledger is then read from Node and must hold exactly the device's events, in device order, with its hashes, all accepted. " +
    "**Minimal Node client**: another user's device in Node (bench/lib/seed_device.mjs) pushes N valid hash-chained events built by docs/FORMAT.md in batches of 500 over HTTP to the same server in the same run: the server's rate with next to no client. " +
    `**Initial pull** (on ${PULL_BACKEND}): the Node client first pushes M events of one more user; then, in each run, a fresh store of that user (another device) \`sync()\`s until its checkpoint reaches M, every ledger entry verified on the way. ` +
    "Share outside fetch: 1 − (time inside `fetch`, body included, through the sync option `fetch`) ÷ wall time. " +
    "annal-server is target/release/annal-server, SQLite through the package tests' startAnnalServer(), PostgreSQL 15 on a throwaway cluster with durable defaults, as `make bench-server` uses. " +
    "**Server's own ingest**: `push_events_per_s` from bench/server-results.json (`make bench-server`: batches of 500, in-process, no HTTP sockets; its one-client entry where it has one, as a drain is one device), read, not rerun.",
  databases: () => ({ main: Object.values(DB).map((d) => `annal:${d}`) }),

  async setup(ctx) {
    this.backends = ctx.options.postgres ? ["sqlite", "postgres"] : ["sqlite"];
    this.servers = {};
    this.serverResults = JSON.parse(await readFile(SERVER_RESULTS, "utf8").catch(() => "null"));
    for (const b of this.backends) {
      ctx.log(`starting annal-server on ${b}`);
      this.servers[b] = await BACKENDS[b]({ origin: ctx.session.main.url, tenant: TENANT });
    }
    ctx.log(`seeding ${ctx.sizes.pull} events on ${PULL_BACKEND} from Node for the pull`);
    const server = this.servers[PULL_BACKEND];
    this.pullToken = await server.token(PULL_USER);
    this.seed = await seedDevice({ url: server.url, token: this.pullToken, tenant: TENANT, user: PULL_USER, n: ctx.sizes.pull, aggregatePrefix: "pull-" });
  },

  async run(ctx, r) {
    const m = {};
    const checks = [];
    for (const b of this.backends) {
      const server = this.servers[b];
      const n = ctx.sizes.drain;
      m[b] = {
        drain: await drain(ctx, server, `bench-drain-${r}`, n, checks, b),
        node: await seedDevice({ url: server.url, token: await server.token(`bench-node-${r}`), tenant: TENANT, user: `bench-node-${r}`, n, aggregatePrefix: `node-${r}-` }),
        ...serverIngest(this.serverResults, b),
      };
      if (b === PULL_BACKEND) m[b].pull = await pull(ctx, server, PULL_USER, this.pullToken, ctx.sizes.pull, checks, b);
    }
    if (r === 0) m.seed = this.seed;
    return { m, checks };
  },

  async teardown() {
    for (const server of Object.values(this.servers ?? {})) await server.close();
  },

  figures: [
    ...["sqlite", "postgres"].flatMap((b) => [
      { id: `sync.${b}.drain.rate`, label: `drain to annal-server on ${b}`, unit: "events/s", better: "higher", get: (m) => m[b]?.drain.perSec ?? null },
      { id: `sync.${b}.drain.clientShare`, label: `share of the drain outside fetch on ${b} (the client)`, unit: "%", better: "lower", get: (m) => clientShare(m[b]?.drain) },
      { id: `sync.${b}.node.push`, label: `minimal Node client pushing batches of 500 over HTTP on ${b}`, unit: "events/s", better: "higher", get: (m) => m[b]?.node.perSec ?? null },
      { id: `sync.${b}.server.push`, label: `server's own ingest on ${b} (bench/server-results.json)`, unit: "events/s", better: "higher", get: (m) => m[b]?.serverPush ?? null },
    ]),
    { id: "sync.pull.seconds", label: `initial pull with verification (${PULL_BACKEND})`, unit: "s", better: "lower", get: (m) => m[PULL_BACKEND]?.pull.seconds ?? null },
    { id: "sync.pull.rate", label: `initial pull with verification (${PULL_BACKEND})`, unit: "events/s", better: "higher", get: (m) => m[PULL_BACKEND]?.pull.perSec ?? null },
    { id: "sync.pull.events", label: "events pulled", unit: "events", better: "higher", get: (m) => m[PULL_BACKEND]?.pull.events ?? null },
    { id: "sync.pull.clientShare", label: "share of the pull outside fetch (the client)", unit: "%", better: "lower", get: (m) => clientShare(m[PULL_BACKEND]?.pull) },
  ],
  ratios: ["sqlite", "postgres"].flatMap((b) => [
    { id: `sync.${b}.drain/server`, label: `drain on ${b} ÷ server's own ingest`, num: `sync.${b}.drain.rate`, den: `sync.${b}.server.push` },
    { id: `sync.${b}.drain/node`, label: `drain on ${b} ÷ minimal Node client over HTTP`, num: `sync.${b}.drain.rate`, den: `sync.${b}.node.push` },
  ]),
  targets: [
    ...["sqlite", "postgres"].flatMap((b) => [
      { on: `sync.${b}.drain.rate`, op: ">=", value: 5000, text: `sync drain ≥ 5,000 events/s (${b})` },
      { on: `sync.${b}.drain/server`, op: ">=", value: 0.7, text: `sync drain ≥ 0.7× the server's own ingest rate (${b})` },
    ]),
    { on: "sync.pull.seconds", op: "<", value: 20, text: "initial pull of 100,000 events in under 20 s including verification", needs: { figure: "sync.pull.events", atLeast: 100_000, flag: "a full run" } },
    { on: "sync.sqlite.drain.rate", op: ">", value: 10, text: "floor: a queue drain above 10 events/s" },
  ],
};

/** The server's own push rate for `backend` from bench/server-results.json: the one-client entry if there is one. */
function serverIngest(results, backend) {
  const entries = (results?.results ?? []).filter((x) => x.backend === backend);
  const entry = entries.find((x) => x.clients === 1) ?? entries[0];
  return { serverPush: entry?.push_events_per_s ?? null, serverEntry: entry ? { clients: entry.clients ?? results.clients ?? null, events: entry.events, batch: results.batch } : null };
}

/** Percent of a sync measurement's wall time not spent waiting in fetch (request, server, response body). */
function clientShare(x) {
  return x?.http ? Math.round((1 - x.http.ms / x.ms) * 1000) / 10 : null;
}

/**
 * A fresh device of a new `user` queues `n` events offline (aggregates of
 * its own: the server versions them per tenant), then drains them; the
 * server must hold exactly them, all accepted.
 */
async function drain(ctx, server, user, n, checks, backend) {
  const db = DB.drain;
  const token = await server.token(user);
  await ctx.call("annal.create", db, { user });
  for (let from = 0; from < n; from += 10_000) await ctx.call("annal.batches", db, ctx.ev(from, Math.min(10_000, n - from), { aggregatePrefix: `${user}-` }), { size: 1000 });
  const d = await ctx.call("sync.drain", db, { serverUrl: server.url, token });
  await ctx.call("annal.remove", db);
  checks.push(expectEqual(`${backend}: outbox before the drain`, d.pendingBefore, n));
  checks.push(expectEqual(`${backend}: events pushed`, d.events, n));
  checks.push(expectEqual(`${backend}: outbox after the drain`, d.pendingAfter, 0));
  const mine = (await ledgerItems(server.url, token)).filter((i) => i.event?.envelope.device_id === d.deviceId);
  checks.push(expectEqual(`${backend}: the server holds the device's events in device order`, mine.map((i) => i.event.envelope.device_seq), d.hashes.map((_, k) => k + 1)));
  checks.push(expectTrue(`${backend}: the server holds the device's hashes`, mine.every((i, k) => i.event.envelope.hash === d.hashes[k])));
  checks.push(expectTrue(`${backend}: every event accepted`, mine.every((i) => i.entry.outcome === "accepted")));
  delete d.hashes;
  return d;
}

/** A fresh device of `user` pulls the user's whole ledger of `total` entries. */
async function pull(ctx, server, user, token, total, checks, backend) {
  await ctx.call("annal.create", DB.pull, { user });
  const p = await ctx.call("sync.pull", DB.pull, { serverUrl: server.url, token, expected: total });
  await ctx.call("annal.remove", DB.pull);
  checks.push(expectEqual(`${backend}: entries pulled`, p.events, total));
  checks.push(expectEqual(`${backend}: checkpoint after the pull`, p.checkpointSeq, total));
  return p;
}
