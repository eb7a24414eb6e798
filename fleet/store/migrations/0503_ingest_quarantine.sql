-- Ingest poison handling (fleet/monitoring/_screen.py): messages that must never reach the
-- monitoring tables are kept here as evidence, one row per (source, reason, topic) with a
-- count (bounded by gateways x reasons x topics, however much garbage arrives), and every
-- ingest worker's counters, so `fleet monitor status` shows them from any machine.

CREATE TABLE ingest_quarantine (
    source     TEXT NOT NULL,                 -- gateway (or tracker) id from the topic; '' if unparseable
    reason     TEXT NOT NULL,                 -- fleet.monitoring.Reason: nul, oversized, not_owner, ...
    topic      TEXT NOT NULL,                 -- sanitised, at most 256 characters
    first_at   DOUBLE PRECISION NOT NULL,     -- fleet clock when the first such message arrived
    last_at    DOUBLE PRECISION NOT NULL,     -- ... and the last one
    count      BIGINT NOT NULL,               -- messages (deliveries) quarantined under this key
    size       BIGINT NOT NULL,               -- payload bytes of the last one
    head_hex   TEXT NOT NULL,                 -- its first 32 bytes as hex
    detail     TEXT,                          -- e.g. the decoder's reason, the other gateway
    worker     TEXT,
    PRIMARY KEY (source, reason, topic)
);
CREATE INDEX ingest_quarantine_last ON ingest_quarantine(last_at);

CREATE TABLE ingest_worker (
    worker       TEXT PRIMARY KEY,            -- MQTT client id of the worker
    host         TEXT,
    started_at   DOUBLE PRECISION NOT NULL,
    seen_at      DOUBLE PRECISION NOT NULL,   -- last heartbeat (every batch, at least every 30 s)
    received     BIGINT NOT NULL DEFAULT 0,   -- counters since started_at
    written      BIGINT NOT NULL DEFAULT 0,
    quarantined  BIGINT NOT NULL DEFAULT 0,
    batches      BIGINT NOT NULL DEFAULT 0,
    write_errors BIGINT NOT NULL DEFAULT 0,
    stopped_at   DOUBLE PRECISION
);
