-- annal-server schema 1 (SQLite). Append-only tables: events, quarantine,
-- ledger, receipts. Mutable state (heads and aggregate versions) lives in
-- separate small tables, written in the same transaction.

CREATE TABLE ledger_heads (
    tenant_id TEXT NOT NULL,
    ledger    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, ledger)
);

CREATE TABLE device_heads (
    tenant_id  TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    -- The user whose pushes this device's chain belongs to.
    user_id    TEXT NOT NULL,
    device_seq INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    -- The hash the server computed; the next event may link to either.
    computed_hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
);

CREATE TABLE aggregates (
    tenant_id      TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    version        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, aggregate_id)
);

CREATE TABLE events (
    tenant_id         TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    device_id         TEXT NOT NULL,
    device_seq        INTEGER NOT NULL,
    aggregate_type    TEXT NOT NULL,
    aggregate_id      TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    schema_version    INTEGER NOT NULL,
    aggregate_version INTEGER NOT NULL,
    hash              TEXT NOT NULL,
    envelope          TEXT NOT NULL,
    salt              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN ('accepted', 'conflict')),
    conflicts_with    TEXT NOT NULL,
    server_seq        INTEGER NOT NULL,
    user_seq          INTEGER NOT NULL,
    received_at       TEXT NOT NULL,
    UNIQUE (tenant_id, event_id),
    UNIQUE (tenant_id, device_id, device_seq),
    UNIQUE (tenant_id, server_seq),
    UNIQUE (tenant_id, user_id, user_seq)
);
CREATE INDEX events_by_aggregate ON events (tenant_id, aggregate_id, aggregate_version);

CREATE TABLE quarantine (
    tenant_id    TEXT NOT NULL,
    server_seq   INTEGER NOT NULL,
    user_id      TEXT NOT NULL,
    user_seq     INTEGER NOT NULL,
    event_id     TEXT,
    device_id    TEXT,
    device_seq   INTEGER,
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
    seq         INTEGER NOT NULL,
    event_hash  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    received_at TEXT NOT NULL,
    prev        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    server_seq  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, ledger, seq)
);

CREATE TABLE receipts (
    tenant_id        TEXT NOT NULL,
    server_seq       INTEGER NOT NULL,
    user_id          TEXT NOT NULL,
    user_seq         INTEGER NOT NULL,
    event_id         TEXT,
    outcome          TEXT NOT NULL,
    ledger_hash      TEXT NOT NULL,
    user_ledger_hash TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, server_seq),
    UNIQUE (tenant_id, user_id, user_seq)
);

-- Immutability, enforced by the database itself.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'annal: events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'annal: events are append-only'); END;
CREATE TRIGGER quarantine_no_update BEFORE UPDATE ON quarantine
BEGIN SELECT RAISE(ABORT, 'annal: quarantine is append-only'); END;
CREATE TRIGGER quarantine_no_delete BEFORE DELETE ON quarantine
BEGIN SELECT RAISE(ABORT, 'annal: quarantine is append-only'); END;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'annal: the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'annal: the ledger is append-only'); END;
CREATE TRIGGER receipts_no_update BEFORE UPDATE ON receipts
BEGIN SELECT RAISE(ABORT, 'annal: receipts are append-only'); END;
CREATE TRIGGER receipts_no_delete BEFORE DELETE ON receipts
BEGIN SELECT RAISE(ABORT, 'annal: receipts are append-only'); END;
