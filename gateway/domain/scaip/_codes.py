"""SCAIP wire codes (SS 91100 / CLC/TS 50134-9) in one place: enums, never bare strings.

Values are the exact text the XML carries (``dty`` ``0003``, ``lco`` ``012``...). The
selection is what this product sends or reads; ``shared/reference/scaip.md`` lists the
facts. Codes marked *outside the reference selection* come from the standard's full code
list and are used only for information messages; confirm them with the centre at
commissioning (docs/scaip.md, "Mapping").
"""
from __future__ import annotations

import enum


class MessageType(str, enum.Enum):
    """``mty``: what kind of request this is."""

    ALARM = "ME"        # message / alarm
    RESET = "RE"
    INFO = "IN"         # information
    HEARTBEAT = "PI"

    def __str__(self) -> str:
        return self.value


class DeviceType(str, enum.Enum):
    """``dty``: the kind of device that reports (4 digits)."""

    LOCAL_UNIT = "0002"            # local unit and controller: the gateway itself
    PERSONAL_TRIGGER = "0003"      # safety alarm button
    FALL_DETECTOR = "0005"
    ACTIVITY_DETECTOR = "0010"
    PILL_DISPENSER = "0011"
    BED_MONITOR = "0012"
    DOOR_SENSOR = "0014"
    WANDERING_SENSOR = "0015"
    EPILEPSY_DETECTOR = "0017"
    HEART_RATE_MONITOR = "0019"
    MAN_DOWN_DETECTOR = "0030"
    SYSTEM_MONITOR = "0031"
    LINK_MONITOR = "0032"          # communication link monitor
    POWER_SUPPLY = "0041"
    TRACKING_DEVICE = "0051"

    def __str__(self) -> str:
        return self.value


class StatusCode(str, enum.Enum):
    """``stc``: what happened (4 digits)."""

    ABSENT = "0003"                # outside the reference selection (information only)
    AUTOMATIC_ALARM = "0009"
    MANUAL_ALARM = "0010"
    BATTERY_FAILURE = "0014"
    BATTERY_OK = "0015"
    BATTERY_LOW = "0016"
    CANCEL = "0019"
    CLOSED = "0021"                # outside the reference selection (information only)
    IP_LINK_FAILURE = "0023"
    MOBILE_LINK_FAILURE = "0024"
    PRIMARY_LINK_FAILURE = "0026"
    REDUNDANT_LINK_FAILURE = "0027"
    FAILURE = "0042"
    MAINTENANCE_NEEDED = "0065"    # outside the reference selection (information only)
    MALFUNCTION = "0067"
    NORMAL_STATE = "0070"          # outside the reference selection (information only)
    OFFLINE = "0073"
    ONLINE = "0075"
    OPEN = "0076"
    OPEN_TOO_LONG = "0077"
    PILL_NOT_TAKEN = "0081"
    PILL_REMINDER = "0082"
    PILL_TAKEN = "0083"
    POWER_FAILURE = "0085"
    POWER_RESTORED = "0086"
    RESTORAL = "0094"
    TEST_PRIMARY = "0102"
    TEST_REDUNDANT = "0103"
    TIME_OUT = "0104"
    TROUBLE = "0105"
    IP_LINK_RESTORED = "0112"
    MOBILE_LINK_RESTORED = "0113"
    PRIMARY_LINK_RESTORED = "0115"
    REDUNDANT_LINK_RESTORED = "0116"
    LYING_IN_BED = "0117"
    MOVEMENT = "0119"
    RADIO_TEST_MISSING = "0123"    # a silent sensor
    RADIO_TEST_RESTORED = "0124"
    TAMPER_ALARM = "0125"

    def __str__(self) -> str:
        return self.value


class LocationCode(str, enum.Enum):
    """``lco``: where (3 digits)."""

    HOME = "002"
    AWAY = "003"
    BATHROOM = "011"
    BEDROOM = "012"
    GEO_FENCE = "019"
    KITCHEN = "021"
    GPS_ATTACHED = "035"           # GPS position attached (in ``lge``)
    FRONT_DOOR = "039"
    LIVING_ROOM = "043"
    ROOM = "049"
    WARD = "051"

    def __str__(self) -> str:
        return self.value


class DeviceComponent(str, enum.Enum):
    """``dco``: which part of the device (3 digits)."""

    BUTTON_1 = "002"

    def __str__(self) -> str:
        return self.value


class Snu(enum.IntEnum):
    """``snu`` of a reply ``<mrs>``: the centre's verdict on one request."""

    OK = 0
    TOO_LONG = 1
    INVALID_FORMAT = 2
    WRONG_CONTENT = 3
    HOLD = 4
    NOT_TREATED = 5
    BUSY = 6
    TAG_MISSING = 7

    @property
    def our_fault(self) -> bool:
        """1/2/3/7: the centre says our message is wrong; re-sending it cannot help."""
        return self in _OUR_FAULT


_OUR_FAULT = frozenset({Snu.TOO_LONG, Snu.INVALID_FORMAT, Snu.WRONG_CONTENT, Snu.TAG_MISSING})


class MediaReply(enum.IntEnum):
    """``mre``: what the centre wants after the message (a gateway has no voice path)."""

    NO_CALL = 0
    DUPLEX = 1
    MICROPHONE_ONLY = 2
    SPEAKER_ONLY = 3


class HeartbeatOption(str, enum.Enum):
    """``hbo``: may the centre adjust our heartbeat interval with ``hbi``?"""

    FIXED = "0"
    ADJUSTABLE = "1"

    def __str__(self) -> str:
        return self.value


VERSION = "01.00"
CONTENT_TYPE = "application/scaip+xml"
