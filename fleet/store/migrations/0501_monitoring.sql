-- fleet-ops monitoring: health samples, device status, gateway state transitions,
-- alarms/acks for benefit statistics, update reports, municipal baselines.
-- gateway_status (0102, fleet-core) holds last_seen/online/version/config_version.

CREATE TABLE gateway_health (
    gateway_id     TEXT NOT NULL,
    at             DOUBLE PRECISION NOT NULL,    -- the gateway's sample time
    received_at    DOUBLE PRECISION NOT NULL,
    version        TEXT,
    uptime_s       BIGINT,
    uplink_state   TEXT,
    backlog        BIGINT,
    journal_depth  BIGINT,
    alarms_pending BIGINT,
    config_version BIGINT,
    PRIMARY KEY (gateway_id, at)                 -- a redelivered sample is stored once
);
CREATE INDEX gateway_health_received ON gateway_health(received_at);

CREATE TABLE device_status (
    device_id   TEXT PRIMARY KEY,
    gateway_id  TEXT NOT NULL,
    role        TEXT,
    last_seen   DOUBLE PRECISION,
    battery_pct INTEGER,
    rssi        INTEGER,
    fw          TEXT,
    silent      BOOLEAN NOT NULL DEFAULT FALSE,
    reported_at DOUBLE PRECISION NOT NULL        -- fleet clock of the health message
);
CREATE INDEX device_status_gateway ON device_status(gateway_id);

CREATE TABLE gateway_state_log (
    gateway_id  TEXT NOT NULL,
    at          DOUBLE PRECISION NOT NULL,       -- fleet clock when the change was received
    online      BOOLEAN NOT NULL,
    PRIMARY KEY (gateway_id, at, online)
);

CREATE TABLE alarm_log (
    event_id         TEXT PRIMARY KEY,           -- idempotency key from the gateway
    gateway_id       TEXT,
    device_id        TEXT,
    role             TEXT,
    class            TEXT,                       -- care | technical | event (cancellations)
    type             TEXT,
    test             BOOLEAN NOT NULL DEFAULT FALSE,
    occurred_at      DOUBLE PRECISION,
    received_at      DOUBLE PRECISION,
    ack_received_at  DOUBLE PRECISION,
    ack_accepted_at  DOUBLE PRECISION,
    ack_resolved_at  DOUBLE PRECISION
);
CREATE INDEX alarm_log_time ON alarm_log(occurred_at);
CREATE INDEX alarm_log_gateway ON alarm_log(gateway_id);

CREATE TABLE update_report (
    id          {{pk}},
    gateway_id  TEXT NOT NULL,
    device_id   TEXT,
    deployment  TEXT NOT NULL,
    status      TEXT NOT NULL,                   -- error | ok
    phase       TEXT,
    error       TEXT,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX update_report_time ON update_report(received_at);

CREATE TABLE benefit_baseline (
    municipality_id         TEXT PRIMARY KEY REFERENCES municipality(id),
    night_checks_per_night  DOUBLE PRECISION NOT NULL,  -- physical checks one night-supervised home needed before
    updated_at              DOUBLE PRECISION NOT NULL,
    updated_by              TEXT NOT NULL
);
