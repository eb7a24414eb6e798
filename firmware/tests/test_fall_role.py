"""The fall role end to end on the real MicroPython interpreter: a replayed recording
drives the LIS3DH register model on the host I2C bus, the real LIS3DH driver reads
it, the role raises alarms through the App to a simulated gateway (tools/simgw.py)."""
from __future__ import annotations

import json
import math

from firmware.tests.mpy import run_mpy
from firmware.tests.test_fall import movement

HEAP = "192k"  # App + role + the test harness (simgw, replay model); see docs/fall-detection.md


def csv_file(tmp_path, kind: str, rate: int = 100, **kw) -> str:
    rows = movement(kind, rate=rate, **kw)
    p = tmp_path / f"{kind}.csv"
    p.write_text("t_s,ax_g,ay_g,az_g\n" + "".join(
        f"{i / rate:.3f},{x / 1000:.3f},{y / 1000:.3f},{z / 1000:.3f}\n" for i, (x, y, z) in enumerate(rows)))
    return str(p)


def run_role(tmp_path, recording: str, cfg: dict, *, end_ms: int = 60000, pins=None, model_setup: str = "") -> dict:
    script = f'''
import simdev, json
from hal.host import HostI2C
from drivers.replay import SampleFile, Lis3dhModel
bus = HostI2C({{}})
hal, gw = simdev.make({str(tmp_path / "flash.img")!r}, "fall", {cfg!r}, end_ms={end_ms}, i2c={{"acc": bus}},
                      pins={pins or {}!r})
model = Lis3dhModel(SampleFile({recording!r}, 50), hal.clock)
{model_setup}
bus.devices[0x19] = model
simdev.boot(hal)
print(json.dumps({{"events": gw.events, "rejects": gw.rejects, "errors": [bytes(f.payload).decode("utf-8", "replace")
                   for f in gw.of_type(0x7F)], "buzz": hal.pins["buzzer"].history if "buzzer" in hal.pins else [],
                   "hb_rejects": [f.payload[10] | f.payload[11] << 8 for f in gw.of_type(3)]}}))
'''
    out = run_mpy(script, heap=HEAP).stdout.strip().splitlines()
    return json.loads(out[-1])


def test_fall_raises_alarm_after_the_cancel_window(tmp_path):
    r = run_role(tmp_path, csv_file(tmp_path, "fall"), {"cancel_s": 20, "placement": "waist"})
    codes = [e[1] for e in r["events"]]
    assert codes == [0x10], r
    seq, code, age, (peak_cg, placement, confidence) = r["events"][0]
    assert 250 <= peak_cg <= 420 and placement == 2  # 50 Hz averaging lowers the 100 Hz spike
    assert 50 <= confidence <= 100
    buzz_on = [t for t, v in r["buzz"] if v == 1]
    # impact at ~5.4 s, decision 3 s later, window 20 s: the alarm leaves after ~28.4 s;
    # the buzzer started when the window opened
    assert buzz_on and 8000 <= buzz_on[0] <= 9500
    assert r["errors"] == []


def test_wearer_cancels_within_the_window(tmp_path):
    r = run_role(tmp_path, csv_file(tmp_path, "fall"), {"cancel_s": 20},
                 pins={"button": [(15000, 1), (15300, 0)]})
    assert [e[1] for e in r["events"]] == [0x11]   # fall_cancelled, no fall_detected


def test_lying_down_raises_nothing(tmp_path):
    r = run_role(tmp_path, csv_file(tmp_path, "lie_down"), {"cancel_s": 5})
    assert r["events"] == []


def test_i2c_errors_are_counted_fault_raised_once_and_detection_continues(tmp_path):
    # bus errors from 1 s to 3 s (10 reads at 200 ms): counted, one sensor_fault(1),
    # then the sensor recovers and the fall at ~5.4 s is still detected
    r = run_role(tmp_path, csv_file(tmp_path, "fall"), {"cancel_s": 10, "fault_n": 5, "heartbeat_s": 10},
                 model_setup="model.fail_windows = [(1000, 3000)]")
    codes = [e[1] for e in r["events"]]
    assert codes.count(0x65) == 1 and codes[-1] == 0x10, codes
    fault = [e for e in r["events"] if e[1] == 0x65][0]
    assert fault[3] == [1]
    assert sum(r["hb_rejects"]) >= 5    # every failed read counted and reported


