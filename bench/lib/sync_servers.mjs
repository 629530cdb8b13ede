// annal-server (target/release/annal-server) on 127.0.0.1 for the sync
// workload: on SQLite through the package tests' startAnnalServer(), and
// on a throwaway PostgreSQL 15 (postgres.mjs). Both answer the same
// `{ backend, url, token(user), close() }`.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startAnnalServer } from "../../tests/js/harness.mjs";
import { SERVER_BIN } from "./paths.mjs";
import { startPostgres } from "./postgres.mjs";

const run = promisify(execFile);

/** annal-server on a fresh SQLite file, allowing CORS from the bench page's `origin`. */
export async function sqliteServer({ origin, tenant }) {
  const s = await startAnnalServer({ origin, tenant });
  return { backend: "sqlite", url: s.url, token: (user) => s.token(user), close: () => s.close() };
}

/** annal-server on a fresh PostgreSQL cluster, which close() stops and removes. */
export async function postgresServer({ origin, tenant }) {
  const pg = await startPostgres();
  const dir = await mkdtemp(join(tmpdir(), "annal-bench-server-"));
  let child = null;
  const close = async () => {
    if (child && child.exitCode === null && child.signalCode === null) await new Promise((ok) => (child.once("exit", ok), child.kill("SIGKILL")));
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const secretFile = join(dir, "jwt-secret");
    await writeFile(secretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
    child = spawn(SERVER_BIN, ["serve", "--database-url", pg.appUrl, "--admin-database-url", pg.adminUrl, "--jwt-secret-file", secretFile, "--listen", "127.0.0.1:0", "--cors-origin", origin], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const killOnExit = () => child?.kill("SIGKILL");
    process.once("exit", killOnExit);
    const url = await listening(child);
    await healthy(url);
    return {
      backend: "postgres",
      url,
      settings: pg.settings,
      token: async (user) => (await run(SERVER_BIN, ["token", "--tenant", tenant, "--user", user, "--scope", "own", "--ttl", "2h", "--jwt-secret-file", secretFile])).stdout.trim(),
      close: async () => {
        process.off("exit", killOnExit);
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

function listening(child) {
  return new Promise((ok, fail) => {
    let err = "";
    const timer = setTimeout(() => fail(new Error(`annal-server did not start: ${err}`)), 60_000);
    child.stderr.on("data", (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)\s/.exec(err);
      if (m) {
        clearTimeout(timer);
        // Keep draining stderr so the server never blocks on a full pipe.
        child.stderr.removeAllListeners("data");
        child.stderr.resume();
        ok(m[1]);
      }
    });
    child.once("error", fail);
    child.once("exit", (code) => fail(new Error(`annal-server exited with ${code}: ${err}`)));
  });
}

async function healthy(url) {
  for (let i = 0; i < 100; i++) {
    if ((await fetch(`${url}/v1/health`).catch(() => null))?.ok) return;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`annal-server at ${url} is not healthy`);
}

/** Every item of the ledger `token` reads, from Node: what the server really holds. */
export async function ledgerItems(url, token) {
  const items = [];
  for (let after = 0; ; ) {
    const res = await fetch(`${url}/v1/events?after=${after}&limit=1000`, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`pull from ${url}: ${res.status} ${await res.text()}`);
    const page = await res.json();
    items.push(...page.items);
    if (!page.has_more) return items;
    after = page.next_after;
  }
}
