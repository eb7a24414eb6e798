"""App framework behaviour on the real MicroPython interpreter: delivery, retries,
reboots, rejects, config, watchdog, supervision. Each test runs a simulated device
(host HAL, simulated clock) against tools/simgw.py, a scripted gateway peer."""
from __future__ import annotations

import json

import pytest

from firmware.tests.mpy import run_mpy

HEAP = "128k"


def mp(script: str, tmp_path, heap: str = HEAP) -> dict:
    """Run ``script``; it must print one JSON object as its last line."""
    script = f"IMG = {str(tmp_path / 'flash.img')!r}\n" + script
    out = run_mpy(script, heap=heap).stdout.strip().splitlines()
    return json.loads(out[-1])


def test_button_press_is_delivered_once_and_long_press_cancels(tmp_path):
    r = mp(r'''
import simdev, json, wire
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=100000,
    pins={"button": [(10000, 1), (10030, 0), (10040, 1), (10200, 0), (30000, 1), (34000, 0)]})
simdev.boot(hal)
ev = [(s, c, a) for s, c, a, d in gw.events]
print(json.dumps({"events": ev, "types": [f.type for f in gw.frames], "urgent": [f.flags & 1 for f in gw.of_type(1)],
                  "authed": all(f.flags & 2 for f in gw.frames), "rejects": gw.rejects, "led": hal.pins["led"].history[:3]}))
''', tmp_path)
    codes = [c for _, c, _ in r["events"]]
    assert codes == [0x01, 0x02]          # bounce at 10000-10030 ignored; one press, one cancel
    assert r["types"][0] == 4              # HELLO first
    assert r["urgent"] == [1, 0]           # care alarm urgent, cancel not
    assert r["authed"] and r["rejects"] == {}
    assert r["events"][0][2] < 1000        # age_ms: sent right away
    assert r["led"][1][0] >= 10200         # LED feedback after the press was accepted


def test_events_survive_gateway_outage_and_are_not_duplicated(tmp_path):
    r = mp(r'''
import simdev, json, wire
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 30, "retry_ms": 1000, "retry_max_ms": 20000}, end_ms=900000,
    pins={"button": [(5000, 1), (5100, 0), (8000, 1), (8100, 0)]})
gw.ack = False
class Up:
    def service(self, hal):
        if hal.clock.t >= 600000:
            gw.ack = True
        return None if gw.ack else 600000 - hal.clock.t
hal.peers.append(Up())
sent = []
orig = hal.uart("link").write
def spy(b):
    sent.append(hal.clock.t)
    return orig(b)
hal.uart("link").write = spy
simdev.boot(hal)
print(json.dumps({"events": gw.events, "sent_during_outage": len([t for t in sent if t < 600000]),
                  "hb": len(gw.of_type(3))}))
''', tmp_path)
    codes = [e[1] for e in r["events"]]
    assert codes == [0x01, 0x01]                     # both presses, once each
    ages = [e[2] for e in r["events"]]
    assert all(590000 - 9000 <= a <= 600000 + 30000 for a in ages), ages  # age covers the outage
    # bounded backoff: 2 events x ~ (1+2+4+8+16 s then every 20 s) for 600 s, not a flood
    assert r["sent_during_outage"] < 2 * 40 + 20 + 5


def test_queue_and_seq_survive_reboots_and_seq_is_monotonic(tmp_path):
    r = mp(r'''
import simdev, json, wire
from hal.host import Reboot
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 20}, end_ms=300000,
    pins={"button": [(5000, 1), (5100, 0), (100000, 1), (100100, 0)]})
gw.ack = False
class Chaos:
    # reset the device at 60 s, 120 s (link down), bring the gateway up at 200 s
    def __init__(self):
        self.todo = [60000, 120000]
    def service(self, hal):
        t = hal.clock.t
        if t >= 200000:
            gw.ack = True
        if self.todo and t >= self.todo[0]:
            self.todo.pop(0)
            raise Reboot(1)
        return (self.todo[0] - t) if self.todo else None
hal.peers.append(Chaos())
simdev.boot(hal)
print(json.dumps({"events": gw.events, "hb_seqs": [f.seq for f in gw.of_type(3)],
                  "boots": hal.boots, "causes": hal.reset_causes}))
''', tmp_path)
    assert r["boots"] == 3 and r["causes"] == [1, 1], r
    assert [e[1] for e in r["events"]] == [0x01, 0x01]   # queued across two resets, delivered once
    ev_seqs = [e[0] for e in r["events"]]
    assert ev_seqs[0] < ev_seqs[1]                       # second press (boot 2) numbered above the first
    hb = [s for s in r["hb_seqs"]]
    assert hb == sorted(hb) and min(hb) > max(ev_seqs)   # boot 3 frames numbered above everything before
    assert r["events"][0][2] >= 80000                    # age after a reset without wall time: >= uptime


