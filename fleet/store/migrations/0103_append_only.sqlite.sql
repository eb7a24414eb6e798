-- The movement ledger and the audit log are append-only.
CREATE TRIGGER item_movement_no_update BEFORE UPDATE ON item_movement
BEGIN SELECT RAISE(ABORT, 'item_movement is append-only'); END;
CREATE TRIGGER item_movement_no_delete BEFORE DELETE ON item_movement
BEGIN SELECT RAISE(ABORT, 'item_movement is append-only'); END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
