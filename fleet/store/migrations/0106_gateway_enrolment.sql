-- Gateway enrolment (fleet/enrolment): one-time codes a technician gives a gateway, and the
-- identity each gateway got by redeeming one. Codes are stored as sha256 only (shown once).

CREATE TABLE enrolment_code (
    code_hash       TEXT PRIMARY KEY,          -- sha256 hex of the normalised code
    gateway_id      TEXT NOT NULL,
    municipality_id TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    created_by      TEXT NOT NULL,
    expires_at      DOUBLE PRECISION NOT NULL,
    used_at         DOUBLE PRECISION,          -- single use: set once, in the redeeming transaction
    used_from       TEXT                       -- the redeeming peer's address
);
CREATE INDEX enrolment_code_gateway ON enrolment_code(gateway_id);

CREATE TABLE gateway_identity (
    gateway_id         TEXT PRIMARY KEY,
    x25519_public      TEXT NOT NULL,          -- base64 of the raw 32-byte key; device keys are sealed to it
    cert_serial        TEXT NOT NULL,          -- hex serial of the MQTT client certificate the fleet signed
    cert_fingerprint   TEXT NOT NULL,          -- sha256 of the certificate (DER)
    cert_not_after     DOUBLE PRECISION NOT NULL,
    mqtt_username      TEXT NOT NULL,
    mqtt_password_hash TEXT NOT NULL,          -- Mosquitto password-file hash ($7$ PBKDF2-SHA512); never the password
    enrolled_at        DOUBLE PRECISION NOT NULL,
    code_created_by    TEXT NOT NULL,          -- who made the code this gateway redeemed
    revoked_at         DOUBLE PRECISION
);