def test_seq_never_reused_across_many_resets(tmp_path):
    r = mp(r'''
import simdev, json
from hal.host import Reboot
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 10}, end_ms=400000)
class Resetter:
    def service(self, hal):
        if hal.clock.t % 35000 < 200 and hal.clock.t > 1000 and hal.clock.t != getattr(self, "last", -1):
            self.last = hal.clock.t
            raise Reboot(4)
        return 35000 - hal.clock.t % 35000
hal.peers.append(Resetter())
simdev.boot(hal)
print(json.dumps({"seqs": [f.seq for f in gw.frames], "boots": hal.boots}))
''', tmp_path)
    seqs = r["seqs"]
    assert r["boots"] >= 8
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), seqs  # strictly increasing across resets


def test_bad_input_is_rejected_counted_in_heartbeat_and_device_keeps_running(tmp_path):
    r = mp(r'''
import simdev, json, wire, struct
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=200000,
    pins={"button": [(150000, 1), (150100, 0)]})
class Attacker:
    done = False
    def service(self, hal):
        if self.done or hal.clock.t < 70000:
            return None if self.done else 70000 - hal.clock.t
        self.done = True
        u = gw.uart
        dev = hal.device_id()
        good = wire.encode(wire.T_TIME, wire.F_DOWNLINK, dev, 500, struct.pack("<I", 1795413600), gw.auth)
        u.write(b"\x13\x37garbage\x00")                                   # cobs/short
        u.write(good[:-3] + bytes([good[-3] ^ 1]) + b"\x00")              # crc
        u.write(wire.encode(wire.T_TIME, wire.F_DOWNLINK, dev, 501, b"\x00\x00\x00\x00", wire.Auth(b"x" * 16)))  # bad_auth
        u.write(wire.encode(wire.T_TIME, wire.F_DOWNLINK, dev, 502, b"\x00\x00\x00\x00"))  # unauthenticated
        u.write(wire.encode(wire.T_TIME, wire.F_DOWNLINK, b"\x99" * 6, 503, b"\x00\x00\x00\x00", gw.auth))  # other device
        u.write(good)                                                     # accepted
        u.write(good)                                                     # replay
        u.write(wire.encode(wire.T_TIME, 0, dev, 504, b"\x00\x00\x00\x00", gw.auth))  # uplink reflected
        u.write(b"\x01" * 400 + b"\x00")                                  # oversize
        u.write(wire.encode(wire.T_FEEDBACK, wire.F_DOWNLINK, dev, 505, b"\x01", gw.auth))  # bad payload
        gw.dl_seq = 506   # the real gateway's downlink counter continues above the attack
        return None
hal.peers.append(Attacker())
simdev.boot(hal)
hbs = [struct.unpack("<BHBIHHb", f.payload) for f in gw.of_type(3)]
errs = [(f.payload[0], f.payload[1:].decode()) for f in gw.of_type(0x7f)]
print(json.dumps({"rejects": [h[5] for h in hbs], "events": [e[1] for e in gw.events], "errors": errs}))
''', tmp_path)
    # heartbeats at 0 s, 60 s, 120 s, 180 s; the attack at 70 s lands in the third one
    assert r["rejects"][:2] == [0, 0]
    assert r["rejects"][2] == 9, r
    assert r["rejects"][3] == 0
    assert r["events"] == [0x01]                 # still works afterwards
    assert (5, "type 0x0b seq 505") in [tuple(e) for e in r["errors"]]


def test_config_bad_values_fall_back_and_are_reported(tmp_path):
    r = mp(r'''
import simdev, json, wire, struct
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 5, "debounce_ms": "fast", "bogus": 1}, end_ms=30000)
simdev.boot(hal)
errs = [(f.payload[0], f.payload[1:].decode()) for f in gw.of_type(0x7f)]
hb = [struct.unpack("<BHBIHHb", f.payload) for f in gw.of_type(3)]
print(json.dumps({"errors": errs, "hb_times": len(hb), "rejects": hb[0][5]}))
''', tmp_path)
    msgs = [m for c, m in r["errors"] if c == 6]
    assert any(m.startswith("heartbeat_s=5") and "10..86400" in m for m in msgs), msgs
    assert any(m.startswith("debounce_ms='fast'") for m in msgs), msgs
    assert any(m.startswith("bogus=1") for m in msgs), msgs
    assert r["rejects"] == 3
    assert r["hb_times"] == 1  # default 300 s heartbeat used, not 5 s


