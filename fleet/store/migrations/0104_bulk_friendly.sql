-- Bulk-load friendly indexes: most items are in no kit and no installation, so index
-- only the rows that are (partial indexes; both engines support them).
DROP INDEX item_kit;
CREATE INDEX item_kit ON item(kit_id) WHERE kit_id IS NOT NULL;
DROP INDEX item_installation;
CREATE INDEX item_installation ON item(installation_id) WHERE installation_id IS NOT NULL;
