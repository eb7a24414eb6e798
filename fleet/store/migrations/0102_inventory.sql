-- Inventory: device models, serial-numbered items, movement ledger, reorder points,
-- kit templates and kits, and the gateway_status table fleet-ops' monitoring writes.

CREATE TABLE device_model (
    code            TEXT PRIMARY KEY,            -- e.g. 'WT-BTN-2'
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('button', 'fall', 'bed', 'door', 'motion', 'gps', 'dispenser', 'health', 'gateway')),
    radio           TEXT NOT NULL,               -- 'ble', 'serial', 'ble+serial', 'lte', 'wifi+lte', ...
    firmware_family TEXT NOT NULL                -- e.g. 'wt-sensor', 'wt-gateway', 'vendor-x'
);

CREATE TABLE item (
    id              {{pk}},
    serial          TEXT NOT NULL UNIQUE,
    model_code      TEXT NOT NULL REFERENCES device_model(code),
    hw_id           TEXT UNIQUE,                 -- device id (12 hex, docs/protocol.md) or gateway id 'gw-…'
    state           TEXT NOT NULL,               -- fleet.inventory.ItemState
    location_id     BIGINT REFERENCES location(id),
    kit_id          BIGINT,
    installation_id BIGINT,
    updated_at      DOUBLE PRECISION NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX item_stock ON item(location_id, model_code, state);
CREATE INDEX item_kit ON item(kit_id);
CREATE INDEX item_installation ON item(installation_id);

-- Append-only ledger of every state change / movement (who, when, why).
CREATE TABLE item_movement (
    id               {{pk}},
    item_id          BIGINT NOT NULL REFERENCES item(id),
    at               DOUBLE PRECISION NOT NULL,
    actor            TEXT NOT NULL,
    from_state       TEXT,
    to_state         TEXT NOT NULL,
    from_location_id BIGINT,
    to_location_id   BIGINT,
    reason           TEXT NOT NULL,
    ref              TEXT                         -- delivery note, kit code, installation code, RMA …
);
CREATE INDEX item_movement_item ON item_movement(item_id, id);

CREATE TABLE reorder_point (
    location_id BIGINT NOT NULL REFERENCES location(id),
    model_code  TEXT NOT NULL REFERENCES device_model(code),
    min_qty     INTEGER NOT NULL CHECK (min_qty >= 0),
    PRIMARY KEY (location_id, model_code)
);

CREATE TABLE kit_template (
    code TEXT PRIMARY KEY,                       -- e.g. 'safety-alarm'
    name TEXT NOT NULL
);

CREATE TABLE kit_template_part (
    template_code TEXT NOT NULL REFERENCES kit_template(code),
    role          TEXT NOT NULL,
    qty           INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (template_code, role)
);

CREATE TABLE kit (
    id            {{pk}},
    code          TEXT NOT NULL UNIQUE,
    template_code TEXT NOT NULL REFERENCES kit_template(code),
    state         TEXT NOT NULL CHECK (state IN ('assembled', 'installed', 'dismantled')),
    location_id   BIGINT REFERENCES location(id),
    created_at    DOUBLE PRECISION NOT NULL,
    created_by    TEXT NOT NULL
);

-- Written by fleet-ops monitoring (wt.state/1 and wt.health/1), read by `fleet offline`.
CREATE TABLE gateway_status (
    gateway_id     TEXT PRIMARY KEY,             -- equals item.hw_id of the gateway item
    last_seen      DOUBLE PRECISION,
    online         BOOLEAN NOT NULL DEFAULT FALSE,
    version        TEXT,
    config_version BIGINT
);
CREATE INDEX gateway_status_last_seen ON gateway_status(last_seen);
