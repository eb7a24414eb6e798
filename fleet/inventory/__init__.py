"""Inventory: device models, serial-numbered items, their states and places, the movement
ledger, stock levels and reorder points, kits, delivery-note import and scanner input."""
from ._csv_import import import_delivery_note, parse_delivery_note
from ._ids import normalise_hw_id, normalise_serial
from ._scanner import Scan, clean_scan
from ._service import (LOCATION_KINDS, ROLES, NewItem, add_kit_template, add_location, add_model,
                       add_municipality, assemble_kit, device_show, dismantle_kit, find_item, get_kit,
                       get_location, get_model, item_history, kit_template_parts, move, receive_items,
                       reorder_warnings, set_reorder_point, stock_levels, transition)
from ._states import (INITIAL_STATES, MOVABLE_STATES, TRANSITIONS, ItemState, check_transition, parse_state,
                      transition_table_markdown)

__all__ = [
    "INITIAL_STATES", "ItemState", "LOCATION_KINDS", "MOVABLE_STATES", "NewItem", "ROLES", "Scan",
    "TRANSITIONS", "add_kit_template", "add_location", "add_model", "add_municipality", "assemble_kit",
    "check_transition", "clean_scan", "device_show", "dismantle_kit", "find_item", "get_kit", "get_location",
    "get_model", "import_delivery_note", "item_history", "kit_template_parts", "move", "normalise_hw_id",
    "normalise_serial", "parse_delivery_note", "parse_state", "receive_items", "reorder_warnings",
    "set_reorder_point", "stock_levels", "transition", "transition_table_markdown",
]
