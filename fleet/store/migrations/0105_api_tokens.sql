-- Fleet service authentication: long-lived scoped API tokens, login throttling, password age.
-- Tokens are stored as sha256 only (like auth_session); the token itself is shown once.

CREATE TABLE api_token (
    id             {{pk}},
    token_hash     TEXT NOT NULL UNIQUE,
    user_name      TEXT NOT NULL REFERENCES app_user(name),
    name           TEXT NOT NULL,                -- what it is for, e.g. 'response-centre-sync'
    permissions    TEXT,                         -- JSON list of permission values; NULL = the user's whole role
    municipalities TEXT,                         -- JSON list; NULL = the user's whole scope
    created_at     DOUBLE PRECISION NOT NULL,
    created_by     TEXT NOT NULL,
    expires_at     DOUBLE PRECISION,             -- NULL = until revoked
    revoked_at     DOUBLE PRECISION
);
CREATE INDEX api_token_user ON api_token(user_name);

-- Failed logins per key ('user:<name>' or 'addr:<source address>') within a window, and the
-- back-off lock they earned. Unknown user names are counted exactly like known ones.
CREATE TABLE auth_throttle (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    first_at     DOUBLE PRECISION NOT NULL,
    locked_until DOUBLE PRECISION
);

ALTER TABLE app_user ADD COLUMN password_changed_at DOUBLE PRECISION;
CREATE INDEX auth_session_user ON auth_session(user_name);
