-- Identity of the service's callers: agents and their API keys, orchestrator keys, operators with
-- roles and optional TOTP, and dashboard sessions. Secrets are stored hashed: API keys and session
-- tokens as SHA-256 of 256 random bits, operator passwords with argon2id.
CREATE TABLE agents (
    agent_id    TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    disabled_at TEXT
);
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    agent_id    TEXT,
    environment TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_keys_agent ON api_keys (agent_id);
CREATE TABLE operators (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    totp_secret   TEXT,
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
);
CREATE TABLE operator_roles (
    username TEXT NOT NULL REFERENCES operators (username),
    role     TEXT NOT NULL,
    PRIMARY KEY (username, role)
);
CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES operators (username),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (username);
