"""EVENT payload (docs/protocol.md §2): ``code u8, age_ms u32, data…``.

``data`` decodes to a dict with the field names of §2. GPS positions decode to ``lat`` /
``lon`` in degrees (float, from the wire's ``lat_e7`` / ``lon_e7``), as docs/mqtt.md shows;
every other field keeps its wire name and integer value.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from gateway.codec._result import CodecError, Rejection
from gateway.codec.enums import RejectReason
from gateway.domain.model import EventCode

# code -> (struct format of data, field names). Codes absent here are not valid on the wire.
_NONE: tuple[str, tuple[str, ...]] = ("", ())
_FALL = ("<HBB", ("peak_cg", "placement", "confidence"))
# Shorter layouts of older firmware, still accepted (and encoded when the field is absent)
_OLDER: dict[EventCode, tuple[str, tuple[str, ...]]] = {
    EventCode.FALL_DETECTED: ("<HB", ("peak_cg", "placement")),     # before confidence
    EventCode.FALL_CANCELLED: ("<HB", ("peak_cg", "placement")),
}
_GPS = ("<iihBBB", ("lat_e7", "lon_e7", "alt_m", "fix_quality", "sats", "zone"))
_DOSE = ("<BH", ("slot", "scheduled_min"))

EVENT_DATA: dict[EventCode, tuple[str, tuple[str, ...]]] = {
    EventCode.BUTTON_PRESS: _NONE,
    EventCode.BUTTON_CANCEL: _NONE,
    EventCode.FALL_DETECTED: _FALL,
    EventCode.FALL_CANCELLED: _FALL,
    EventCode.BED_IN: _NONE,
    EventCode.BED_OUT: _NONE,
    EventCode.BED_SEIZURE: _NONE,
    EventCode.DOOR_OPEN: _NONE,
    EventCode.DOOR_CLOSED: _NONE,
    EventCode.MOTION: _NONE,
    EventCode.GPS_POSITION: _GPS,
    EventCode.GEOFENCE_EXIT: _GPS,
    EventCode.GEOFENCE_ENTER: _GPS,
    EventCode.GPS_NO_FIX: _NONE,
    EventCode.DOSE_TAKEN: _DOSE,
    EventCode.DOSE_MISSED: _DOSE,
    EventCode.REFILL_DUE: ("<B", ("doses_left",)),
    EventCode.DISPENSER_TAMPER: _NONE,
    EventCode.DISPENSER_ERROR: ("<B", ("error",)),
    EventCode.DOSE_DUE: _DOSE,
    EventCode.LOW_BATTERY: ("<BH", ("battery_pct", "battery_mv")),
    EventCode.TAMPER: _NONE,
    EventCode.SELF_TEST_FAILED: ("<B", ("check",)),
    EventCode.POWER_OFF: ("<B", ("reason",)),
    EventCode.CHARGER_IDLE: ("<H", ("hours",)),
    EventCode.SENSOR_FAULT: ("<B", ("fault",)),
    EventCode.NOT_WORN: ("<H", ("minutes",)),
    EventCode.WORN_AGAIN: ("<H", ("minutes",)),
}

WIRE_EVENT_CODES = frozenset(EVENT_DATA)


@dataclass(frozen=True)
class EventPayload:
    """Decoded EVENT payload. ``age_ms`` is None for BTHome raw objects (no age on air)."""

    code: EventCode
    age_ms: int | None
    data: dict[str, Any] = field(default_factory=dict)


def _wire_fields(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for deg, e7 in (("lat", "lat_e7"), ("lon", "lon_e7")):
        if deg in out and e7 not in out:
            out[e7] = round(float(out.pop(deg)) * 1e7)
    return out


def decode_event_data(code_byte: int, data: bytes) -> EventPayload | Rejection:
    """Decode ``code`` + data (no age). Never raises."""
    try:
        code = EventCode(code_byte)
    except ValueError:
        return Rejection(RejectReason.UNKNOWN_CODE, f"event code 0x{code_byte:02x} is not in docs/protocol.md §2")
    spec = EVENT_DATA.get(code)
    if spec is None:
        return Rejection(RejectReason.UNKNOWN_CODE, f"event code 0x{code_byte:02x} ({code.type_name}) is gateway-internal, never on the wire")
    fmt, names = spec
    size = struct.calcsize(fmt) if fmt else 0
    older = _OLDER.get(code)
    if len(data) != size and older is not None and len(data) == struct.calcsize(older[0]):
        fmt, names = older
        size = len(data)
    if len(data) != size:
        alt = f" (or {struct.calcsize(older[0])}, older firmware)" if older is not None else ""
        return Rejection(RejectReason.BAD_PAYLOAD, f"{code.type_name} data must be {size} bytes{alt}, got {len(data)}")
    values = struct.unpack(fmt, data) if fmt else ()
    fields: dict[str, Any] = dict(zip(names, values))
    if "lat_e7" in fields:
        fields["lat"] = fields.pop("lat_e7") / 1e7
        fields["lon"] = fields.pop("lon_e7") / 1e7
        fields = {k: fields[k] for k in ("lat", "lon", "alt_m", "fix_quality", "sats", "zone")}
    return EventPayload(code, None, fields)


def decode_event_payload(payload: bytes) -> EventPayload | Rejection:
    """Decode an EVENT frame payload. Never raises."""
    if len(payload) < 5:
        return Rejection(RejectReason.BAD_PAYLOAD, f"EVENT payload needs at least 5 bytes (code u8, age_ms u32), got {len(payload)}")
    (age_ms,) = struct.unpack_from("<I", payload, 1)
    result = decode_event_data(payload[0], payload[5:])
    if isinstance(result, Rejection):
        return result
    return EventPayload(result.code, age_ms, result.data)


def encode_event_data(code: EventCode, data: dict[str, Any] | None = None) -> bytes:
    """``code u8`` + data bytes (raises ValueError/KeyError on a bad dict: encoders are for trusted input)."""
    spec = EVENT_DATA.get(EventCode(code))
    if spec is None:
        raise CodecError(f"event code {code!r} is not valid on the wire")
    fmt, names = spec
    fields = _wire_fields(data or {})
    older = _OLDER.get(EventCode(code))
    if older is not None and any(n not in fields for n in names) and all(n in fields for n in older[1]):
        fmt, names = older
    body = struct.pack(fmt, *(int(fields[n]) for n in names)) if fmt else b""
    return bytes([int(code)]) + body


def encode_event_payload(event: EventPayload) -> bytes:
    blob = encode_event_data(event.code, event.data)
    return blob[:1] + struct.pack("<I", event.age_ms or 0) + blob[1:]
