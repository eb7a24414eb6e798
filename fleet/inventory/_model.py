"""Inventory records and the repository port the inventory service needs.

Rows are plain dicts with the keys of the tables (``item``, ``location``, ``device_model``,
``kit``): the CLI prints them and ``--json`` emits them as they are. Adapters:
:mod:`fleet.inventory._sql` (fleet.store, SQLite and PostgreSQL) and
:mod:`fleet.inventory._memory` (unit tests). A unique or foreign-key clash raises
:class:`fleet.errors.IntegrityViolation` in both.
"""
from __future__ import annotations

from typing import Any, Collection, Iterable, NamedTuple, Protocol

from ..access import AuditLog

Row = dict[str, Any]
Scope = Collection[str] | None      # an actor's municipalities; None = all

# Column order of the tuples given to insert_items / insert_movements (bulk loads).
ITEM_COLUMNS = ("id", "serial", "model_code", "hw_id", "state", "location_id", "updated_at", "version")
MOVEMENT_COLUMNS = ("item_id", "at", "actor", "from_state", "to_state", "from_location_id", "to_location_id",
                    "reason", "ref")


class NewItem(NamedTuple):
    """One item to register (a NamedTuple: cheap to build a million of)."""

    serial: str
    model_code: str
    hw_id: str | None = None
    line: int = 0            # source line (CSV import) for error messages


class InventoryRepo(AuditLog, Protocol):
    # -- catalog -----------------------------------------------------------------
    def add_municipality(self, mid: str, name: str) -> None: ...
    def municipalities(self) -> list[Row]:
        """``id, name`` ordered by id."""
    def location(self, code: str) -> Row | None: ...
    def location_by_id(self, location_id: int) -> Row | None: ...
    def add_location(self, code: str, kind: str, name: str, municipality_id: str | None,
                     parent_id: int | None) -> int: ...
    def locations(self, *, kind: str | None, municipality: str | None, scope: Scope) -> list[Row]:
        """``code, kind, name, municipality, parent`` (parent's code) ordered by code; a location
        without a municipality is visible in every scope."""
    def model(self, code: str) -> Row | None: ...
    def add_model(self, code: str, name: str, role: str, radio: str, firmware_family: str) -> None: ...
    def models(self) -> list[Row]: ...
    def model_roles(self) -> dict[str, str]:
        """model code -> role."""
    def set_reorder_point(self, location_id: int, model_code: str, min_qty: int) -> None: ...

    # -- items and the movement ledger -------------------------------------------
    def item(self, serial: str) -> Row | None: ...
    def item_by_hw_id(self, hw_id: str) -> Row | None: ...
    def item_detail(self, serial: str, hw_id: str) -> Row | None:
        """The item with this serial, else the one with this hardware id, in one read: the item's
        columns plus ``model_name, model_role, model_radio, model_firmware_family``, ``loc_id,
        loc_code, loc_kind, loc_municipality`` (None without a location), ``kit_code``,
        ``installation_code`` and, for a gateway with a status row, ``gw_id, gw_last_seen,
        gw_online, gw_version, gw_config_version`` (``gw_id`` None otherwise)."""
    def reserve_item_ids(self, n: int) -> int:
        """Reserve ``n`` consecutive item ids for a bulk load; return the first."""
    def insert_items(self, rows: Iterable[tuple]) -> None:
        """Bulk insert (ITEM_COLUMNS order); ``rows`` may be a generator that raises mid-way."""
    def insert_movements(self, rows: Iterable[tuple]) -> None:
        """Bulk append to the ledger (MOVEMENT_COLUMNS order)."""
    def add_movement(self, row: tuple) -> None:
        """Append one ledger row (MOVEMENT_COLUMNS order)."""
    def update_item(self, item_id: int, changes: dict[str, Any], *, expected_version: int | None = None,
                    bump_version: bool = True) -> int:
        """Apply ``changes``; with ``expected_version`` only if the row still has it. Returns rows changed."""
    def item_history(self, item_id: int, limit: int) -> list[Row]:
        """Newest first: ``at, actor, from_state, to_state, from_location, to_location, reason, ref``."""
    def items(self, *, location: str | None = None, model: str | None = None, state: str | None = None,
              scope: Scope = None, limit: int = 100) -> list[Row]:
        """``serial, hw_id, model, state, location, updated_at`` ordered by serial."""
    def existing(self, serials: list[str], hw_ids: list[str]) -> tuple[set[str], set[str]]:
        """Which of these serials and hardware ids are already registered."""
    def items_of_installation(self, installation_id: int) -> list[Row]:
        """``serial, hw_id, model_code, role, firmware_family, state`` ordered by role, serial."""
    def stock_levels(self, *, location: str | None, model: str | None, municipality: str | None,
                     scope: Scope) -> list[Row]:
        """Per stocking location (warehouse, van, repair vendor) and model with items or a reorder point:
        ``location, model, role, in_stock, in_kit, received, other, reorder_point``."""
    def installation_code(self, installation_id: int) -> str | None: ...
    def gateway_status(self, gateway_id: str) -> Row | None:
        """``last_seen, online, version, config_version`` as monitoring last wrote them."""

    # -- kits --------------------------------------------------------------------
    def add_kit_template(self, code: str, name: str, parts: dict[str, int]) -> None: ...
    def kit_template_parts(self, code: str) -> dict[str, int]:
        """role -> quantity; empty if there is no such template."""
    def kit_templates(self) -> list[Row]:
        """``code, name, parts`` (role -> qty) ordered by code."""
    def add_kit(self, code: str, template: str, state: str, location_id: int | None, *, at: float, by: str) -> int: ...
    def update_kit(self, kit_id: int, changes: dict[str, Any]) -> None: ...
    def kit(self, code: str) -> Row | None:
        """The kit row plus ``location`` (its location's code)."""
    def kit_code(self, kit_id: int) -> str | None: ...
    def kit_items(self, kit_id: int) -> list[Row]:
        """``serial, hw_id, model_code, role, state`` ordered by role, serial."""
    def kits(self, *, state: str | None) -> list[Row]:
        """``code, template, state, location, created_at, created_by`` ordered by code."""
