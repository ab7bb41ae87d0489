-- Core gate state: sessions, call counts, taint, decisions (for replay), idempotency,
-- policy bundles and activations, small control documents.
CREATE TABLE sessions (
    session_id   TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL,
    task         TEXT NOT NULL,
    environment  TEXT NOT NULL,
    principal    TEXT,
    instruction  TEXT,
    delegation   TEXT NOT NULL,
    attended     INTEGER NOT NULL,
    labels       TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    closed_at    TEXT
);
CREATE INDEX sessions_agent ON sessions (agent_id, opened_at);
CREATE TABLE session_calls (
    session_id TEXT NOT NULL,
    tool       TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (session_id, tool)
);
CREATE TABLE session_taint (
    session_id TEXT NOT NULL,
    source     TEXT NOT NULL,
    first_at   TEXT NOT NULL,
    PRIMARY KEY (session_id, source)
);
CREATE TABLE decisions (
    decision_id TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    agent_id    TEXT,
    policy      TEXT NOT NULL,
    request     TEXT NOT NULL,
    facts       TEXT NOT NULL,
    decision    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX decisions_agent ON decisions (agent_id, decision_id);
CREATE TABLE idempotency (
    agent_id    TEXT NOT NULL,
    key         TEXT NOT NULL,
    digest      TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    decision    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE TABLE bundles (
    digest      TEXT PRIMARY KEY,
    data        BYTEA NOT NULL,
    source_name TEXT NOT NULL,
    signature   TEXT,
    created_at  TEXT NOT NULL
);
CREATE TABLE activations (
    seq          BIGSERIAL PRIMARY KEY,
    digest       TEXT NOT NULL REFERENCES bundles (digest),
    activated_at TEXT NOT NULL,
    activated_by TEXT NOT NULL
);
CREATE TABLE kv (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
