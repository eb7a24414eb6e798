# The gateway side of the wire codec (wire.py) that a device never needs: parsing
# EVENT payloads (and packing them: tests). Used by the simulated gateway (tools/simgw.py) and the tests; kept
# out of wire.py so it is not in a device's RAM.
import struct
from wire import _index

# data layout of each event code in wire._CODES order: index into _FMTS
_FMTI = b"\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x02\x02\x02\x00\x03\x03\x04\x00\x04\x03\x03\x00\x04\x04\x05\x04\x05\x05"
_FMTS = ("", "<HBB", "<iihBBB", "<BH", "<B", "<H")


def event_format(code):
    """struct format of the event's data, or None for an unknown code."""
    i = _index(code)
    return _FMTS[_FMTI[i]] if i >= 0 else None


def pack_event_data(code, *values):
    fmt = event_format(code)
    if fmt == "<HBB" and len(values) == 2:
        fmt = "<HB"   # fall event of older firmware: no confidence
    return struct.pack(fmt, *values) if fmt else b""


def parse_event(payload):
    """(code, age_ms, data tuple) or reason string."""
    if len(payload) < 5:
        return "bad_payload"
    code = payload[0]
    fmt = event_format(code)
    if fmt is None:
        return "unknown_code"
    data = payload[5:]
    if fmt == "<HBB" and len(data) == 3:
        fmt = "<HB"   # fall event of older firmware: no confidence
    if len(data) != (struct.calcsize(fmt) if fmt else 0):
        return "bad_payload"
    age = struct.unpack("<I", payload[1:5])[0]
    return (code, age, struct.unpack(fmt, data) if fmt else ())
