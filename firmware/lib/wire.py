# Wire codec of docs/protocol.md (serial frames, v1) for MicroPython.
#
# Pure functions over bytes: COBS, CRC-16/CCITT-FALSE, truncated HMAC-SHA256,
# frame encode/decode, the 64-entry replay window and event payloads.
# Decoders never raise on garbage: they return a reason string instead of a Frame.
from micropython import const
import struct
import hashlib

_VERSION = const(1)

# message types
T_EVENT = const(0x01)
T_ACK = const(0x02)
T_HEARTBEAT = const(0x03)
T_HELLO = const(0x04)
T_CONFIG_GET = const(0x05)
T_CONFIG = const(0x06)
T_OTA_BEGIN = const(0x07)
T_OTA_CHUNK = const(0x08)
T_OTA_END = const(0x09)
T_OTA_STATUS = const(0x0A)
T_FEEDBACK = const(0x0B)
T_TIME = const(0x0C)
T_ERROR = const(0x7F)
_TYPES = b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x7f"

# flags
F_URGENT = const(1)
F_AUTH = const(2)
F_DOWNLINK = const(4)
_F_KNOWN = const(7)

# ACK status
ACK_STORED = const(0)
ACK_DUPLICATE = const(1)
ACK_REJECTED = const(2)
ACK_BUSY = const(3)

# ERROR codes
E_BAD_FRAME = const(1)
E_BAD_AUTH = const(2)
E_REPLAY = const(3)
E_UNKNOWN_TYPE = const(4)
E_BAD_PAYLOAD = const(5)
E_BAD_CONFIG = const(6)
E_OTA_HASH = const(7)
E_OTA_ORDER = const(8)
E_BUSY = const(9)
E_STORAGE_FULL = const(10)

# reset causes (HELLO): 0 power-on, 1 hard, 2 watchdog, 3 deep-sleep wake,
# 4 soft, 5 brownout, 255 unknown (the HALs and ota.py keep private copies)

# roles (HELLO role byte, gateway/domain/model.py Role)
ROLE_BUTTON = const(1)
ROLE_FALL = const(2)
ROLE_BED = const(3)
ROLE_DOOR = const(4)
ROLE_MOTION = const(5)
ROLE_GPS = const(6)
ROLE_DISPENSER = const(7)

# OTA_STATUS states live in ota.py (private)

_HEADER_LEN = const(15)
_TAG_LEN = const(8)
MAX_PAYLOAD = const(240)
_MAX_ENCODED = const(300)
_MIN_BODY = const(17)
_MAX_BODY = const(265)
_KEY_LEN = const(16)

# event codes (§2)
EV_BUTTON_PRESS = const(0x01)
EV_BUTTON_CANCEL = const(0x02)
EV_FALL_DETECTED = const(0x10)
EV_FALL_CANCELLED = const(0x11)
EV_BED_IN = const(0x20)
EV_BED_OUT = const(0x21)
EV_BED_SEIZURE = const(0x22)
EV_DOOR_OPEN = const(0x30)
EV_DOOR_CLOSED = const(0x31)
EV_MOTION = const(0x32)
EV_GPS_POSITION = const(0x40)
EV_GEOFENCE_EXIT = const(0x41)
EV_GEOFENCE_ENTER = const(0x42)
EV_GPS_NO_FIX = const(0x43)
EV_DOSE_TAKEN = const(0x50)
EV_DOSE_MISSED = const(0x51)
EV_REFILL_DUE = const(0x52)
EV_DISPENSER_TAMPER = const(0x53)
EV_DISPENSER_ERROR = const(0x54)
EV_DOSE_DUE = const(0x55)
EV_LOW_BATTERY = const(0x60)
EV_TAMPER = const(0x61)
EV_SELF_TEST_FAILED = const(0x62)
EV_POWER_OFF = const(0x63)
EV_CHARGER_IDLE = const(0x64)
EV_SENSOR_FAULT = const(0x65)
EV_NOT_WORN = const(0x66)
EV_WORN_AGAIN = const(0x67)

