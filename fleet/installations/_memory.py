"""In-memory InstallationRepo: the fake for unit tests (same contract as the SQL adapter).

It extends :class:`~fleet.inventory.MemoryInventoryRepo`: one fake database serves both the
installation service and the inventory service it uses, as one SQL database would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection

from ..errors import IntegrityViolation
from ..inventory import MemoryInventoryRepo
from ._model import ACTIVE_STATUSES, Row


@dataclass
class MemoryInstallationRepo(MemoryInventoryRepo):
    installation_rows: dict[int, Row] = field(default_factory=dict)
    alarms: dict[tuple[int, str], Row] = field(default_factory=dict)

    def installation(self, code: str) -> Row | None:
        return next((dict(r) for r in self.installation_rows.values() if r["code"] == code), None)

    def add_installation(self, row: Row) -> int:
        if self.installation(row["code"]) is not None:
            raise IntegrityViolation(f"installation {row['code']} exists", constraint="installation_code_key")
        iid = self._new_id("installation")
        self.installation_rows[iid] = {"commissioned_at": None, "deinstalled_at": None, "purge_due_at": None,
                                       "purged_at": None, **row, "id": iid}
        self.installation_codes[iid] = row["code"]
        return iid

    def update_installation(self, installation_id: int, changes: Row, *, expected_version: int | None = None,
                            bump_version: bool = True) -> int:
        r = self.installation_rows.get(installation_id)
        if r is None or (expected_version is not None and r["version"] != expected_version):
            return 0
        r.update(changes)
        if bump_version:
            r["version"] += 1
        self.installation_codes[installation_id] = r["code"]
        return 1

    def installations(self, *, municipality: str | None, status: str | None, scope: Collection[str] | None,
                      limit: int) -> list[Row]:
        out = []
        for r in sorted(self.installation_rows.values(), key=lambda r: r["code"]):
            if ((scope is not None and r["municipality_id"] not in scope)
                    or (municipality and r["municipality_id"] != municipality) or (status and r["status"] != status)):
                continue
            out.append({"code": r["code"], "status": r["status"], "municipality": r["municipality_id"],
                        "location": self._code_of(r["location_id"]),
                        "kit": self.kit_code(r["kit_id"]) if r["kit_id"] else None, "gateway_id": r["gateway_id"],
                        "version": r["version"], "updated_at": r["updated_at"]})
        return out[:limit]

    def active_at(self, location_id: int, *, exclude_id: int) -> str | None:
        return next((r["code"] for r in self.installation_rows.values() if r["location_id"] == location_id
                     and r["status"] in ACTIVE_STATUSES and r["id"] != exclude_id), None)

    def due_for_purge(self, at: float) -> list[Row]:
        return [dict(r) for r in self.installation_rows.values()
                if r["status"] == "deinstalled" and r["purge_due_at"] <= at]

    def add_test_alarm(self, installation_id: int, *, device_id: str, event_id: str, seen_at: float,
                       latency_ms: float | None, placement: int | None = None,
                       placement_expected: int | None = None) -> bool:
        row = {"device_id": device_id, "event_id": event_id, "seen_at": seen_at, "latency_ms": latency_ms,
               "placement": placement, "placement_expected": placement_expected}
        kept = self.alarms.get((installation_id, device_id))
        if kept is None:
            self.alarms[(installation_id, device_id)] = row
            return True
        if kept["event_id"] != event_id and kept["seen_at"] <= seen_at:     # the latest is kept
            self.alarms[(installation_id, device_id)] = row
        return False

    def test_alarms(self, installation_id: int) -> list[Row]:
        return [dict(a) for (iid, dev), a in sorted(self.alarms.items()) if iid == installation_id]

    def find_text(self, needle: str) -> tuple[int, list[tuple[str, str, int]]]:
        tables: dict[str, list[dict[str, Any]]] = {
            "installation": list(self.installation_rows.values()), "audit_log": self.audit_log,
            "item": list(self.item_rows.values()), "item_movement": self.movements,
            "location": list(self.location_rows.values()), "kit": list(self.kit_rows.values())}
        scanned, found = 0, []
        for table, rows in tables.items():
            cols = sorted({k for r in rows for k, v in r.items() if isinstance(v, str)})
            for col in cols:
                scanned += 1
                n = sum(1 for r in rows if isinstance(r.get(col), str) and needle in r[col])
                if n:
                    found.append((table, col, n))
        return scanned, found
