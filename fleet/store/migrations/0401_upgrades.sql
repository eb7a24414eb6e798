-- fleet-ops upgrades: trusted release keys, signed releases (artifact stored with them),
-- rollouts and the per-unit update state (fleet.upgrades.UnitState).

CREATE TABLE release_key (
    key_id     TEXT PRIMARY KEY,            -- first 16 hex of sha256(raw ed25519 public key)
    name       TEXT NOT NULL,
    public_pem TEXT NOT NULL,
    added_at   DOUBLE PRECISION NOT NULL,
    added_by   TEXT NOT NULL
);

CREATE TABLE release (
    release_id    TEXT PRIMARY KEY,         -- '<target>@<version>', e.g. 'fw-bed@1.3.0'
    target        TEXT NOT NULL,            -- 'gateway' or 'fw-<role>'
    version       TEXT NOT NULL,
    artifact_name TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    key_id        TEXT NOT NULL REFERENCES release_key(key_id),
    signed        TEXT NOT NULL,            -- the signed manifest JSON (fleet release sign output)
    artifact      {{blob}} NOT NULL,
    added_at      DOUBLE PRECISION NOT NULL,
    added_by      TEXT NOT NULL
);
CREATE INDEX release_target ON release(target, version);

CREATE TABLE rollout (
    rollout_id     TEXT PRIMARY KEY,
    release_id     TEXT NOT NULL REFERENCES release(release_id),
    previous_id    TEXT REFERENCES release(release_id),  -- what a rollback reinstalls
    state          TEXT NOT NULL,           -- fleet.upgrades.RolloutState
    wave           INTEGER NOT NULL DEFAULT 0,
    plan           TEXT NOT NULL,           -- JSON RolloutPlan
    halt_reason    TEXT,
    control        TEXT,                    -- operator request for the runner: pause/resume/abort/rollback
    created_at     DOUBLE PRECISION NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     DOUBLE PRECISION NOT NULL,
    runner_seen_at DOUBLE PRECISION
);

CREATE TABLE rollout_unit (
    rollout_id TEXT NOT NULL REFERENCES rollout(rollout_id),
    unit_key   TEXT NOT NULL,               -- gateway id, or '<gateway>/<device>'
    gateway_id TEXT NOT NULL,
    device_id  TEXT,
    wave       INTEGER NOT NULL,
    state      TEXT NOT NULL,               -- fleet.upgrades.UnitState
    attempts   INTEGER NOT NULL DEFAULT 0,
    sent_at    DOUBLE PRECISION,
    updated_at DOUBLE PRECISION,
    error      TEXT,
    PRIMARY KEY (rollout_id, unit_key)
);
CREATE INDEX rollout_unit_state ON rollout_unit(state, updated_at);
CREATE INDEX rollout_unit_gateway ON rollout_unit(gateway_id);
