"""Validation of serial numbers, hardware ids and codes (pure; errors name the fix)."""
from __future__ import annotations

import re

from ..errors import ValidationError

_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")
_SERIAL_FAST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")
_HEX12 = re.compile(r"^[0-9a-f]{12}$")
_GW = re.compile(r"^[a-z0-9-]{3,64}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")


def normalise_serial(raw: str) -> str:
    s = raw if _SERIAL_FAST.match(raw) else raw.strip()
    if not _SERIAL.match(s):
        raise ValidationError(
            f"serial {raw!r} is not valid; use 3-64 characters: letters, digits, '.', '_', '/', '-'",
            field="serial", value=raw)
    return s


def normalise_hw_id(raw: str | None, *, role: str) -> str | None:
    """Device id: 12 lower-case hex (BLE MAC / base MAC, ``:``/``-`` allowed on input).

    Gateways: ``gw-`` + 12 hex, or a pseudonymous id ``[a-z0-9-]{3,64}``; 12 bare hex digits
    are prefixed with ``gw-``.
    """
    if raw is None:
        return None
    if role != "gateway" and len(raw) == 12 and _HEX12.match(raw):
        return raw  # fast path: already canonical (bulk imports)
    if not raw.strip():
        return None
    s = raw.strip().lower()
    compact = s.replace(":", "").replace("-", "") if re.fullmatch(r"[0-9a-f]{2}([:-][0-9a-f]{2}){5}", s) else s
    if role == "gateway":
        if _HEX12.match(compact):
            return "gw-" + compact
        if _GW.match(s):
            return s
        raise ValidationError(
            f"gateway id {raw!r} is not valid; use gw- followed by 12 hex digits (gw-a4c1380a1b2c) or a "
            "pseudonymous id of 3-64 characters a-z, 0-9, '-'", field="hw_id", value=raw)
    if not _HEX12.match(compact):
        raise ValidationError(
            f"device id {raw!r} is not valid; use the 12-hex-digit BLE MAC / device id, e.g. a4c1380a1b2c "
            "or A4:C1:38:0A:1B:2C", field="hw_id", value=raw)
    return compact


def check_code(raw: str, what: str) -> str:
    s = raw.strip()
    if not _CODE.match(s):
        raise ValidationError(f"{what} {raw!r} is not valid; use letters, digits, '.', '_', '/', '-'", field=what)
    return s