def test_wrong_part_fails_self_test_and_device_keeps_running(tmp_path):
    r = run_role(tmp_path, csv_file(tmp_path, "fall"), {"cancel_s": 5}, end_ms=30000,
                 model_setup="model.who = 0x44")
    codes = [e[1] for e in r["events"]]
    assert codes == [0x62] and r["events"][0][3] == [1]   # self_test_failed(sensor), reported once


def test_invalid_config_values_fall_back_and_are_reported(tmp_path):
    r = run_role(tmp_path, csv_file(tmp_path, "fall"), {"cancel_s": 5, "placement": "ankle", "rate_hz": "33",
                                                        "fault_n": -3})
    assert [e[1] for e in r["events"]] == [0x10]          # still detects with the defaults
    assert r["events"][0][3][1] == 2                       # default placement waist
    joined = " ".join(r["errors"])
    assert "placement" in joined and "rate_hz" in joined and "fault_n" in joined


def test_placement_in_the_config_selects_the_detector_and_travels_in_the_alarm(tmp_path):
    fall = csv_file(tmp_path, "fall", impact_ms=100)
    slap = csv_file(tmp_path, "bed_slap", rate=50, impact_g=2.3)
    for place, code in (("pendant", 1), ("wrist", 0), ("pocket", 2)):
        r = run_role(tmp_path, fall, {"cancel_s": 5, "placement": place, "not_worn_min": 0})
        assert [e[1] for e in r["events"]] == [0x10], (place, r)
        peak_cg, placement, confidence = r["events"][0][3]
        assert placement == code and 50 <= confidence <= 100, (place, r["events"])
    # a hand slapping the mattress (2.3 g) while lying down: the wristband and the pendant
    # stay quiet (impact velocity change, no free fall); the belt's detector raises it
    quiet = [run_role(tmp_path, slap, {"cancel_s": 5, "placement": p})["events"] for p in ("wrist", "pendant")]
    assert quiet == [[], []]
    assert [e[1] for e in run_role(tmp_path, slap, {"cancel_s": 5, "placement": "waist"})["events"]] == [0x10]


def worn_recording(tmp_path, still_s: int) -> str:
    """'x y z' milli-g lines at 50 Hz: 5 s worn (small movements), still_s lying on a
    table, then picked up and worn 10 s; afterwards it lies still (the replay holds it)."""
    lines = []
    for k in range(5 * 50):
        lines.append(f"{int(120 * math.sin(k / 7))} -990 {int(90 * math.cos(k / 5))}")
    lines += ["3 8 1004"] * (still_s * 50)
    for k in range(10 * 50):
        lines.append(f"{int(300 * math.sin(k / 4))} {-950 + int(150 * math.sin(k / 9))} 60")
    p = tmp_path / "worn.txt"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def test_not_worn_notice_raised_after_lying_still_and_cleared_when_moved(tmp_path):
    rec = worn_recording(tmp_path, 200)
    # TIME from the simulated gateway: 06:00 UTC = 07:00 at UTC+1, inside the 07..22 day
    r = run_role(tmp_path, rec, {"cancel_s": 5, "not_worn_min": 2, "heartbeat_s": 600}, end_ms=230000)
    ev = [(e[1], e[3]) for e in r["events"]]
    assert ev == [(0x66, [2]), (0x67, [3])], r["events"]   # not_worn (2 min), worn_again (after 3 min)
    # at night the time lying still does not count (day from 08:00 local)
    r = run_role(tmp_path, rec, {"cancel_s": 5, "not_worn_min": 2, "day_from_h": 8}, end_ms=230000)
    assert r["events"] == []
    # 0 switches it off
    r = run_role(tmp_path, rec, {"cancel_s": 5, "not_worn_min": 0}, end_ms=230000)
    assert r["events"] == []
