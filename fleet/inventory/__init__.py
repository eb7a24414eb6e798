"""Inventory: device models, serial-numbered items, their states and places, the movement
ledger, stock levels and reorder points, kits, delivery-note import and scanner input.

Service over a repository port (the fleet/config pattern): :class:`InventoryService` over
an :class:`InventoryRepo`; SQL adapter in :mod:`fleet.inventory._sql` (SQLite and
PostgreSQL through fleet.store), in-memory fake :class:`MemoryInventoryRepo`. The
functions from ``_scripts`` run one service call inside a caller's transaction.
"""
from ._csv_import import explain_clash, iter_delivery_note, parse_delivery_note, receive_delivery_note
from ._ids import normalise_hw_id, normalise_serial
from ._memory import MemoryInventoryRepo
from ._model import ITEM_COLUMNS, MOVEMENT_COLUMNS, InventoryRepo, NewItem
from ._scanner import Scan, clean_scan
from ._scripts import add_location, add_model, add_municipality, device_show, import_delivery_note
from ._service import KEEP, LOCATION_KINDS, ROLES, InventoryService
from ._states import (INITIAL_STATES, MOVABLE_STATES, TRANSITIONS, ItemState, check_transition, parse_state,
                      transition_table_markdown)

__all__ = [
    "INITIAL_STATES", "ITEM_COLUMNS", "InventoryRepo", "InventoryService", "ItemState", "KEEP", "LOCATION_KINDS",
    "MOVABLE_STATES", "MOVEMENT_COLUMNS", "MemoryInventoryRepo", "NewItem", "ROLES", "Scan", "TRANSITIONS",
    "add_location", "add_model", "add_municipality", "check_transition", "clean_scan", "device_show",
    "explain_clash", "import_delivery_note", "iter_delivery_note", "normalise_hw_id", "normalise_serial",
    "parse_delivery_note", "parse_state", "receive_delivery_note", "transition_table_markdown",
]