# event class: 0 event (telemetry), 1 care alarm, 2 technical alarm
# Compact tables (RAM matters): code, class. Data layouts (§2) are in wire_gw.py: a
# device packs its own with struct and never parses events.
_CODES = b"\x01\x02\x10\x11\x20\x21\x22\x30\x31\x32\x40\x41\x42\x43\x50\x51\x52\x53\x54\x55\x60\x61\x62\x63\x64\x65\x66\x67"
_CLASS = b"\x01\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x02\x02\x00\x02\x02\x02\x02\x02\x02\x02\x00"


def _index(code):
    return _CODES.find(bytes((code & 0xFF,))) if 0 <= code <= 0xFF else -1


def event_class(code):
    """0 event, 1 care alarm, 2 technical alarm, -1 unknown code."""
    i = _index(code)
    return _CLASS[i] if i >= 0 else -1


def is_alarm(code):
    return event_class(code) > 0


# --- CRC-16/CCITT-FALSE --------------------------------------------------------

def crc16(data, crc=0xFFFF):
    # bitwise (no 512-byte table in RAM); frames are short, so the cost is small
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


# --- COBS -----------------------------------------------------------------------

def cobs_encode(data):
    n = len(data)
    out = bytearray(n + n // 254 + 2)
    code_i = 0
    o = 1
    code = 1
    for i in range(n):
        b = data[i]
        if b == 0:
            out[code_i] = code
            code_i = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 0xFF and i + 1 < n:
                out[code_i] = code
                code_i = o
                o += 1
                code = 1
    out[code_i] = code
    return bytes(out[:o])


def cobs_decode(data):
    """Decoded bytes, or None if ``data`` is not valid COBS (no zero bytes allowed)."""
    n = len(data)
    out = bytearray()
    i = 0
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            return None
        chunk = data[i + 1:end]
        if 0 in chunk:
            return None
        out.extend(chunk)
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --- HMAC-SHA256 ----------------------------------------------------------------

class Auth:
    """Truncated HMAC-SHA256 with a 16-byte device key (pads precomputed once)."""

    def __init__(self, key):
        k = bytes(key)
        if len(k) > 64:
            k = hashlib.sha256(k).digest()
        k = k + bytes(64 - len(k))
        self._i = bytes(b ^ 0x36 for b in k)
        self._o = bytes(b ^ 0x5C for b in k)

    def mac(self, data):
        h = hashlib.sha256(self._i)
        h.update(data)
        inner = h.digest()
        h = hashlib.sha256(self._o)
        h.update(inner)
        return h.digest()

    def tag(self, data):
        return self.mac(data)[:_TAG_LEN]


def ct_equal(a, b):
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


# --- frames ---------------------------------------------------------------------

class Frame:
    def __init__(self, type, flags, device_id, seq, payload, authed=False):
        self.type = type
        self.flags = flags
        self.device_id = device_id
        self.seq = seq
        self.payload = payload
        self.authed = authed


def encode_body(type, flags, device_id, seq, payload, auth=None):
    """Body bytes (before COBS). AUTH flag is set iff ``auth`` is given."""
    if auth is not None:
        flags |= F_AUTH
    else:
        flags &= ~F_AUTH
    b = bytearray(struct.pack("<BBB", _VERSION, type, flags))
    b.extend(device_id)
    b.extend(struct.pack("<IH", seq, len(payload)))
    b.extend(payload)
    if auth is not None:
        b.extend(auth.tag(b))
    b.extend(struct.pack("<H", crc16(b)))
    return bytes(b)


def encode(type, flags, device_id, seq, payload, auth=None):
    """The bytes to put on the wire: COBS(body) + 0x00."""
    return cobs_encode(encode_body(type, flags, device_id, seq, payload, auth)) + b"\x00"


def decode_body(body, auth=None):
    """Frame or reason string. ``auth`` verifies the tag when the frame has one.

    Checks in the gateway codec's order: size, CRC, version, flags, type, length,
    then the tag. A frame with AUTH but no ``auth`` object is returned with
    ``authed`` False (the caller decides whether that is ``unauthenticated``).
    """
    n = len(body)
    if n == 0:
        return "empty"
    if n > _MAX_BODY:
        return "oversize"
    if n < _MIN_BODY:
        return "short"
    if crc16(body[:-2]) != body[-2] | (body[-1] << 8):
        return "crc"
    if body[0] != _VERSION:
        return "version"
    flags = body[2]
    if flags & ~_F_KNOWN:
        return "flags"
    t = body[1]
    if t not in _TYPES:
        return "unknown_type"
    plen = body[13] | (body[14] << 8)
    has_tag = flags & F_AUTH
    if plen > MAX_PAYLOAD or _HEADER_LEN + plen + (_TAG_LEN if has_tag else 0) + 2 != n:
        return "length"
    end = _HEADER_LEN + plen
    authed = False
    if has_tag and auth is not None:
        if not ct_equal(auth.tag(body[:end]), body[end:end + _TAG_LEN]):
            return "bad_auth"
        authed = True
    seq = body[9] | (body[10] << 8) | (body[11] << 16) | (body[12] << 24)
    return Frame(t, flags, bytes(body[3:9]), seq, bytes(body[_HEADER_LEN:end]), authed)


def decode(encoded, auth=None):
    """Decode one frame as received between delimiters (without the 0x00)."""
    if len(encoded) == 0:
        return "empty"
    if len(encoded) > _MAX_ENCODED:
        return "oversize"
    body = cobs_decode(encoded)
    if body is None:
        return "cobs"
    return decode_body(body, auth)


class StreamDecoder:
    """Splits a byte stream at 0x00 delimiters; bounded buffer (oversize frames dropped)."""

    def __init__(self):
        self._buf = bytearray()
        self._over = False

    def feed(self, data):
        """List of encoded frames (bytes); None stands for one dropped oversize frame."""
        out = []
        buf = self._buf
        start = 0
        while True:
            i = data.find(b"\x00", start)
            part = data[start:] if i < 0 else data[start:i]
            if not self._over:
                if len(buf) + len(part) > _MAX_ENCODED:
                    self._over = True
                    buf[:] = b""
                else:
                    buf.extend(part)
            if i < 0:
                return out
            if self._over:
                out.append(None)
                self._over = False
            else:
                out.append(bytes(buf))
            buf[:] = b""
            start = i + 1


class ReplayWindow:
    """Highest accepted seq plus a 64-entry bitmap (bit k = highest - k seen)."""

    def __init__(self, highest=0):
        self.highest = highest
        self.bits = 1 if highest else 0

    def check(self, seq):
        if seq == 0:
            return False
        if seq > self.highest:
            return True
        d = self.highest - seq
        if d >= 64:
            return False
        return not (self.bits >> d) & 1

    def accept(self, seq):
        if seq > self.highest:
            d = seq - self.highest
            self.bits = ((self.bits << d) | 1) & 0xFFFFFFFFFFFFFFFF if d < 64 else 1
            self.highest = seq
        else:
            self.bits |= 1 << (self.highest - seq)


# --- payloads -------------------------------------------------------------------

def event_payload(code, age_ms, data=b""):
    return struct.pack("<BI", code, min(age_ms, 0xFFFFFFFF)) + data


def heartbeat_payload(battery_pct, battery_mv, power_flags, uptime_s, queue_depth, rejects, rssi=0x7F):
    return struct.pack("<BHBIHHb", battery_pct & 0xFF, battery_mv & 0xFFFF, power_flags & 0xFF,
                       uptime_s & 0xFFFFFFFF, min(queue_depth, 0xFFFF), min(rejects, 0xFFFF),
                       rssi if -128 <= rssi <= 127 else 0x7F)


def hello_payload(role, reset_cause, config_version, fw_version):
    v = fw_version.encode()[:255]
    return struct.pack("<BBIB", role, reset_cause, config_version, len(v)) + v


def ack_payload(seq, status):
    return struct.pack("<IB", seq, status)


def error_payload(code, msg=""):
    m = msg.encode()[:64]
    # never cut inside a UTF-8 sequence
    while m and (m[-1] & 0xC0) == 0x80:
        m = m[:-1]
    if m and m[-1] >= 0xC0:
        m = m[:-1]
    return bytes((code,)) + m


def ota_status_payload(state, version=""):
    v = version.encode()[:255]
    return bytes((state, len(v))) + v


def parse_u32_u8(payload, hi):
    """(u32, u8) of ACK (status 0..3) / FEEDBACK (state 1..3), or None."""
    if len(payload) != 5 or payload[4] > hi:
        return None
    return struct.unpack("<IB", payload)
