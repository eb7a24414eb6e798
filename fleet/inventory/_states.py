"""Item life cycle as a table of allowed transitions (the only place the rules live)."""
from __future__ import annotations

import enum

from ..errors import InvalidTransition


class ItemState(str, enum.Enum):
    RECEIVED = "received"        # delivered, not yet checked onto a shelf
    IN_STOCK = "in_stock"        # on a shelf in a warehouse or van
    IN_KIT = "in_kit"            # part of an assembled kit
    IN_TRANSIT = "in_transit"    # on its way to an installation or another store
    INSTALLED = "installed"      # in a home or institution room
    RETURNED = "returned"        # back from an installation
    CLEANING = "cleaning"
    TESTED = "tested"            # cleaned (or repaired) and passed its test
    REPAIR = "repair"            # at a repair vendor
    WRITTEN_OFF = "written_off"  # terminal


S = ItemState
# from-state -> allowed to-states. Initial states (new item): RECEIVED or IN_STOCK.
TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    S.RECEIVED: frozenset({S.IN_STOCK, S.REPAIR, S.WRITTEN_OFF}),
    S.IN_STOCK: frozenset({S.IN_KIT, S.IN_TRANSIT, S.REPAIR, S.WRITTEN_OFF}),
    S.IN_KIT: frozenset({S.IN_TRANSIT, S.IN_STOCK, S.INSTALLED}),
    S.IN_TRANSIT: frozenset({S.INSTALLED, S.IN_STOCK, S.IN_KIT, S.RETURNED}),
    S.INSTALLED: frozenset({S.RETURNED}),
    S.RETURNED: frozenset({S.CLEANING, S.REPAIR, S.WRITTEN_OFF}),
    S.CLEANING: frozenset({S.TESTED, S.REPAIR, S.WRITTEN_OFF}),
    S.TESTED: frozenset({S.IN_STOCK, S.REPAIR, S.WRITTEN_OFF}),
    S.REPAIR: frozenset({S.TESTED, S.RETURNED, S.WRITTEN_OFF}),
    S.WRITTEN_OFF: frozenset(),
}
INITIAL_STATES = frozenset({S.RECEIVED, S.IN_STOCK})
# States in which an item may change location without changing state (`fleet item move`).
MOVABLE_STATES = frozenset({S.RECEIVED, S.IN_STOCK, S.IN_KIT, S.IN_TRANSIT, S.RETURNED, S.CLEANING, S.TESTED, S.REPAIR})


def parse_state(value: str) -> ItemState:
    try:
        return ItemState(value.strip().lower().replace("-", "_"))
    except ValueError:
        raise InvalidTransition(
            f"unknown item state {value!r}; use one of {', '.join(s.value for s in ItemState)}", state=value
        ) from None


def check_transition(serial: str, current: ItemState, target: ItemState) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing (terminal state)"
        raise InvalidTransition(
            f"{serial}: cannot go from {current.value} to {target.value}; from {current.value} it can go to {allowed}",
            serial=serial, current=current.value, target=target.value,
        )


def transition_table_markdown() -> str:
    lines = ["| from | allowed next states |", "| --- | --- |"]
    for s, targets in TRANSITIONS.items():
        lines.append(f"| `{s.value}` | {', '.join(f'`{t.value}`' for t in sorted(targets, key=list(ItemState).index)) or '— (terminal)'} |")
    return "\n".join(lines)
