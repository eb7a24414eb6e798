"""Roles on the real MicroPython interpreter with replayed sensor input: bed (ADC with
calibration, hysteresis, debounce, seizure, ADC errors), door/motion (IRQ pins, deep sleep
wake emulation), dispenser bridge (reference protocol emulator), button feedback."""
from __future__ import annotations

import json

from firmware.tests.mpy import run_mpy

HEAP = "128k"


def mp(script: str, tmp_path) -> dict:
    out = run_mpy(f"IMG = {str(tmp_path / 'flash.img')!r}\n" + script, heap=HEAP).stdout.strip().splitlines()
    return json.loads(out[-1])


def test_bed_in_out_with_hysteresis_and_debounce(tmp_path):
    r = mp(r'''
import simdev, json
# empty 8000, occupied 30000 -> in above 21200, out below 16800 (hysteresis 20 %)
trace = [(0, 8000), (60000, 30000), (61000, 19000), (62000, 29000),   # lies down (noisy, back in band)
         (200000, 18000),                                              # shifting in bed: inside the band
         (300000, 9000), (303000, 28000), (304000, 9500),              # sits up for 3 s: shorter than debounce
         (500000, 8200)]                                               # leaves the bed
hal, gw = simdev.make(IMG, "bed", {"debounce_s": 10}, end_ms=700000, adcs={"load": trace})
simdev.boot(hal)
print(json.dumps({"events": [(e[1], e[2]) for e in gw.events]}))
''', tmp_path)
    codes = [c for c, _ in r["events"]]
    assert codes == [0x21, 0x20, 0x21]   # out (initial empty, after debounce), in, out
    # the frames were sent promptly once debounced
    assert all(age < 2000 for _, age in r["events"])


def test_bed_seizure_and_adc_fault(tmp_path):
    r = mp(r'''
import simdev, json
trace = [(0, 28000)]
t = 100000
while t < 140000:                      # 40 s of 4 Hz rhythmic load swings of +-4000
    trace.append((t, 32000)); trace.append((t + 125, 24000)); t += 250
trace.append((t, 28000))
hal, gw = simdev.make(IMG, "bed", {"debounce_s": 5, "seizure": True, "seizure_s": 15}, end_ms=300000,
                      adcs={"load": trace})
class Break:
    def service(self, hal):
        hal.adc("load").fail = 200000 <= hal.clock.t < 260000   # wiring fault: OSError from the ADC
        return None
hal.peers.append(Break())
simdev.boot(hal)
print(json.dumps({"events": [e[1] for e in gw.events], "data": [list(e[3]) for e in gw.events], "boots": hal.boots}))
''', tmp_path)
    assert r["events"][:2] == [0x20, 0x22]           # in bed, then the seizure alarm (once)
    assert r["events"].count(0x22) == 1
    assert 0x65 in r["events"]                       # sensor_fault (I2C/ADC error class 1)
    assert r["data"][r["events"].index(0x65)] == [1]
    assert r["boots"] == 1                           # kept running through the fault


def test_bed_bad_calibration_is_reported_and_defaults_used(tmp_path):
    r = mp(r'''
import simdev, json, struct
hal, gw = simdev.make(IMG, "bed", {"cal_empty": 30000, "cal_occupied": 20000}, end_ms=100000,
                      adcs={"load": [(0, 8000), (20000, 30000)]})
simdev.boot(hal)
hb = [struct.unpack("<BHBIHHb", f.payload)[5] for f in gw.of_type(3)]
print(json.dumps({"events": [e[1] for e in gw.events], "rejects": hb}))
''', tmp_path)
    assert r["events"] == [0x21, 0x20]
    assert r["rejects"][0] == 1     # the bad calibration, counted in the first heartbeat


def test_door_edges_debounced_and_deep_sleep_wake_emulated(tmp_path):
    r = mp(r'''
import simdev, json
pins = {"door": [(20000, 1), (20010, 0), (20020, 1), (50000, 0), (400000, 1), (460000, 0)]}
hal, gw = simdev.make(IMG, "door", {"deep_sleep": True, "heartbeat_s": 120, "awake_ms": 3000},
                      end_ms=600000, pins=pins)
simdev.boot(hal)
print(json.dumps({"events": [(e[1], e[2]) for e in gw.events], "causes": hal.reset_causes,
                  "slept": len(hal.slept), "hellos": [f.payload[1] for f in gw.of_type(4)]}))
''', tmp_path)
    codes = [c for c, _ in r["events"]]
    assert codes == [0x30, 0x31, 0x30, 0x31]       # bounce at 20000-20020 is one opening
    assert r["slept"] >= 4 and set(r["causes"]) == {3}   # every reboot is a deep-sleep wake
    assert r["hellos"][0] == 0 and set(r["hellos"][1:]) == {3}
    # woken by the pin, not by the timer: the door event is reported within a second
    assert all(age < 1500 for _, age in r["events"]), r["events"]


