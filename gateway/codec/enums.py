"""Every wire code of docs/protocol.md in one place (enums, never bare ints)."""
from __future__ import annotations

import enum

PROTOCOL_VERSION = 1


class MsgType(enum.IntEnum):
    """Frame ``type`` byte (docs/protocol.md §1, message types)."""

    EVENT = 0x01
    ACK = 0x02
    HEARTBEAT = 0x03
    HELLO = 0x04
    CONFIG_GET = 0x05
    CONFIG = 0x06
    OTA_BEGIN = 0x07
    OTA_CHUNK = 0x08
    OTA_END = 0x09
    OTA_STATUS = 0x0A
    FEEDBACK = 0x0B
    TIME = 0x0C
    ERROR = 0x7F


class FrameFlag(enum.IntFlag):
    """Frame ``flags`` byte. Bits 3..7 are reserved and must be 0."""

    NONE = 0
    URGENT = 0x01
    AUTH = 0x02
    DOWNLINK = 0x04


FRAME_FLAGS_MASK = int(FrameFlag.URGENT | FrameFlag.AUTH | FrameFlag.DOWNLINK)


class AckStatus(enum.IntEnum):
    STORED = 0
    DUPLICATE = 1
    REJECTED = 2
    BUSY = 3


class ErrorCode(enum.IntEnum):
    """``ERROR.code`` values."""

    BAD_FRAME = 1
    BAD_AUTH = 2
    REPLAY = 3
    UNKNOWN_TYPE = 4
    BAD_PAYLOAD = 5
    BAD_CONFIG = 6
    OTA_HASH_MISMATCH = 7
    OTA_OUT_OF_ORDER = 8
    BUSY = 9
    STORAGE_FULL = 10


class ResetCause(enum.IntEnum):
    POWER_ON = 0
    HARD_RESET = 1
    WATCHDOG = 2
    DEEP_SLEEP_WAKE = 3
    SOFT_RESET = 4
    BROWNOUT = 5
    UNKNOWN = 255


class OtaState(enum.IntEnum):
    IDLE = 0
    RECEIVING = 1
    VERIFIED = 2
    PENDING_REBOOT = 3
    COMMITTED = 4
    ROLLED_BACK = 5
    FAILED = 6


class FeedbackState(enum.IntEnum):
    RECEIVED = 1          # received by the platform
    ACCEPTED = 2          # accepted by an operator: help is coming
    DELIVERY_FAILING = 3  # use the local fallback signal


class PowerFlag(enum.IntFlag):
    NONE = 0
    CHARGING = 0x01
    EXTERNAL_POWER = 0x02
    BATTERY_LOW = 0x04


class Placement(enum.IntEnum):
    """Fall sensor placement (EVENT data of fall_detected / fall_cancelled)."""

    WRIST = 0
    CHEST = 1
    WAIST = 2


class SelfTestCheck(enum.IntEnum):
    SENSOR = 1
    FLASH = 2
    RADIO = 3
    BATTERY = 4
    GPS = 5
    MODEM = 6


class PowerOffReason(enum.IntEnum):
    USER = 1
    BATTERY_EMPTY = 2
    OTA_REBOOT = 3


class SensorFault(enum.IntEnum):
    I2C_ERROR = 1
    NO_DATA = 2
    IMPLAUSIBLE = 3


class RejectReason(str, enum.Enum):
    """Why a decoder or the ingress refused an input (docs/protocol.md, Rejections)."""

    EMPTY = "empty"
    OVERSIZE = "oversize"
    COBS = "cobs"
    CRC = "crc"
    SHORT = "short"
    VERSION = "version"
    FLAGS = "flags"
    UNKNOWN_TYPE = "unknown_type"
    LENGTH = "length"
    BAD_PAYLOAD = "bad_payload"
    UNKNOWN_CODE = "unknown_code"
    UNKNOWN_DEVICE = "unknown_device"
    UNAUTHENTICATED = "unauthenticated"
    BAD_AUTH = "bad_auth"
    REPLAY = "replay"
    REPEAT = "repeat"
    UNKNOWN_OBJECT = "unknown_object"
    UNKNOWN_UUID = "unknown_uuid"
    DIRECTION = "direction"

    def __str__(self) -> str:
        return self.value


class BTHomeButton(enum.IntEnum):
    """BTHome v2 button event values (object 0x3A)."""

    NONE = 0x00
    PRESS = 0x01
    DOUBLE_PRESS = 0x02
    TRIPLE_PRESS = 0x03
    LONG_PRESS = 0x04
    LONG_DOUBLE_PRESS = 0x05
    LONG_TRIPLE_PRESS = 0x06
    HOLD_PRESS = 0x80


class SFloatSpecial(str, enum.Enum):
    """IEEE 11073-20601 special values of SFLOAT / FLOAT."""

    NAN = "NaN"
    NRES = "NRes"
    POS_INF = "+INF"
    NEG_INF = "-INF"
    RESERVED = "reserved"

    def __str__(self) -> str:
        return self.value
