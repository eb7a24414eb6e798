"""Device roles: the one list of what a device is, shared by gateway, fleet and config.

The numeric values are wire values (the HELLO frame and the BLE device-type of
docs/protocol.md; ``firmware/lib/wire.py`` keeps the same table, docs/protocol-vectors.json
keeps both honest). The lower-case member names are the text form used in configuration
(``role = "button"``) and in MQTT payloads (``"role": "button"``).
"""
from __future__ import annotations

import enum


class Role(enum.IntEnum):
    """Device role (wire value in HELLO frames and BLE device-type)."""

    BUTTON = 1
    FALL = 2
    BED = 3
    DOOR = 4
    MOTION = 5
    GPS = 6
    DISPENSER = 7
    HEALTH = 8      # third-party BLE health device (GATT profiles)
    GATEWAY = 15    # events the gateway raises itself (rules, supervision)


__all__ = ["Role"]