def test_config_get_set_over_the_air(tmp_path):
    r = mp(r'''
import simdev, json, wire, struct
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=20000)
class Ops:
    step = 0
    def service(self, hal):
        t = hal.clock.t
        if self.step == 0 and t >= 1000:
            gw.send(wire.T_CONFIG_GET, b"")
        elif self.step == 1 and t >= 2000:
            gw.send(wire.T_CONFIG, struct.pack("<I", 9) + b'{"heartbeat_s": 3}')
        elif self.step == 2 and t >= 3000:
            gw.send(wire.T_CONFIG, struct.pack("<I", 9) + b'{"key": "00000000000000000000000000000000"}')
        elif self.step == 3 and t >= 4000:
            gw.send(wire.T_CONFIG, struct.pack("<I", 9) + b'{"heartbeat_s": 120, "long_press_ms": 5000}')
        elif self.step == 4 and t >= 5000:
            gw.send(wire.T_CONFIG, struct.pack("<I", 9) + b'not json')
        else:
            return 1000 - t % 1000
        self.step += 1
        return 1000
hal.peers.append(Ops())
simdev.boot(hal)
cfgs = [(struct.unpack("<I", f.payload[:4])[0], json.loads(f.payload[4:])) for f in gw.of_type(wire.T_CONFIG)]
errs = [(f.payload[0], f.payload[1:].decode()) for f in gw.of_type(0x7f)]
acks = [struct.unpack("<IB", f.payload) for f in gw.of_type(wire.T_ACK)]
saved = json.load(open(hal.data_dir + "/config.json"))
print(json.dumps({"cfgs": cfgs, "errors": errs, "acks": acks, "saved": saved}))
''', tmp_path)
    v, c = r["cfgs"][0]
    assert v == 0 and c == {"role": "button", "heartbeat_s": 60}   # non-defaults only; the key never leaves
    codes = [e[0] for e in r["errors"]]
    assert codes == [6, 6, 6]
    assert r["errors"][0][1].startswith("heartbeat_s=3")
    assert r["errors"][1][1].startswith("key=") and "over the air" in r["errors"][1][1]
    assert r["errors"][2][1].startswith("config: not a JSON object")
    assert len(r["acks"]) == 1 and r["acks"][0][1] == 0
    assert r["saved"]["heartbeat_s"] == 120 and r["saved"]["long_press_ms"] == 5000
    assert r["saved"]["config_version"] == 9 and r["saved"]["key"] == "000102030405060708090a0b0c0d0e0f"


def test_watchdog_fed_only_by_healthy_loop_and_cause_reported(tmp_path):
    r = mp(r'''
import simdev, json, wire
import roles.button as rb
hal, gw = simdev.make(IMG, "button", {"wdt_ms": 5000}, end_ms=60000)
rb.Button.healthy = lambda self: not (20000 <= hal.clock.t < 26000)   # sensor stuck for 6 s
simdev.boot(hal)
print(json.dumps({"hellos": [(f.payload[1], f.seq) for f in gw.of_type(4)], "causes": hal.reset_causes,
                  "t_hellos": len(gw.of_type(4))}))
''', tmp_path)
    assert r["causes"] == [2]                       # exactly one watchdog reset, then healthy again
    assert [c for c, _ in r["hellos"]] == [0, 2]    # power-on, then watchdog reported at boot


def test_low_battery_alarm_once_per_crossing(tmp_path):
    r = mp(r'''
import simdev, json, wire, struct
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 10, "low_battery_pct": 20}, end_ms=100000, battery=(50, 3900, 0))
class Drain:
    def service(self, hal):
        t = hal.clock.t
        hal.battery_state = (50, 3900, 0) if t < 30000 else ((15, 3400, 0) if t < 70000 else (60, 4000, 1))
        return None
hal.peers.append(Drain())
simdev.boot(hal)
hb = [struct.unpack("<BHBIHHb", f.payload) for f in gw.of_type(3)]
print(json.dumps({"events": [(e[1], list(e[3])) for e in gw.events], "flags": [h[2] for h in hb]}))
''', tmp_path)
    assert r["events"] == [[0x60, [15, 3400]]]
    assert 4 in r["flags"] and r["flags"][0] == 0


