"""InstallationRepo on the fleet database (fleet.store Tx; tables from migrations 0201, 0202).

One module for both engines; the only engine-specific query lists the text columns for
the purge proof (``sqlite_master`` / ``information_schema``), chosen by ``tx.dialect``.
"""
from __future__ import annotations

from typing import Collection

from ..access._sql import SqlAuditLog
from ..store import Tx, in_scope
from ._model import ACTIVE_STATUSES, Row

_COLUMNS = ("code", "municipality_id", "status", "resident_ref", "location_id", "kit_id", "gateway_id", "checklist",
            "consent_kind", "consent_ref", "consent_date", "routing", "created_at", "created_by", "updated_at",
            "updated_by", "version", "commissioned_at", "deinstalled_at", "purge_due_at", "purged_at")


class SqlInstallationRepo(SqlAuditLog):
    def installation(self, code: str) -> Row | None:
        return self.tx.one("SELECT * FROM installation WHERE code = ?", (code,))

    def add_installation(self, row: Row) -> int:
        cols = [c for c in _COLUMNS if c in row]
        return int(self.tx.scalar(f"INSERT INTO installation ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                                  " RETURNING id", [row[c] for c in cols]))

    def update_installation(self, installation_id: int, changes: Row, *, expected_version: int | None = None,
                            bump_version: bool = True) -> int:
        bad = set(changes) - set(_COLUMNS)
        if bad:
            raise ValueError(f"not an installation column: {', '.join(sorted(bad))}")
        sets = ", ".join(f"{k} = ?" for k in changes) + (", version = version + 1" if bump_version else "")
        if expected_version is None:
            return self.tx.execute(f"UPDATE installation SET {sets} WHERE id = ?", (*changes.values(), installation_id))
        return self.tx.execute(f"UPDATE installation SET {sets} WHERE id = ? AND version = ?",
                               (*changes.values(), installation_id, expected_version))

    def installations(self, *, municipality: str | None, status: str | None, scope: Collection[str] | None,
                      limit: int) -> list[Row]:
        sc, params = in_scope("i.municipality_id", scope)
        where = [sc]
        for cond, val in (("i.municipality_id = ?", municipality), ("i.status = ?", status)):
            if val:
                where.append(cond)
                params.append(val)
        return self.tx.query("SELECT i.code, i.status, i.municipality_id AS municipality, l.code AS location,"
                             " k.code AS kit, i.gateway_id, i.version, i.updated_at FROM installation i"
                             " LEFT JOIN location l ON l.id = i.location_id LEFT JOIN kit k ON k.id = i.kit_id"
                             f" WHERE {' AND '.join(where)} ORDER BY i.code LIMIT ?", (*params, limit))

    def active_at(self, location_id: int, *, exclude_id: int) -> str | None:
        return self.tx.scalar("SELECT code FROM installation WHERE location_id = ? AND status IN (?, ?) AND id <> ?",
                              (location_id, *ACTIVE_STATUSES, exclude_id))

    def due_for_purge(self, at: float) -> list[Row]:
        return self.tx.query("SELECT * FROM installation WHERE status = 'deinstalled' AND purge_due_at <= ?", (at,))

    def add_test_alarm(self, installation_id: int, *, device_id: str, event_id: str, seen_at: float,
                       latency_ms: float | None, placement: int | None = None,
                       placement_expected: int | None = None) -> bool:
        values = (event_id, seen_at, latency_ms, placement, placement_expected)
        if self.tx.execute(
                "INSERT INTO installation_test_alarm (installation_id, device_id, event_id, seen_at, latency_ms,"
                " placement, placement_expected) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (installation_id, device_id) DO NOTHING", (installation_id, device_id, *values)) == 1:
            return True
        # a later test alarm of the device replaces the one kept (a redelivered or older one does not)
        self.tx.execute("UPDATE installation_test_alarm SET event_id = ?, seen_at = ?, latency_ms = ?, placement = ?,"
                        " placement_expected = ? WHERE installation_id = ? AND device_id = ? AND event_id <> ?"
                        " AND seen_at <= ?", (*values, installation_id, device_id, event_id, seen_at))
        return False

    def test_alarms(self, installation_id: int) -> list[Row]:
        return self.tx.query("SELECT device_id, event_id, seen_at, latency_ms, placement, placement_expected"
                             " FROM installation_test_alarm WHERE installation_id = ? ORDER BY device_id",
                             (installation_id,))

    def find_text(self, needle: str) -> tuple[int, list[tuple[str, str, int]]]:
        scanned, found = 0, []
        for table, cols in text_columns(self.tx):
            for col in cols:
                scanned += 1
                n = self.tx.scalar(f"SELECT count(*) FROM {table} WHERE {col} LIKE ?", (f"%{needle}%",))
                if n:
                    found.append((table, col, int(n)))
        return scanned, found


def text_columns(tx: Tx) -> list[tuple[str, list[str]]]:
    """Every TEXT column of every table: (table, [columns])."""
    if tx.dialect.is_sqlite:
        tables = [r["name"] for r in tx.query("SELECT name FROM sqlite_master WHERE type = 'table'"
                                              " AND name NOT LIKE 'sqlite_%'")]
        out = []
        for t in tables:
            cols = [c["name"] for c in tx.query(f"PRAGMA table_info({t})") if (c["type"] or "").upper() == "TEXT"]
            if cols:
                out.append((t, cols))
        return out
    rows = tx.query("SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND data_type = 'text' ORDER BY table_name, column_name")
    out_map: dict[str, list[str]] = {}
    for r in rows:
        out_map.setdefault(r["table_name"], []).append(r["column_name"])
    return list(out_map.items())


__all__ = ["SqlInstallationRepo", "text_columns"]
