-- Core: municipalities, locations, users and their scopes, login sessions, audit log.
-- Times are epoch seconds (DOUBLE PRECISION); JSON documents are TEXT.

CREATE TABLE municipality (
    id   TEXT PRIMARY KEY,            -- kommunenummer, e.g. '0301'
    name TEXT NOT NULL
);

CREATE TABLE location (
    id              {{pk}},
    code            TEXT NOT NULL UNIQUE,       -- e.g. 'WH-OSLO', 'VAN-07', 'HOME-0042', 'INST-01/R101'
    kind            TEXT NOT NULL CHECK (kind IN ('warehouse', 'van', 'home', 'institution', 'room', 'repair_vendor')),
    name            TEXT NOT NULL,
    municipality_id TEXT REFERENCES municipality(id),
    parent_id       BIGINT REFERENCES location(id),   -- room -> institution
    active          BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE INDEX location_parent ON location(parent_id);
CREATE INDEX location_municipality ON location(municipality_id, kind);

CREATE TABLE app_user (
    name               TEXT PRIMARY KEY,
    role               TEXT NOT NULL CHECK (role IN ('technician', 'support', 'logistics', 'admin', 'auditor')),
    password_hash      TEXT,                      -- scrypt; NULL = cannot log in with a password
    all_municipalities BOOLEAN NOT NULL DEFAULT FALSE,
    active             BOOLEAN NOT NULL DEFAULT TRUE,
    created_at         DOUBLE PRECISION NOT NULL
);

CREATE TABLE user_scope (
    user_name       TEXT NOT NULL REFERENCES app_user(name),
    municipality_id TEXT NOT NULL REFERENCES municipality(id),
    PRIMARY KEY (user_name, municipality_id)
);

CREATE TABLE auth_session (
    token_hash TEXT PRIMARY KEY,                  -- sha256 of the bearer token; the token itself is never stored
    user_name  TEXT NOT NULL REFERENCES app_user(name),
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

-- Append-only (enforced by triggers in 0103): every change and every read of personal data.
CREATE TABLE audit_log (
    id              {{pk}},
    at              DOUBLE PRECISION NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,               -- e.g. 'item.move', 'installation.read'
    entity          TEXT NOT NULL,               -- 'item', 'installation', 'user', ...
    entity_id       TEXT,
    municipality_id TEXT,
    personal        BOOLEAN NOT NULL DEFAULT FALSE,   -- touched personal data
    detail          TEXT                              -- JSON; never contains personal data itself
);
CREATE INDEX audit_entity ON audit_log(entity, entity_id);
CREATE INDEX audit_at ON audit_log(at);
