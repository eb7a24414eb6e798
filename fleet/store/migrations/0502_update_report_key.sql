-- A redelivered or retried cmd/result is stored once: key update reports by (cmd_id, status).
ALTER TABLE update_report ADD COLUMN cmd_id TEXT;
CREATE UNIQUE INDEX update_report_cmd ON update_report(cmd_id, status);
