-- Core gate state: sessions, call counts, taint, decisions (for replay), idempotency,
-- policy bundles and activations, small control documents.
-- PostgreSQL dialect of sqlite/0001_initial.sql. Differences, on purpose:
-- * every TEXT column uses the "C" collation: ids, ISO timestamps and keys then compare and sort
--   byte-wise exactly as in SQLite (sql.py orders by decision_id, opened_at, key and compares
--   created_at), whatever the database's default locale is (en_US would ignore punctuation);
-- * BYTEA for blobs, BIGSERIAL for SQLite's AUTOINCREMENT, BIGINT for counters (SQLite's
--   INTEGER is 64-bit, PostgreSQL's is 32-bit).
CREATE TABLE sessions (
    session_id   TEXT COLLATE "C" PRIMARY KEY,
    agent_id     TEXT COLLATE "C" NOT NULL,
    task         TEXT COLLATE "C" NOT NULL,
    environment  TEXT COLLATE "C" NOT NULL,
    principal    TEXT COLLATE "C",
    instruction  TEXT COLLATE "C",
    delegation   TEXT COLLATE "C" NOT NULL,
    attended     INTEGER NOT NULL,
    labels       TEXT COLLATE "C" NOT NULL,
    opened_at    TEXT COLLATE "C" NOT NULL,
    closed_at    TEXT COLLATE "C"
);
CREATE INDEX sessions_agent ON sessions (agent_id, opened_at);
CREATE TABLE session_calls (
    session_id TEXT COLLATE "C" NOT NULL,
    tool       TEXT COLLATE "C" NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (session_id, tool)
);
CREATE TABLE session_taint (
    session_id TEXT COLLATE "C" NOT NULL,
    source     TEXT COLLATE "C" NOT NULL,
    first_at   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (session_id, source)
);
CREATE TABLE decisions (
    decision_id TEXT COLLATE "C" PRIMARY KEY,
    session_id  TEXT COLLATE "C" NOT NULL,
    agent_id    TEXT COLLATE "C",
    policy      TEXT COLLATE "C" NOT NULL,
    request     TEXT COLLATE "C" NOT NULL,
    facts       TEXT COLLATE "C" NOT NULL,
    decision    TEXT COLLATE "C" NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX decisions_agent ON decisions (agent_id, decision_id);
CREATE TABLE idempotency (
    agent_id    TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    decision_id TEXT COLLATE "C" NOT NULL,
    decision    TEXT COLLATE "C" NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE TABLE bundles (
    digest      TEXT COLLATE "C" PRIMARY KEY,
    data        BYTEA NOT NULL,
    source_name TEXT COLLATE "C" NOT NULL,
    signature   TEXT COLLATE "C",
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE TABLE activations (
    seq          BIGSERIAL PRIMARY KEY,
    digest       TEXT COLLATE "C" NOT NULL REFERENCES bundles (digest),
    activated_at TEXT COLLATE "C" NOT NULL,
    activated_by TEXT COLLATE "C" NOT NULL
);
CREATE TABLE kv (
    namespace  TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (namespace, key)
);
