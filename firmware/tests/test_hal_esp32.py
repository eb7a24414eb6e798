"""hal/esp32.py on the real MicroPython interpreter with fake ``machine``/``esp32`` modules
injected into sys.modules (no ESP32 in CI; the type check against the ESP32 stubs in
test_mypy.py covers the real API's names and signatures). Checks the HAL's own logic:
reset-cause mapping incl. the brownout marker, pin polarity, battery scaling, the
UART/WDT/deep-sleep calls it makes."""
from __future__ import annotations

import json

from firmware.tests.mpy import run_mpy

FAKES = r'''
import sys, os
calls = []
class _Pin:
    IN = 1; OUT = 3; PULL_UP = 2; IRQ_RISING = 1; IRQ_FALLING = 2
    levels = {}
    def __init__(self, n, mode=None, pull=None):
        self.n = n
        calls.append(("Pin", n, mode, pull))
    def value(self, v=None):
        if v is None:
            return _Pin.levels.get(self.n, 0)
        _Pin.levels[self.n] = v
    def irq(self, handler, trigger):
        calls.append(("irq", self.n, trigger))
        self.handler = handler
class _Signal:
    def __init__(self, pin, invert=False):
        self.pin = pin; self.invert = invert
    def value(self, v=None):
        if v is None:
            return self.pin.value() ^ self.invert
        self.pin.value(v ^ self.invert)
class _ADC:
    ATTN_11DB = 3
    uv = 1900000
    def __init__(self, pin):
        self.pin = pin
    def atten(self, a):
        calls.append(("atten", a))
    def read_uv(self):
        return _ADC.uv
class _UART:
    def __init__(self, uid, **kw):
        calls.append(("UART", uid, kw))

class _WDT:
    def __init__(self, timeout):
        calls.append(("WDT", timeout))
class _Machine:
    PWRON_RESET = 1; HARD_RESET = 2; WDT_RESET = 3; DEEPSLEEP_RESET = 4; SOFT_RESET = 5
    Pin = _Pin; Signal = _Signal; ADC = _ADC; UART = _UART; WDT = _WDT
    cause = 1
    def reset_cause(self):
        return _Machine.cause
    def unique_id(self):
        return b"\x24\x6f\x28\xaa\xbb\xcc"
    def deepsleep(self, ms):
        calls.append(("deepsleep", ms))
    def reset(self):
        calls.append(("reset",))
class _Esp32:
    WAKEUP_ALL_LOW = False; WAKEUP_ANY_HIGH = True
    def wake_on_ext0(self, pin, level):
        calls.append(("ext0", pin.n, level))
    def wake_on_ext1(self, pins, level):
        calls.append(("ext1", [p.n for p in pins], level))
    class Partition:
        @classmethod
        def mark_app_valid_cancel_rollback(cls):
            calls.append(("valid",))
sys.modules["machine"] = _Machine()
sys.modules["esp32"] = _Esp32()
'''


def test_esp32_hal_logic_with_fake_machine(tmp_path):
    data = tmp_path / "data"
    script = FAKES + f"DATA = {str(data)!r}\n" + r'''
import json
import hal.esp32 as he
he._DATA = DATA
he._LOWV_MARK = DATA + "/.lowv"
h = he.Esp32Hal()
r = {"id": h.device_id().hex(), "cause_pwron": h.reset_cause()}
_ADC.uv = 1600000                     # 3.2 V through the 2:1 divider: below the brownout level
r["batt_low"] = list(h.battery())
sys.modules["machine"].__class__.cause = 1
r["cause_after_low"] = he.Esp32Hal().reset_cause()   # power-on after a low reading -> brownout
r["cause_again"] = he.Esp32Hal().reset_cause()       # marker consumed
for c, name in ((3, "wdt"), (4, "deep"), (5, "soft"), (2, "hard"), (9, "odd")):
    sys.modules["machine"].__class__.cause = c
    r[name] = he.Esp32Hal().reset_cause()
_ADC.uv = 1950000
r["batt_ok"] = list(h.battery())
b = h.pin("button")                  # active-low with pull-up
_Pin.levels[0] = 0
r["pressed"] = b.value()
_Pin.levels[0] = 1
r["released"] = b.value()
b.irq(lambda p: None)
h.uart("link")
h.wdt(30000)
h.confirm_image()
_Pin.levels[27] = 1
h.deep_sleep(60000, ["door"])
print(json.dumps({"r": r, "calls": [list(c) if not isinstance(c[-1], dict) else [c[0], c[1], sorted(c[2].items())] for c in calls]}))
'''
    data.mkdir()
    out = run_mpy(script, heap="128k").stdout.strip().splitlines()[-1]
    got = json.loads(out)
    r, calls = got["r"], got["calls"]
    assert r["id"] == "246f28aabbcc" and r["cause_pwron"] == 0
    assert r["batt_low"] == [0, 3200, 0]
    assert r["cause_after_low"] == 5 and r["cause_again"] == 0
    assert (r["wdt"], r["deep"], r["soft"], r["hard"], r["odd"]) == (2, 3, 4, 1, 255)
    assert r["batt_ok"][1] == 3900 and 70 <= r["batt_ok"][0] <= 71
    assert r["pressed"] == 1 and r["released"] == 0
    assert ["irq", 0, 3] in calls
    assert ["UART", 1, [["baudrate", 115200], ["rx", 16], ["rxbuf", 1024], ["timeout", 0], ["tx", 17]]] in calls
    assert ["WDT", 30000] in calls and ["valid"] in calls
    assert ["ext0", 27, False] in calls and ["deepsleep", 60000] in calls   # door open now: wake when it closes


