-- Signed control messages (contracts/control.py, docs/mqtt.md "Signed control messages"):
-- the last sequence number the fleet signed for each gateway. Every fleet worker that signs
-- a config push or a command takes the next number here (fleet/control/_sql.py): one row
-- per gateway, updated atomically, so numbers for one gateway are strictly increasing across
-- workers; the gateway refuses a number at or below the highest it accepted.

CREATE TABLE control_seq (
    gateway_id TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL
);
