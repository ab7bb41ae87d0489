-- Kill switch, drains and breaker trips (one stop per scope), what each halt hook did,
-- the change history, learned baselines, tools seen per task type and kill-switch drills.
-- control_version is bumped by every change so that each gate replica notices a stop made
-- elsewhere by reading one row.
CREATE TABLE control_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO control_version (id, version) VALUES (1, 0);
CREATE TABLE control_stops (
    scope      TEXT PRIMARY KEY,
    stop_id    TEXT NOT NULL UNIQUE,
    level      TEXT NOT NULL,
    rule       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    operator   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deadline   TEXT
);
CREATE TABLE control_effects (
    stop_id TEXT NOT NULL,
    replica TEXT NOT NULL,
    hook    TEXT NOT NULL,
    count   INTEGER,
    error   TEXT,
    at      TEXT NOT NULL,
    PRIMARY KEY (stop_id, replica, hook)
);
CREATE TABLE control_history (
    seq      BIGSERIAL PRIMARY KEY,
    at       TEXT NOT NULL,
    action   TEXT NOT NULL,
    scope    TEXT NOT NULL,
    level    TEXT NOT NULL,
    rule     TEXT NOT NULL,
    stop_id  TEXT NOT NULL,
    operator TEXT NOT NULL,
    reason   TEXT NOT NULL
);
CREATE TABLE control_baselines (
    agent_id   TEXT NOT NULL,
    tool       TEXT NOT NULL,
    metric     TEXT NOT NULL,
    mean       DOUBLE PRECISION NOT NULL,
    samples    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, tool, metric)
);
CREATE TABLE control_tasks (
    task       TEXT PRIMARY KEY,
    calls      BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE control_seen_tools (
    task     TEXT NOT NULL,
    tool     TEXT NOT NULL,
    first_at TEXT NOT NULL,
    PRIMARY KEY (task, tool)
);
CREATE TABLE control_drills (
    drill_id    TEXT PRIMARY KEY,
    operator    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    steps       TEXT NOT NULL
);
CREATE INDEX control_drills_finished ON control_drills (finished_at);
