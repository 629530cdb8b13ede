// A throwaway PostgreSQL 15 cluster for the sync workload, set up the way
// server/tests/support/postgres.rs sets up the one `make bench-server`
// measures on (same roles, PostgreSQL's durable defaults), so the client
// figures compare with the server's own: initdb as the `postgres` OS user
// (we run as root) in a temporary folder, listening on 127.0.0.1 on a
// free port with its socket in that folder. A watchdog shell stops it and removes the
// folder if this process dies without calling stop().

import { execFile, spawn } from "node:child_process";
import { chown, mkdtemp, readFile, rm, writeFile, chmod } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const BIN = process.env.ANNAL_PG_BIN ?? "/usr/lib/postgresql/15/bin";
const ROLES = { super: "annal-super", owner: "annal-owner", app: "annal-app" };
const isRoot = process.getuid?.() === 0;

async function postgresUser() {
  const line = (await readFile("/etc/passwd", "utf8")).split("\n").find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("no `postgres` OS user: install PostgreSQL 15 (apt-get install postgresql-15)");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs PostgreSQL program `program`, as `postgres` when we are root. */
function pg(program, args) {
  const [file, all] = isRoot ? ["runuser", ["-u", "postgres", "--", join(BIN, program), ...args]] : [join(BIN, program), args];
  return run(file, all, { maxBuffer: 1 << 24 });
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/**
 * Starts the cluster; resolves with `{ appUrl, adminUrl, stop() }` for
 * database `annal`, owned by `annal_owner`, served to `annal_app`.
 */
export async function startPostgres() {
  await run("test", ["-x", join(BIN, "initdb")]).catch(() => {
    throw new Error(`PostgreSQL 15 is missing (${BIN}/initdb); install postgresql-15 or pass --no-postgres`);
  });
  // As root, under /tmp: the postgres user must be able to reach it.
  const dir = await mkdtemp(isRoot ? "/tmp/annal-bench-pg-" : join(process.env.TMPDIR ?? "/tmp", "annal-bench-pg-"));
  await chmod(dir, 0o700);
  const owner = isRoot ? await postgresUser() : null;
  const own = (p) => (owner ? chown(p, owner.uid, owner.gid) : null);
  await own(dir);
  const data = join(dir, "data");
  const pwfile = join(dir, "pwfile");
  await writeFile(pwfile, ROLES.super);
  await own(pwfile);
  await pg("initdb", ["-D", data, "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions", "--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${pwfile}`]);
  await rm(pwfile);
  const watchdog = spawn(
    "sh",
    ["-c", `trap '' INT TERM HUP; cat >/dev/null; ${isRoot ? "runuser -u postgres -- " : ""}"$1" -D "$2" -m fast -w stop >/dev/null 2>&1; rm -rf "$3"`, "annal-bench-pg-watchdog", join(BIN, "pg_ctl"), data, dir],
    { stdio: ["pipe", "ignore", "ignore"] },
  );
  const port = await freePort();
  // Durable defaults, as the cluster `make bench-server` measures on (PgInstance::start_durable).
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c max_connections=300`;
  const stop = () =>
    new Promise((ok) => {
      if (watchdog.exitCode !== null) return ok();
      watchdog.once("exit", ok);
      watchdog.stdin.end();
    });
  try {
    await pg("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "-o", options, "start"]);
    const psql = (sql) => run(join(BIN, "psql"), ["-h", dir, "-p", String(port), "-U", "postgres", "-d", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]);
    await psql(`CREATE ROLE annal_owner LOGIN PASSWORD '${ROLES.owner}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS`);
    await psql(`CREATE ROLE annal_app LOGIN PASSWORD '${ROLES.app}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT`);
    await psql("CREATE DATABASE annal OWNER annal_owner");
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    appUrl: `postgres://annal_app:${ROLES.app}@127.0.0.1:${port}/annal`,
    adminUrl: `postgres://annal_owner:${ROLES.owner}@127.0.0.1:${port}/annal`,
    settings: "durable defaults (fsync on, synchronous_commit on), as make bench-server",
    stop,
  };
}
