"""Domain vocabulary shared by codec, journal, rules and uplink (no I/O, no libraries).

The numeric codes are the wire values of docs/protocol.md; the string names are the
``type`` values of the MQTT payloads in docs/mqtt.md. Firmware keeps the same table in
``firmware/lib/wire.py``; docs/protocol-vectors.json keeps both honest.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from contracts.roles import Role  # noqa: F401 - re-exported; device roles are a shared contract (contracts/roles.py)


class EventClass(enum.Enum):
    """Who must react. Care and technical alarms have different recipients."""

    CARE_ALARM = "care"          # a person may need help now
    TECHNICAL_ALARM = "technical"  # equipment problem that endangers protection
    EVENT = "event"              # state change / telemetry, no alarm by itself


class EventCode(enum.IntEnum):
    """Event codes carried in EVENT frames (one byte)."""

    BUTTON_PRESS = 0x01
    BUTTON_CANCEL = 0x02
    FALL_DETECTED = 0x10
    FALL_CANCELLED = 0x11
    BED_IN = 0x20
    BED_OUT = 0x21
    BED_SEIZURE = 0x22
    DOOR_OPEN = 0x30
    DOOR_CLOSED = 0x31
    MOTION = 0x32
    GPS_POSITION = 0x40
    GEOFENCE_EXIT = 0x41
    GEOFENCE_ENTER = 0x42
    GPS_NO_FIX = 0x43
    DOSE_TAKEN = 0x50
    DOSE_MISSED = 0x51
    REFILL_DUE = 0x52
    DISPENSER_TAMPER = 0x53
    DISPENSER_ERROR = 0x54
    DOSE_DUE = 0x55
    LOW_BATTERY = 0x60
    TAMPER = 0x61
    SELF_TEST_FAILED = 0x62
    POWER_OFF = 0x63
    CHARGER_IDLE = 0x64
    SENSOR_FAULT = 0x65
    NOT_WORN = 0x66                 # a wearable lying still (e.g. on a table) for the configured daytime
    WORN_AGAIN = 0x67               # ...and moving again (clears not_worn)
    MEASUREMENT = 0x70
    # Raised by the gateway itself (rules / supervision), never on the wire from devices.
    BED_NOT_RETURNED = 0x80
    DOOR_AT_NIGHT = 0x81
    DEVICE_SILENT = 0x82
    DEVICE_RECOVERED = 0x83
    MAINS_LOST = 0x84
    MAINS_RESTORED = 0x85
    UPLINK_LOST = 0x86
    UPLINK_RESTORED = 0x87
    JOURNAL_RECOVERED = 0x88
    MEASUREMENT_OUT_OF_RANGE = 0x89
    ALARM_UNACKNOWLEDGED = 0x8A
    INACTIVITY = 0x8B
    BLE_RECEIVER_FAULT = 0x8C       # the BLE watchdog cannot get adverts from the adapter
    BLE_RECEIVER_RESTORED = 0x8D
    JOURNAL_FAULT = 0x8E            # the journal could not store an alarm (disk full / I/O error)

    @property
    def type_name(self) -> str:
        return self.name.lower()

    @property
    def event_class(self) -> EventClass:
        return EVENT_CLASS.get(self, EventClass.EVENT)


EVENT_CLASS: dict[EventCode, EventClass] = {
    EventCode.BUTTON_PRESS: EventClass.CARE_ALARM,
    EventCode.FALL_DETECTED: EventClass.CARE_ALARM,
    EventCode.BED_SEIZURE: EventClass.CARE_ALARM,
    EventCode.GEOFENCE_EXIT: EventClass.CARE_ALARM,
    EventCode.DOSE_MISSED: EventClass.CARE_ALARM,
    EventCode.BED_NOT_RETURNED: EventClass.CARE_ALARM,
    EventCode.DOOR_AT_NIGHT: EventClass.CARE_ALARM,
    EventCode.MEASUREMENT_OUT_OF_RANGE: EventClass.CARE_ALARM,
    EventCode.INACTIVITY: EventClass.CARE_ALARM,
    EventCode.LOW_BATTERY: EventClass.TECHNICAL_ALARM,
    EventCode.TAMPER: EventClass.TECHNICAL_ALARM,
    EventCode.SELF_TEST_FAILED: EventClass.TECHNICAL_ALARM,
    EventCode.POWER_OFF: EventClass.TECHNICAL_ALARM,
    EventCode.CHARGER_IDLE: EventClass.TECHNICAL_ALARM,
    EventCode.SENSOR_FAULT: EventClass.TECHNICAL_ALARM,
    EventCode.NOT_WORN: EventClass.TECHNICAL_ALARM,
    EventCode.DISPENSER_TAMPER: EventClass.TECHNICAL_ALARM,
    EventCode.DISPENSER_ERROR: EventClass.TECHNICAL_ALARM,
    EventCode.GPS_NO_FIX: EventClass.EVENT,
    EventCode.DEVICE_SILENT: EventClass.TECHNICAL_ALARM,
    EventCode.MAINS_LOST: EventClass.TECHNICAL_ALARM,
    EventCode.UPLINK_LOST: EventClass.TECHNICAL_ALARM,
    EventCode.JOURNAL_RECOVERED: EventClass.TECHNICAL_ALARM,
    EventCode.ALARM_UNACKNOWLEDGED: EventClass.TECHNICAL_ALARM,
    EventCode.BLE_RECEIVER_FAULT: EventClass.TECHNICAL_ALARM,
    EventCode.JOURNAL_FAULT: EventClass.TECHNICAL_ALARM,
}


def is_alarm(code: EventCode) -> bool:
    return code.event_class is not EventClass.EVENT


@dataclass(frozen=True)
class Event:
    """One event as it flows gateway-internally: codec -> journal -> rules -> uplink.

    ``event_id`` is stable end to end and is the receiver's idempotency key:
    ``<device_id>-<seq:08x>`` for device events, ``<gateway_id>-g<counter:010d>`` for
    events the gateway raises (see docs/mqtt.md). ``occurred_at`` is epoch seconds
    (gateway clock, corrected by the frame's age field); ``received_at`` likewise.
    """

    event_id: str
    device_id: str
    code: EventCode
    occurred_at: float
    received_at: float
    role: Role | None = None
    seq: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    test: bool = False

    @property
    def event_class(self) -> EventClass:
        return self.code.event_class

    @property
    def is_alarm(self) -> bool:
        return is_alarm(self.code)
