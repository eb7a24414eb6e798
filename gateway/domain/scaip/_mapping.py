"""Every gateway :class:`EventCode` → one SCAIP report (``mty``/``dty``/``stc``/``lco``/``dco``).

ONE table, :data:`EVENT_MAP`; ``gateway/tests/test_scaip_mapping.py`` checks that every
``EventCode`` has a row, that alarm rows are exactly the alarm codes, and that
docs/scaip.md shows :func:`mapping_table_markdown` verbatim.

Row kinds (what the route does with the report):

- ``alarm``: sent at once, never behind anything; escalated to the other route when the
  centre does not answer ``snu`` 0 in time. Exactly the codes whose ``EventClass`` is a
  care or technical alarm.
- ``follow-up``: cancels and restorals (``0019``, ``0094``, ``0086``, ``0124``…): the centre
  needs them to close what an alarm opened; always sent, in journal order, not escalated.
- ``info``: state changes (bed in/out, door open, positions…): sent only when the route is
  configured to send information messages (``mty=IN``).

``dty`` "by role" means the reporting device's own type (:data:`ROLE_DTY`): a low battery
of the fall sensor is ``0005``/``0016``, of the button ``0003``/``0016``.
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.domain.model import Event, EventCode, Role
from gateway.domain.scaip._codes import (
    DeviceComponent,
    DeviceType,
    HeartbeatOption,
    LocationCode,
    MessageType,
    StatusCode,
)
from gateway.domain.scaip._gga import gga_sentence, geo_text, iso_utc
from gateway.domain.scaip._xml import GeoLocation, ScaipRequest


class ReportKind(enum.Enum):
    ALARM = "alarm"
    FOLLOW_UP = "follow-up"
    INFO = "info"


@dataclass(frozen=True)
class Row:
    kind: ReportKind
    mty: MessageType
    dty: DeviceType | None          # None: the device's own type by role (ROLE_DTY)
    stc: StatusCode
    lco: LocationCode | None = None
    dco: DeviceComponent | None = None
    geo: bool = False               # attach <lge> (WGS84 + GGA) from the event's lat/lon


_A, _F, _I = ReportKind.ALARM, ReportKind.FOLLOW_UP, ReportKind.INFO
_ME, _IN = MessageType.ALARM, MessageType.INFO
D, S, L = DeviceType, StatusCode, LocationCode

EVENT_MAP: dict[EventCode, Row] = {
    # care: the people
    EventCode.BUTTON_PRESS: Row(_A, _ME, D.PERSONAL_TRIGGER, S.MANUAL_ALARM, dco=DeviceComponent.BUTTON_1),
    EventCode.BUTTON_CANCEL: Row(_F, _ME, D.PERSONAL_TRIGGER, S.CANCEL, dco=DeviceComponent.BUTTON_1),
    EventCode.FALL_DETECTED: Row(_A, _ME, D.FALL_DETECTOR, S.AUTOMATIC_ALARM),
    EventCode.FALL_CANCELLED: Row(_F, _ME, D.FALL_DETECTOR, S.CANCEL),
    EventCode.BED_SEIZURE: Row(_A, _ME, D.EPILEPSY_DETECTOR, S.AUTOMATIC_ALARM, L.BEDROOM),
    EventCode.BED_NOT_RETURNED: Row(_A, _ME, D.BED_MONITOR, S.TIME_OUT, L.BEDROOM),
    EventCode.DOOR_AT_NIGHT: Row(_A, _ME, D.DOOR_SENSOR, S.OPEN, L.FRONT_DOOR),
    EventCode.INACTIVITY: Row(_A, _ME, D.ACTIVITY_DETECTOR, S.TIME_OUT),
    EventCode.GEOFENCE_EXIT: Row(_A, _ME, D.TRACKING_DEVICE, S.AUTOMATIC_ALARM, L.GEO_FENCE, geo=True),
    EventCode.GEOFENCE_ENTER: Row(_F, _ME, D.TRACKING_DEVICE, S.RESTORAL, L.GEO_FENCE, geo=True),
    EventCode.DOSE_MISSED: Row(_A, _ME, D.PILL_DISPENSER, S.PILL_NOT_TAKEN, L.HOME),
    EventCode.MEASUREMENT_OUT_OF_RANGE: Row(_A, _ME, None, S.AUTOMATIC_ALARM),
    # technical: the equipment
    EventCode.LOW_BATTERY: Row(_A, _ME, None, S.BATTERY_LOW),
    EventCode.TAMPER: Row(_A, _ME, None, S.TAMPER_ALARM),
    EventCode.SELF_TEST_FAILED: Row(_A, _ME, None, S.FAILURE),
    EventCode.POWER_OFF: Row(_A, _ME, None, S.OFFLINE),
    EventCode.CHARGER_IDLE: Row(_A, _ME, None, S.TROUBLE),
    EventCode.SENSOR_FAULT: Row(_A, _ME, None, S.MALFUNCTION),
    EventCode.NOT_WORN: Row(_A, _ME, None, S.TROUBLE),
    EventCode.WORN_AGAIN: Row(_F, _ME, None, S.RESTORAL),
    EventCode.DISPENSER_TAMPER: Row(_A, _ME, D.PILL_DISPENSER, S.TAMPER_ALARM, L.HOME),
    EventCode.DISPENSER_ERROR: Row(_A, _ME, D.PILL_DISPENSER, S.MALFUNCTION, L.HOME),
    EventCode.DEVICE_SILENT: Row(_A, _ME, None, S.RADIO_TEST_MISSING),
    EventCode.DEVICE_RECOVERED: Row(_F, _ME, None, S.RADIO_TEST_RESTORED),
    EventCode.MAINS_LOST: Row(_A, _ME, D.LOCAL_UNIT, S.POWER_FAILURE, L.HOME),
    EventCode.MAINS_RESTORED: Row(_F, _ME, D.LOCAL_UNIT, S.POWER_RESTORED, L.HOME),
    EventCode.UPLINK_LOST: Row(_A, _ME, D.LINK_MONITOR, S.IP_LINK_FAILURE),
    EventCode.UPLINK_RESTORED: Row(_F, _ME, D.LINK_MONITOR, S.IP_LINK_RESTORED),
    EventCode.BLE_RECEIVER_FAULT: Row(_A, _ME, D.LOCAL_UNIT, S.MALFUNCTION),
    EventCode.BLE_RECEIVER_RESTORED: Row(_F, _ME, D.LOCAL_UNIT, S.RESTORAL),
    EventCode.JOURNAL_FAULT: Row(_A, _ME, D.LOCAL_UNIT, S.FAILURE),
    EventCode.JOURNAL_RECOVERED: Row(_A, _ME, D.LOCAL_UNIT, S.TROUBLE),
    EventCode.ALARM_UNACKNOWLEDGED: Row(_A, _ME, D.LOCAL_UNIT, S.TIME_OUT),
    # information: state changes and readings
    EventCode.BED_IN: Row(_I, _IN, D.BED_MONITOR, S.LYING_IN_BED, L.BEDROOM),
    EventCode.BED_OUT: Row(_I, _IN, D.BED_MONITOR, S.ABSENT, L.BEDROOM),
    EventCode.DOOR_OPEN: Row(_I, _IN, D.DOOR_SENSOR, S.OPEN, L.FRONT_DOOR),
    EventCode.DOOR_CLOSED: Row(_I, _IN, D.DOOR_SENSOR, S.CLOSED, L.FRONT_DOOR),
    EventCode.MOTION: Row(_I, _IN, D.ACTIVITY_DETECTOR, S.MOVEMENT),
    EventCode.GPS_POSITION: Row(_I, _IN, D.TRACKING_DEVICE, S.NORMAL_STATE, L.GPS_ATTACHED, geo=True),
    EventCode.GPS_NO_FIX: Row(_I, _IN, D.TRACKING_DEVICE, S.TROUBLE),
    EventCode.DOSE_DUE: Row(_I, _IN, D.PILL_DISPENSER, S.PILL_REMINDER, L.HOME),
    EventCode.DOSE_TAKEN: Row(_I, _IN, D.PILL_DISPENSER, S.PILL_TAKEN, L.HOME),
    EventCode.REFILL_DUE: Row(_I, _IN, D.PILL_DISPENSER, S.MAINTENANCE_NEEDED, L.HOME),
    EventCode.MEASUREMENT: Row(_I, _IN, None, S.NORMAL_STATE),
}

#: ``dty`` of rows that say "by role": the reporting device's own type.
ROLE_DTY: dict[Role, DeviceType] = {
    Role.BUTTON: D.PERSONAL_TRIGGER,
    Role.FALL: D.FALL_DETECTOR,
    Role.BED: D.BED_MONITOR,
    Role.DOOR: D.DOOR_SENSOR,
    Role.MOTION: D.ACTIVITY_DETECTOR,
    Role.GPS: D.TRACKING_DEVICE,
    Role.DISPENSER: D.PILL_DISPENSER,
    Role.HEALTH: D.HEART_RATE_MONITOR,
    Role.GATEWAY: D.LOCAL_UNIT,
}
UNKNOWN_ROLE_DTY = D.SYSTEM_MONITOR

_DTY_NAMES = {d: d.name.lower().replace("_", " ") for d in DeviceType}


def ref_for(event_id: str) -> str:
    """The SCAIP ``ref`` of an event: 16 hex digits of SHA-256(event_id).

    Deterministic, so every re-send — also after a restart, from the journal — carries
    the same ``ref`` and the centre can recognise a repeat; ``event_id`` itself is too long
    and has characters ``ref`` may not carry. Heartbeat refs start with ``hb`` (not hex),
    so the two never collide."""
    return hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:16]


def row_for(code: EventCode) -> Row:
    return EVENT_MAP[code]


def dty_for(event: Event) -> DeviceType:
    row = EVENT_MAP[event.code]
    if row.dty is not None:
        return row.dty
    return ROLE_DTY.get(event.role, UNKNOWN_ROLE_DTY) if event.role is not None else UNKNOWN_ROLE_DTY


def _num(data: dict[str, Any], key: str) -> float | None:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _geo(event: Event) -> GeoLocation | None:
    lat, lon = _num(event.data, "lat"), _num(event.data, "lon")
    if lat is None or lon is None:
        return None
    try:
        geo = geo_text(lat, lon)
    except ValueError:
        return None
    quality = _num(event.data, "fix_quality")
    gga = None
    if quality is None or quality > 0:
        sats = _num(event.data, "sats")
        gga = gga_sentence(lat, lon, at_epoch=event.occurred_at, alt_m=_num(event.data, "alt_m"),
                           fix_quality=int(quality) if quality is not None else 1,
                           sats=int(sats) if sats is not None else None)
    return GeoLocation(geo=geo, tim=iso_utc(event.occurred_at), gga=gga)


def _clip(text: str, n: int) -> str:
    cleaned = "".join(ch if ch >= " " else " " for ch in text)
    return cleaned[:n]


# fall alarm EVENT data "placement" (docs/protocol.md §2) -> the word in ``stt``
_PLACEMENT_WORDS = {0: "wrist", 1: "chest", 2: "waist"}


def _fall_detail(event: Event) -> str:
    """`` wrist 92%``: where a fall sensor is worn and the detector's confidence, for the
    operator (a fall at the wrist is judged differently from one at the waist). Empty for
    other events and for fall data without them (older firmware)."""
    if event.code not in (EventCode.FALL_DETECTED, EventCode.FALL_CANCELLED):
        return ""
    placement = event.data.get("placement")
    where = _PLACEMENT_WORDS.get(placement) if type(placement) is int else None
    conf = _num(event.data, "confidence")
    text = f" {where}" if where else ""
    if conf is not None and 0 < conf <= 100:
        text += f" {int(conf)}%"
    return text


def build_request(event: Event, *, cid: str, ref: str | None = None) -> ScaipRequest:
    """The ``<mrq>`` for one event. Free texts are clipped to their SCAIP limits here.

    ``did`` is the last 8 characters of the device id (``did`` holds 8; device ids are 12
    hex digits) and ``dte`` the whole pseudonymous id; ``stt`` names the event type
    (``TEST`` first for technicians' test alarms); ``lte`` the geofence zone."""
    row = EVENT_MAP[event.code]
    stt = ("TEST " if event.test else "") + event.code.type_name + _fall_detail(event)
    zone = event.data.get("zone")
    lte = _clip(f"zone {zone}", 32) if row.geo and zone not in (None, "") else None
    return ScaipRequest(
        ref=ref or ref_for(event.event_id),
        cid=cid,
        mty=row.mty.value,
        dty=dty_for(event).value,
        did=_clip(event.device_id[-8:], 8) or None,
        dco=row.dco.value if row.dco else None,
        dte=_clip(event.device_id, 32) or None,
        stc=row.stc.value,
        stt=_clip(stt, 32),
        lco=row.lco.value if row.lco else None,
        lte=lte,
        lge=_geo(event) if row.geo else None,
    )


def heartbeat_request(*, cid: str, ref: str, adjustable: bool) -> ScaipRequest:
    """``mty=PI`` from the local unit; ``hbo`` says whether the centre may set ``hbi``."""
    return ScaipRequest(ref=ref, cid=cid, mty=MessageType.HEARTBEAT.value, dty=D.LOCAL_UNIT.value,
                        hbo=(HeartbeatOption.ADJUSTABLE if adjustable else HeartbeatOption.FIXED).value)


def is_alarm_row(code: EventCode) -> bool:
    return EVENT_MAP[code].kind is ReportKind.ALARM


def mapping_table_markdown() -> str:
    """The table as docs/scaip.md shows it (a test keeps the two identical)."""
    lines = ["| event | kind | mty | dty | stc | lco | dco | lge |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for code in EventCode:
        r = EVENT_MAP[code]
        dty = f"{r.dty.value} {_DTY_NAMES[r.dty]}" if r.dty else "by role"
        stc = f"{r.stc.value} {r.stc.name.lower().replace('_', ' ')}"
        lco = f"{r.lco.value} {r.lco.name.lower().replace('_', ' ')}" if r.lco else ""
        dco = f"{r.dco.value} {r.dco.name.lower().replace('_', ' ')}" if r.dco else ""
        lines.append(f"| `{code.type_name}` | {r.kind.value} | {r.mty.value} | {dty} | {stc} | {lco} | {dco} "
                     f"| {'WGS84 + GGA' if r.geo else ''} |")
    return "\n".join(lines)


def role_table_markdown() -> str:
    lines = ["| role | dty |", "| --- | --- |"]
    for role, dty in ROLE_DTY.items():
        lines.append(f"| {role.name.lower()} | {dty.value} {_DTY_NAMES[dty]} |")
    lines.append(f"| (unknown) | {UNKNOWN_ROLE_DTY.value} {_DTY_NAMES[UNKNOWN_ROLE_DTY]} |")
    return "\n".join(lines)


__all__ = ["EVENT_MAP", "ROLE_DTY", "ReportKind", "Row", "build_request", "dty_for", "heartbeat_request",
           "is_alarm_row", "mapping_table_markdown", "ref_for", "role_table_markdown", "row_for"]