def test_motion_holdoff(tmp_path):
    r = mp(r'''
import simdev, json
pins = {"pir": [(10000, 1), (12000, 0), (30000, 1), (31000, 0), (100000, 1), (101000, 0)]}
hal, gw = simdev.make(IMG, "motion", {"holdoff_s": 60}, end_ms=200000, pins=pins)
simdev.boot(hal)
print(json.dumps({"events": [e[1] for e in gw.events], "role": gw.of_type(4)[0].payload[0]}))
''', tmp_path)
    assert r["events"] == [0x32, 0x32]               # the 30 s trigger is inside the holdoff
    assert r["role"] == 5


def test_dispenser_bridge_with_emulator(tmp_path):
    r = mp(r'''
import simdev, json
from hal.host import loop_pair
from dispenser_emu import DispenserEmulator
bridge, disp = loop_pair()
hal, gw = simdev.make(IMG, "dispenser", {"ping_s": 60}, end_ms=2 * 86400000, uarts={"dispenser": bridge}, keep=(1,))
emu = DispenserEmulator(disp, schedule=((0, 480), (1, 1200)), days=2, take_delay_min={0: 5}, doses=5, refill_at=2,
                        script=[(3600000, "TAMPER"), (7200000, "ERR", 1), (7300000, "GARBAGE", b"$41,DUE,1*00\r\n"),
                                (7400000, "DOOR", 1), (7500000, "ERR", 999)], ack_drop=1)
hal.peers.append(emu)
simdev.boot(hal)
print(json.dumps({"events": [(e[1], list(e[3])) for e in gw.events], "outbox": len(emu.outbox),
                  "refills": len([l for l in emu.acked if b"REFILL" in l]), "boots": hal.boots,
                  "nak": [l.decode() for l in emu.nakked], "pings": emu.pings}))
''', tmp_path)
    ev = [(c, d) for c, d in r["events"]]
    codes = [c for c, _ in ev]
    assert codes.count(0x53) == 2                          # TAMPER and DOOR,1
    assert (0x54, [1]) in ev                               # ERR 1 -> dispenser_error(1)
    assert (0x55, [0, 480]) in ev and (0x50, [0, 480]) in ev   # due + taken for slot 0 at 08:00
    assert (0x51, [1, 1200]) in ev                         # slot 1 missed -> care alarm
    assert codes.count(0x51) == 2 and codes.count(0x50) == 2   # two days
    assert (0x52, [2]) in ev                               # refill due at 2 doses left
    # the first ACK was "lost": the dispenser retransmitted, the bridge did not duplicate it
    assert codes.count(0x55) == 4 and len(codes) == 4 + 2 + 2 + 2 + 1 + r["refills"]  # due, taken, missed, tamper+door, err, refills
    assert r["outbox"] == 0                                # everything acknowledged
    assert any("ERR,999" in n for n in r["nak"])           # out of range -> NAK, no event
    assert r["pings"] >= 2 * 24 * 60 - 5 and r["boots"] == 1


def test_dispenser_silent_raises_sensor_fault_once(tmp_path):
    r = mp(r'''
import simdev, json
from hal.host import loop_pair
from dispenser_emu import DispenserEmulator
bridge, disp = loop_pair()
hal, gw = simdev.make(IMG, "dispenser", {"ping_s": 10, "ping_misses": 3}, end_ms=600000, uarts={"dispenser": bridge})
emu = DispenserEmulator(disp, schedule=(), answer_pings=False)
hal.peers.append(emu)
simdev.boot(hal)
print(json.dumps({"events": [(e[1], list(e[3])) for e in gw.events]}))
''', tmp_path)
    assert r["events"] == [[0x65, [2]]]


def test_button_feedback_signals(tmp_path):
    r = mp(r'''
import simdev, json, wire, struct
hal, gw = simdev.make(IMG, "button", {}, end_ms=60000, pins={"button": [(5000, 1), (5100, 0)]})
class Fb:
    sent = 0
    def service(self, hal):
        t = hal.clock.t
        if gw.events and self.sent == 0 and t >= 8000:
            gw.send(wire.T_FEEDBACK, struct.pack("<IB", gw.events[0][0], 2)); self.sent = 1
        elif self.sent == 1 and t >= 20000:
            gw.send(wire.T_FEEDBACK, struct.pack("<IB", gw.events[0][0], 3)); self.sent = 2
        return None if self.sent == 2 else 1000
hal.peers.append(Fb())
simdev.boot(hal)
bz = hal.pins["buzzer"].history
print(json.dumps({"buzz_help": len([h for h in bz if 8000 <= h[0] < 20000 and h[1]]),
                  "buzz_fallback": len([h for h in bz if h[0] >= 20000 and h[1]])}))
''', tmp_path)
    assert r["buzz_help"] == 2            # two beeps: help is coming
    assert r["buzz_fallback"] >= 30       # repeating local signal while delivery fails
