-- Audit shards (AUDIT.md 3.11-3.12), written by store/audit_postgres.py: one shard per replica and
-- period, its head row fenced by compare-and-swap on (size, epoch), entries and payloads keyed by
-- (origin, idx). Text columns use the "C" collation like 0001 (byte-wise, as in SQLite).
CREATE TABLE audit_shard (
    origin     TEXT COLLATE "C" PRIMARY KEY,
    replica    TEXT COLLATE "C" NOT NULL,
    period     TEXT COLLATE "C" NOT NULL,
    state      TEXT COLLATE "C" NOT NULL DEFAULT 'active',
    epoch      BIGINT NOT NULL DEFAULT 0,
    size       BIGINT NOT NULL DEFAULT 0,
    head       BYTEA,
    compact    BYTEA NOT NULL DEFAULT ''::bytea,
    vkey       TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    sealed_at  TEXT COLLATE "C"
);
CREATE TABLE audit_entry (
    origin       TEXT COLLATE "C" NOT NULL,
    idx          BIGINT NOT NULL,
    leaf_hash    BYTEA NOT NULL,
    header       BYTEA,
    retain_until TEXT COLLATE "C",
    PRIMARY KEY (origin, idx)
);
CREATE TABLE audit_payload (
    origin      TEXT COLLATE "C" NOT NULL,
    idx         BIGINT NOT NULL,
    salt        BYTEA NOT NULL,
    body        BYTEA NOT NULL,
    enc         TEXT COLLATE "C" NOT NULL DEFAULT 'none',
    wrapped_dek BYTEA,
    kek_id      TEXT COLLATE "C",
    PRIMARY KEY (origin, idx)
);
CREATE TABLE audit_checkpoint (
    origin     TEXT COLLATE "C" NOT NULL,
    size       BIGINT NOT NULL,
    root       BYTEA NOT NULL,
    note       BYTEA NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (origin, size)
);
CREATE TABLE audit_hold (
    origin     TEXT COLLATE "C" NOT NULL,
    hold_id    TEXT COLLATE "C" NOT NULL,
    start_idx  BIGINT NOT NULL,
    end_idx    BIGINT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (origin, hold_id)
);
