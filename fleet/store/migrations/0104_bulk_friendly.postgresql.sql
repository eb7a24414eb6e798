-- Bulk-load friendly indexes: most items are in no kit and no installation, so index
-- only the rows that are (partial indexes).
DROP INDEX item_kit;
CREATE INDEX item_kit ON item(kit_id) WHERE kit_id IS NOT NULL;
DROP INDEX item_installation;
CREATE INDEX item_installation ON item(installation_id) WHERE installation_id IS NOT NULL;
-- The ledger is written only by fleet.inventory in the same transaction as its item, and
-- is append-only; a per-row foreign-key trigger on it costs a million RI checks on a
-- million-item delivery (PostgreSQL runs RI checks row by row, also for COPY).
ALTER TABLE item_movement DROP CONSTRAINT item_movement_item_id_fkey;
