# The gateway side of the wire codec (wire.py) that a device never needs: parsing
# EVENT payloads. Used by the simulated gateway (tools/simgw.py) and the tests; kept
# out of wire.py so it is not in a device's RAM.
import struct
from wire import event_format


def parse_event(payload):
    """(code, age_ms, data tuple) or reason string."""
    if len(payload) < 5:
        return "bad_payload"
    code = payload[0]
    fmt = event_format(code)
    if fmt is None:
        return "unknown_code"
    data = payload[5:]
    if len(data) != (struct.calcsize(fmt) if fmt else 0):
        return "bad_payload"
    age = struct.unpack("<I", payload[1:5])[0]
    return (code, age, struct.unpack(fmt, data) if fmt else ())
