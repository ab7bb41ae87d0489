-- Human approvals, their votes and messages, one-time execution tokens, break-glass overrides,
-- approval decay counters and brokered credential leases.
CREATE TABLE approvals (
    approval_id    TEXT PRIMARY KEY,
    decision_id    TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    tool           TEXT NOT NULL,
    action         TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    request        TEXT NOT NULL,
    rule           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    tier           TEXT,
    obligations    TEXT NOT NULL,
    required       INTEGER NOT NULL,
    approver_group TEXT,
    context        TEXT NOT NULL,
    summary        TEXT NOT NULL,
    policy         TEXT NOT NULL,
    state          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    decided_at     TEXT,
    token_expires  TEXT
);
CREATE INDEX approvals_state ON approvals (state, expires_at);
CREATE INDEX approvals_agent ON approvals (agent_id, state);
CREATE INDEX approvals_batch ON approvals (batch_id, state);
CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (approval_id),
    operator_id TEXT NOT NULL,
    vote        TEXT NOT NULL,
    comment     TEXT,
    at          TEXT NOT NULL,
    PRIMARY KEY (approval_id, operator_id)
);
CREATE TABLE approval_messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    approval_id TEXT NOT NULL REFERENCES approvals (approval_id),
    author      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX approval_messages_approval ON approval_messages (approval_id, seq);
CREATE TABLE approval_tokens (
    token_hash     TEXT PRIMARY KEY,
    approval_id    TEXT NOT NULL UNIQUE REFERENCES approvals (approval_id),
    request_digest TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    issued_at      TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    redeemed_at    TEXT,
    revoked_at     TEXT
);
CREATE INDEX approval_tokens_agent ON approval_tokens (agent_id);
CREATE TABLE breakglass (
    override_id TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    closed_at   TEXT,
    closed_by   TEXT,
    uses        INTEGER NOT NULL
);
CREATE INDEX breakglass_expiry ON breakglass (closed_at, expires_at);
CREATE TABLE approval_decay (
    agent_id   TEXT NOT NULL,
    tool       TEXT NOT NULL,
    rule       TEXT NOT NULL,
    n          INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, tool, rule)
);
CREATE TABLE credential_leases (
    lease_id    TEXT PRIMARY KEY,
    grant_ref   TEXT NOT NULL UNIQUE,
    agent_id    TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    tool        TEXT NOT NULL,
    environment TEXT NOT NULL,
    backend     TEXT NOT NULL,
    backend_ref TEXT,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX credential_leases_agent ON credential_leases (agent_id, revoked_at);
