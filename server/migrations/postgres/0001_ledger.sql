-- annal-server schema 1 (PostgreSQL). The same tables as the SQLite schema:
-- append-only events, quarantine, ledger and receipts, and small mutable
-- tables (ledger heads, device heads, aggregate versions) written in the
-- same transaction.
--
-- Roles. This file runs as the owner role (annal-server's admin URL, or its
-- database URL when no admin URL is given), in one transaction, under an
-- advisory lock. The server itself should connect as another role: not the
-- owner, not a superuser and without BYPASSRLS, so that
--   * row-level security applies to it (FORCE makes it apply to the owner
--     too, but a superuser or a BYPASSRLS role skips it whatever we do);
--   * it cannot drop or disable the triggers below, or alter the tables:
--     only the owner can.
-- It needs only what annal_grant_app() grants: SELECT and INSERT on the
-- append-only tables, and SELECT, INSERT and UPDATE on the heads and
-- aggregates. This migration grants them to a role named annal_app if that
-- role exists; annal-server also calls annal_grant_app(<its role>) on each
-- start when its admin and app connections are different roles. Later
-- migrations that add tables redefine annal_grant_app().
--
-- Tenancy. Every table with a tenant_id has row-level security, enabled and
-- forced, with one policy: a row is visible and writable only when its
-- tenant_id is the transaction's annal.tenant setting. The server begins
-- every transaction with SELECT set_config('annal.tenant', $1, true), which
-- lasts until the end of that transaction only, so a pooled connection
-- cannot carry one tenant's setting into another tenant's work. Without the
-- setting, current_setting('annal.tenant', true) is NULL or '' and no row
-- matches.

CREATE TABLE ledger_heads (
    tenant_id TEXT NOT NULL,
    ledger    TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, ledger)
);

CREATE TABLE device_heads (
    tenant_id  TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    -- The user whose pushes this device's chain belongs to.
    user_id    TEXT NOT NULL,
    device_seq BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    -- The hash the server computed; the next event may link to either.
    computed_hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
);

CREATE TABLE aggregates (
    tenant_id      TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    version        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, aggregate_id)
);

CREATE TABLE events (
    tenant_id         TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    device_id         TEXT NOT NULL,
    device_seq        BIGINT NOT NULL,
    aggregate_type    TEXT NOT NULL,
    aggregate_id      TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    schema_version    BIGINT NOT NULL,
    aggregate_version BIGINT NOT NULL,
    hash              TEXT NOT NULL,
    envelope          TEXT NOT NULL,
    salt              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN ('accepted', 'conflict')),
    conflicts_with    TEXT NOT NULL,
    server_seq        BIGINT NOT NULL,
    user_seq          BIGINT NOT NULL,
    received_at       TEXT NOT NULL,
    UNIQUE (tenant_id, event_id),
    UNIQUE (tenant_id, device_id, device_seq),
    UNIQUE (tenant_id, server_seq),
    UNIQUE (tenant_id, user_id, user_seq)
);
CREATE INDEX events_by_aggregate ON events (tenant_id, aggregate_id, aggregate_version);

CREATE TABLE quarantine (
    tenant_id    TEXT NOT NULL,
    server_seq   BIGINT NOT NULL,
    user_id      TEXT NOT NULL,
    user_seq     BIGINT NOT NULL,
    event_id     TEXT,
    device_id    TEXT,
    device_seq   BIGINT,
    submitted    TEXT NOT NULL,
    event_hash   TEXT NOT NULL,
    claimed_hash TEXT,
    code         TEXT NOT NULL,
    message      TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (tenant_id, server_seq),
    UNIQUE (tenant_id, user_id, user_seq)
);
CREATE INDEX quarantine_by_event ON quarantine (tenant_id, event_id);

CREATE TABLE ledger (
    tenant_id   TEXT NOT NULL,
    ledger      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    event_hash  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    received_at TEXT NOT NULL,
    prev        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    server_seq  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, ledger, seq)
);

CREATE TABLE receipts (
    tenant_id        TEXT NOT NULL,
    server_seq       BIGINT NOT NULL,
    user_id          TEXT NOT NULL,
    user_seq         BIGINT NOT NULL,
    event_id         TEXT,
    outcome          TEXT NOT NULL,
    ledger_hash      TEXT NOT NULL,
    user_ledger_hash TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, server_seq),
    UNIQUE (tenant_id, user_id, user_seq)
);

-- Immutability, enforced by the database itself. Row-level triggers refuse
-- UPDATE and DELETE of any stored row; statement-level triggers refuse
-- TRUNCATE, and refuse UPDATE and DELETE even when no row matches (for
-- example because row-level security hides every row), so such a
-- statement always fails loudly instead of reporting "0 rows".
CREATE FUNCTION annal_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'annal: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'raise_exception';
END
$$;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['events', 'quarantine', 'ledger', 'receipts'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I
                        FOR EACH ROW EXECUTE FUNCTION annal_append_only()',
                       t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION annal_append_only()',
                       t || '_no_change_statement', t);
    END LOOP;
END
$$;

-- Row-level security on every table with a tenant_id.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['ledger_heads', 'device_heads', 'aggregates', 'events',
                             'quarantine', 'ledger', 'receipts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I
                        USING (tenant_id = current_setting(''annal.tenant'', true))
                        WITH CHECK (tenant_id = current_setting(''annal.tenant'', true))', t);
    END LOOP;
END
$$;

-- What the app role may do: append, and move the heads forward.
CREATE OR REPLACE FUNCTION annal_grant_app(app NAME) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT ON events, quarantine, ledger, receipts TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON ledger_heads, device_heads, aggregates TO %I', app);
END
$$;
REVOKE ALL ON FUNCTION annal_grant_app(NAME) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'annal_app') THEN
        PERFORM annal_grant_app('annal_app');
    END IF;
END
$$;
