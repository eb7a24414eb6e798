-- Installations: a kit at a home or institution room for one pseudonymous resident.
-- Personal data columns (resident_ref, checklist, consent_*, routing) are nulled by the
-- purge after deinstallation; `fleet privacy verify` proves nothing remains.

CREATE TABLE installation (
    id              {{pk}},
    code            TEXT NOT NULL UNIQUE,        -- 'I-000123'
    municipality_id TEXT NOT NULL REFERENCES municipality(id),
    status          TEXT NOT NULL CHECK (status IN ('draft', 'commissioning', 'active', 'deinstalled', 'purged')),
    resident_ref    TEXT,                        -- pseudonymous id, never a name or national id
    location_id     BIGINT REFERENCES location(id),
    kit_id          BIGINT REFERENCES kit(id),
    gateway_id      TEXT,
    checklist       TEXT,                        -- JSON: seed checklist answers
    consent_kind    TEXT CHECK (consent_kind IN ('consent', 'capacity_assessment')),
    consent_ref     TEXT,
    consent_date    TEXT,                        -- YYYY-MM-DD
    routing         TEXT,                        -- JSON: alarm routing chain
    created_at      DOUBLE PRECISION NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    updated_by      TEXT NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1,  -- optimistic concurrency
    commissioned_at DOUBLE PRECISION,
    deinstalled_at  DOUBLE PRECISION,
    purge_due_at    DOUBLE PRECISION,
    purged_at       DOUBLE PRECISION
);
CREATE INDEX installation_resident ON installation(resident_ref);
CREATE INDEX installation_municipality ON installation(municipality_id, status);

-- Test alarms seen at the platform during commissioning (one per device).
CREATE TABLE installation_test_alarm (
    installation_id BIGINT NOT NULL REFERENCES installation(id),
    device_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    seen_at         DOUBLE PRECISION NOT NULL,
    latency_ms      DOUBLE PRECISION,
    PRIMARY KEY (installation_id, device_id)
);
