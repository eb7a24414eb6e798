"""The repository port the installation service needs.

An installation row is a dict with the columns of ``installation`` (migration 0201);
personal columns are listed in :data:`PERSONAL_COLUMNS`. Items, kits and locations are
reached through the inventory service, not through this port. Adapters:
:mod:`fleet.installations._sql` and :mod:`fleet.installations._memory`.
"""
from __future__ import annotations

from typing import Any, Collection, Protocol

from ..access import AuditLog

Row = dict[str, Any]
PERSONAL_COLUMNS = ("resident_ref", "checklist", "consent_kind", "consent_ref", "consent_date", "routing")
ACTIVE_STATUSES = ("commissioning", "active")


class InstallationRepo(AuditLog, Protocol):
    def installation(self, code: str) -> Row | None: ...
    def add_installation(self, row: Row) -> int:
        """Insert (every column but ``id``); return the new id."""
    def update_installation(self, installation_id: int, changes: Row, *, expected_version: int | None = None,
                            bump_version: bool = True) -> int:
        """Apply ``changes``; with ``expected_version`` only if the row still has it. Returns rows changed."""
    def installations(self, *, municipality: str | None, status: str | None, scope: Collection[str] | None,
                      limit: int) -> list[Row]:
        """``code, status, municipality, location, kit, gateway_id, version, updated_at`` ordered by code."""
    def active_at(self, location_id: int, *, exclude_id: int) -> str | None:
        """The code of another commissioning/active installation at this location, if any."""
    def due_for_purge(self, at: float) -> list[Row]:
        """Deinstalled installations whose ``purge_due_at`` has passed."""
    def add_test_alarm(self, installation_id: int, *, device_id: str, event_id: str, seen_at: float,
                       latency_ms: float | None, placement: int | None = None,
                       placement_expected: int | None = None) -> bool:
        """Record a device's test alarm: the first, or a later one (another event, seen no earlier)
        in place of the one kept — the row holds the device's latest. True if it was the first."""
    def test_alarms(self, installation_id: int) -> list[Row]:
        """``device_id, event_id, seen_at, latency_ms, placement, placement_expected`` ordered by device_id."""
    def find_text(self, needle: str) -> tuple[int, list[tuple[str, str, int]]]:
        """Search every stored text for ``needle``: (columns searched, [(table, column, rows found)])."""