def test_ble_wt_frame_link_with_fake_bluetooth(tmp_path):
    """hal/esp32_ble.py: GATT registration, advertising, rx writes -> read(), write() ->
    MTU-sized notifies, nothing sent while disconnected, re-advertising, and a real frame
    from the firmware's codec through it (fake ``bluetooth`` in sys.modules)."""
    out = run_mpy(r'''
import sys, json
log = []
class _UUID:
    def __init__(self, v):
        self.v = v
class _BLE:
    def __init__(self):
        self.values = {}
    def active(self, a):
        log.append(["active", a])
    def irq(self, h):
        self.h = h
    def gatts_register_services(self, svcs):
        (uuid, chars), = svcs
        log.append(["svc", uuid.v, [[c[0].v, c[1]] for c in chars]])
        return ((11, 12),)
    def gatts_set_buffer(self, h, n, append):
        log.append(["buf", h, n, append])
    def gap_advertise(self, us, data):
        log.append(["adv", us, bytes(data).hex()])
    def gatts_read(self, h):
        return self.values[h]
    def gatts_notify(self, conn, h, data):
        log.append(["notify", conn, h, bytes(data).hex()])
class _Bt:
    BLE = _BLE
    UUID = _UUID
sys.modules["bluetooth"] = _Bt()
import wire
from hal.esp32_ble import BleLink
flag = bytearray(1)
l = BleLink("WTbbcc", flag)
ble = l._ble
r = {"read_empty": l.read(64)}
r["lost"] = l.write(b"\x01\x02\x03")          # nobody connected
ble.h(1, (7, 0, b"\x00" * 6))                   # central connects (conn handle 7)
frame = wire.encode(wire.T_HEARTBEAT, 0, b"\x24\x6f\x28\xaa\xbb\xcc", 5, wire.heartbeat_payload(90, 3900, 0, 10, 0, 0))
r["wrote"] = l.write(frame)
ble.values[12] = b"\x05\x01\x02"
ble.h(3, (7, 12))                               # gateway writes rx
r["flag"] = flag[0]
r["read"] = l.read(64).hex()
ble.h(21, (7, 100))                              # MTU 100 negotiated
l.write(bytes(range(1, 200)))
ble.h(2, (7, 0, b"\x00" * 6))                   # disconnect -> advertise again
print(json.dumps({"r": r, "log": log, "len": len(frame), "frame": frame.hex(), "unsent": l.unsent}))
''', heap="128k")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    r, log = got["r"], got["log"]
    assert log[0] == ["active", True]
    assert log[1] == ["svc", "5f1e0001-7a3b-4c8e-9d21-6b7c0e5a9f10",
                      [["5f1e0003-7a3b-4c8e-9d21-6b7c0e5a9f10", 0x10], ["5f1e0002-7a3b-4c8e-9d21-6b7c0e5a9f10", 0x04]]]
    adv = [e for e in log if e[0] == "adv"]
    assert len(adv) == 2 and "57546262636" in adv[0][2]          # "WTbbcc" in the advert, re-advertised
    assert r["read_empty"] is None and r["lost"] == 0 and got["unsent"] == 3
    notifies = [e for e in log if e[0] == "notify"]
    first = [e for e in notifies if e[1] == 7][: (got["len"] + 19) // 20]
    assert "".join(e[3] for e in first) == got["frame"]             # split at 20 bytes, reassembles exactly
    assert all(len(e[3]) <= 40 for e in first)
    big = notifies[len(first):]
    assert [len(e[3]) // 2 for e in big] == [97, 97, 5]              # MTU 100 -> 97-byte notifies
    assert r["flag"] == 1 and r["read"] == "050102"