def test_event_pushed_out_of_the_replay_window_by_resets_is_renumbered_and_delivered(tmp_path):
    # link down, a press, then 6 resets (each skips the rest of a 16-seq block): when the
    # gateway comes back its window starts ~100 seqs above the queued event, so it answers
    # ERROR 3 (replay, not in journal) and the device gives the event a fresh seq
    r = mp(r'''
import simdev, json, wire
from hal.host import Reboot
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 300}, end_ms=400000,
    pins={"button": [(5000, 1), (5100, 0)]})
gw.ack = False
class Chaos:
    def __init__(self):
        self.todo = [20000 * k for k in range(1, 7)]
    def service(self, hal):
        t = hal.clock.t
        if self.todo and t >= self.todo[0]:
            self.todo.pop(0)
            if not self.todo:
                gw.ack = True     # back with the last reset: the new HELLO arrives first
            raise Reboot(1)
        return (self.todo[0] - t) if self.todo else None
hal.peers.append(Chaos())
simdev.boot(hal)
print(json.dumps({"events": gw.events, "rejects": gw.rejects, "boots": hal.boots,
                  "hello": [f.seq for f in gw.of_type(4)]}))
''', tmp_path)
    assert r["boots"] == 7
    assert [e[1] for e in r["events"]] == [0x01]          # delivered once
    assert r["rejects"].get("replay", 0) >= 1              # the old seq was refused first
    assert r["events"][0][0] > r["hello"][0]               # ... and renumbered above the window


def test_heartbeats_held_back_so_a_pending_event_stays_inside_the_replay_window(tmp_path):
    # events are lost on the way (heartbeats arrive) for 20 minutes with a 10 s heartbeat:
    # unchecked, 120 heartbeats would move the gateway's window 120 seqs past the event
    r = mp(r'''
import simdev, json, wire
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 10}, end_ms=1500000, keep=(3,),
    pins={"button": [(5000, 1), (5100, 0)]})
gw.ack_events = False
class Heal:
    def service(self, hal):
        if hal.clock.t >= 1200000:
            gw.ack_events = True
            return None
        return 1200000 - hal.clock.t
hal.peers.append(Heal())
simdev.boot(hal)
import struct
up = [struct.unpack("<BHBIHHb", f.payload)[3] for f in gw.of_type(3)]
print(json.dumps({"events": gw.events, "hb_before": len([u for u in up if u < 1200]),
                  "hb_after": len([u for u in up if u >= 1200]), "rejects": gw.rejects}))
''', tmp_path)
    assert [e[1] for e in r["events"]] == [0x01]
    ev_seq = r["events"][0][0]
    assert ev_seq < 10                           # delivered with its original seq (no renumbering needed)
    assert r["rejects"] == {}                    # never refused as a replay
    assert 40 <= r["hb_before"] <= 50            # heartbeats held back once the gap reached 48
    assert r["hb_after"] >= 25                   # and resumed once the event was acknowledged


def test_age_of_an_event_queued_before_a_reset_comes_from_gateway_time(tmp_path):
    r = mp(r'''
import simdev, json, wire
from hal.host import Reboot
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 300, "retry_max_ms": 5000}, end_ms=200000,
    pins={"button": [(20000, 1), (20100, 0)]})
class Script:
    done = False
    def service(self, hal):
        t = hal.clock.t
        gw.ack_events = not (10000 <= t < 120000)     # events lost on the way for a while
        if not self.done and t >= 60000:
            self.done = True
            raise Reboot(1)                            # ticks restart: only wall time spans the reset
        return None
hal.peers.append(Script())
arrived = []
orig = gw._event
def spy(f):
    arrived.append(hal.clock.t)
    orig(f)
gw._event = spy
simdev.boot(hal)
print(json.dumps({"events": gw.events, "arrived": arrived}))
''', tmp_path)
    assert [e[1] for e in r["events"]] == [0x01]
    age = r["events"][0][2]
    delivered = r["arrived"][0]
    assert abs((delivered - age) - 20200) <= 1500, (delivered, age)   # occurred at ~20.2 s by the gateway's clock


def test_low_battery_raised_in_a_heartbeat_leaves_in_the_same_loop_step(tmp_path):
    # heartbeat every 120 s: the battery drops at 50 s, the heartbeat at 120 s raises
    # low_battery, which must be sent in that step (age ~0), not at the next wake-up
    r = mp(r'''
import simdev, json, wire, struct
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 120, "low_battery_pct": 20}, end_ms=300000, battery=(50, 3900, 0))
got = []
class Drain:
    def service(self, hal):
        t = hal.clock.t
        hal.battery_state = (50, 3900, 0) if t < 50000 else (15, 3400, 0)
        if gw.events and not got:
            got.append(t)
        return 1000
hal.peers.append(Drain())
simdev.boot(hal)
hb = [(f, struct.unpack("<BHBIHHb", f.payload)) for f in gw.of_type(3)]
print(json.dumps({"events": [(e[1], e[2]) for e in gw.events], "got": got,
                  "hb_up": [h[1][3] for h in hb if h[1][2] & 4]}))
''', tmp_path)
    assert [c for c, _ in r["events"]] == [0x60]
    age = r["events"][0][1]
    assert age < 200, r                          # sent in the heartbeat's own step
    assert r["hb_up"] and 115 <= r["hb_up"][0] <= 125 and r["got"][0] <= r["hb_up"][0] * 1000 + 1200, r
