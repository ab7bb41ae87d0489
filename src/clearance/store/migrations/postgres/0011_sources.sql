-- Where each API key has been used from: peer addresses and client software (User-Agent), first
-- and last seen. A key used from somewhere it never was before is an identity anomaly to alert on.
CREATE TABLE key_sources (
    key_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    agent_id   TEXT,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (key_id, kind, value)
);
