"""The inventory over an open fleet.store transaction, for scripts (bench/fleet_scale.py).

Each function wires the SQL adapter to :class:`InventoryService` for one call, stamped
with the caller's ``at``. The CLI and the installations service use the service directly.
"""
from __future__ import annotations

from typing import Any, Callable

from ..access import Actor
from ..clock import FixedClock
from ..store import Store, Tx, sql_transactions
from ._csv_import import receive_delivery_note
from ._service import InventoryService
from ._sql import SqlInventoryRepo
from ._states import ItemState


def _svc(tx: Tx, at: float = 0.0) -> InventoryService:
    return InventoryService(SqlInventoryRepo(tx), FixedClock(at))


def add_municipality(tx: Tx, actor: Actor, mid: str, name: str, *, at: float) -> None:
    _svc(tx, at).add_municipality(actor, mid, name)


def add_location(tx: Tx, actor: Actor, code: str, kind: str, name: str | None = None, *, municipality: str | None,
                 parent: str | None = None, at: float) -> dict[str, Any]:
    return _svc(tx, at).add_location(actor, code, kind, name, municipality=municipality, parent=parent)


def add_model(tx: Tx, actor: Actor, code: str, name: str, role: str, radio: str, firmware_family: str, *,
              at: float) -> None:
    _svc(tx, at).add_model(actor, code, name, role, radio, firmware_family)


def device_show(tx: Tx, actor: Actor, key: str) -> dict[str, Any]:
    return _svc(tx).device_show(actor, key)


def import_delivery_note(store: Store, actor: Actor, text: str, location: str, *, at: float, ref: str | None = None,
                         state: ItemState = ItemState.IN_STOCK,
                         on_progress: Callable[[int], None] | None = None) -> int:
    """:func:`receive_delivery_note` on ``store`` (all lines or none)."""
    return receive_delivery_note(sql_transactions(store, SqlInventoryRepo), FixedClock(at), actor, text, location,
                                 ref=ref, state=state, on_progress=on_progress)
