-- fleet-ops configuration: templates per scope, group membership, versions per gateway,
-- what each gateway reported as applied. JSON documents are TEXT (canonical JSON).

CREATE TABLE config_template (
    scope      TEXT NOT NULL CHECK (scope IN ('municipality', 'group', 'gateway', 'device')),
    scope_id   TEXT NOT NULL,               -- kommunenummer, group name, gateway id or device id
    body       TEXT NOT NULL,               -- JSON object (partial gateway config)
    updated_at DOUBLE PRECISION NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (scope, scope_id)
);

CREATE TABLE config_group (
    group_id        TEXT PRIMARY KEY,       -- e.g. 'oslo-night-supervision'
    municipality_id TEXT REFERENCES municipality(id),
    description     TEXT
);

-- Which group (and, when no installation says so, which municipality) a gateway belongs to.
CREATE TABLE config_gateway (
    gateway_id      TEXT PRIMARY KEY,
    group_id        TEXT REFERENCES config_group(group_id),
    municipality_id TEXT REFERENCES municipality(id)
);
CREATE INDEX config_gateway_group ON config_gateway(group_id);

CREATE TABLE config_version (
    gateway_id TEXT NOT NULL,
    version    BIGINT NOT NULL,             -- 1, 2, 3 ... per gateway, never reused
    hash       TEXT NOT NULL,               -- sha256:<hex> of the canonical JSON
    body       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    pushed_at  DOUBLE PRECISION,
    PRIMARY KEY (gateway_id, version)
);
CREATE INDEX config_version_hash ON config_version(gateway_id, hash);

CREATE TABLE config_applied (
    gateway_id  TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    error       TEXT,
    hash        TEXT,
    reported_at DOUBLE PRECISION NOT NULL
);
