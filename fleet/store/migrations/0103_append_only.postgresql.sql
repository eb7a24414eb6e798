-- The movement ledger and the audit log are append-only.
CREATE FUNCTION fleet_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER item_movement_append_only BEFORE UPDATE OR DELETE ON item_movement
    FOR EACH ROW EXECUTE FUNCTION fleet_append_only();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION fleet_append_only();
