"""Care-rule scenarios: bed exit at night (gateway clock jumped forward), missed dose, geofence exit."""
from __future__ import annotations

import datetime as dt
import math
import time

import pytest

from gateway.testing.clock import OffsetClock
from gateway.testing.stimuli import walk_nmea
from gateway.testing.waiting import wait_until
from hil_tests.conftest import Transcript, device

pytestmark = pytest.mark.hil

OCCUPIED, EMPTY = 30000, 8000


def _night_start() -> float:
    """23:00 UTC today (inside the default 20:30–06:00 night window, gateway timezone UTC)."""
    today = dt.datetime.now(dt.timezone.utc).date()
    return dt.datetime(today.year, today.month, today.day, 23, 0, tzinfo=dt.timezone.utc).timestamp()


def test_bed_exit_at_night_alarm_only_when_not_returned_within_30_min(emulated_bench, hil_metrics, update_golden):
    """Bed sensor firmware (load cell replayed from a trace) on MicroPython; the gateway daemon runs
    in-process on an accelerated clock (bootstrap(clock=...)): 'minutes later' is one jump.

    1st exit at 23:00, back in bed after 29 min → no alarm. 2nd exit, not back after 31 min → bed_not_returned.
    """
    clock = OffsetClock(_night_start())
    load = [(0, OCCUPIED), (2500, EMPTY), (6000, OCCUPIED), (9500, EMPTY)]
    bench = emulated_bench([device("bed-1", adcs={"load": load}, cfg={"debounce_s": 1, "sample_ms": 100},
                                   gateway={"supervised": False})],
                           clock=clock, gateway={"rules": {"bed": {"window_start": "20:30", "window_end": "06:00",
                                                                    "max_out_min": 30}}})
    p = bench.platform

    def next_event(typ: str) -> None:
        n = len([a for a in p.all_arrivals() if a.type == typ])
        assert p.wait_for(lambda a: a.type == typ, timeout_s=15, count=n + 1)[n:], bench.debug()

    def seen(typ: str) -> int:
        return len([a for a in p.all_arrivals() if a.type == typ])

    # at boot the sensor reports the resident in bed, then the first exit
    wait_until(lambda: seen("bed_out") >= 1, 15, "the first bed exit")
    ins = seen("bed_in")
    clock.advance(29 * 60)                      # 29 minutes out of bed ...
    wait_until(lambda: seen("bed_in") > ins, 15, "back in bed")
    clock.advance(10 * 60)                      # ... back in time; 10 more minutes: no alarm
    time.sleep(1.0)
    assert [a for a in p.alarms()] == [], [a.payload for a in p.alarms()]
    wait_until(lambda: seen("bed_out") >= 2, 15, "the second bed exit")
    clock.advance(29 * 60)
    time.sleep(1.0)
    assert [a for a in p.alarms()] == [], "alarm before the 30 minutes were up"
    t_jump = time.time()
    clock.advance(2 * 60)                       # 31 minutes out
    got = p.wait_for(lambda a: a.type == "bed_not_returned", timeout_s=10)
    assert got, bench.debug()
    a = got[0]
    assert a.payload["class"] == "care" and a.payload["device"] == bench.spec("bed-1").device_id
    assert 30.0 <= a.payload["data"]["out_min"] <= 32.0, a.payload["data"]
    hil_metrics.figure("alarm_after_deadline_real_s", round(a.arrived_at - t_jump, 2))
    assert a.arrived_at - t_jump < 5.0
    time.sleep(0.5)
    Transcript(bench).arrivals(p.all_arrivals(), volatile=("left_at", "out_min")).check("bed_night", update_golden)


def test_missed_dose_raises_care_alarm(emulated_bench, hil_metrics, update_golden):
    """Dispenser bridge firmware talking to the dispenser emulator (its UART): a dose becomes due
    and is not taken → dose_missed care alarm at the platform; the due dose is an event before it."""
    miss_after_s = 2.0
    bench = emulated_bench([device("dispenser-1", dispenser={
        "schedule": [[0, 0]], "day_start_ms": 2500, "missed_after_min": miss_after_s / 60.0, "doses": 20,
        "refill_at": 3, "retransmit_ms": 1000})])
    fw = bench.firmware["dispenser-1"]
    got = bench.platform.wait_for(lambda a: a.type == "dose_missed", timeout_s=25)
    assert got, bench.debug()
    a = got[0]
    assert a.payload["class"] == "care" and a.payload["data"]["slot"] == 0
    due_wall = fw.wall(2500 + miss_after_s * 1000)
    hil_metrics.figure("missed_to_platform_s", round(a.arrived_at - due_wall, 2))
    assert -0.5 <= a.arrived_at - due_wall <= 5.0, a.arrived_at - due_wall
    time.sleep(1.0)
    arr = [x for x in bench.platform.all_arrivals() if x.type.startswith("dose")]
    assert [x.type for x in arr if x.type == "dose_missed"] == ["dose_missed"]
    Transcript(bench).arrivals(arr).check("missed_dose", update_golden)


HOME = (59.9139, 10.7522)


def test_geofence_exit_from_gps_trace(emulated_bench, tmp_path, hil_metrics, update_golden):
    """GPS tracker firmware replays an NMEA walk from inside the 300 m home zone to 500 m out:
    geofence_exit care alarm with the position; nothing before the wearer is out."""
    # starts 150 m east of the zone's centre, walks east 6 m per 1 Hz fix
    start = (HOME[0], HOME[1] + 150 / (111_320 * math.cos(math.radians(HOME[0]))))
    log = walk_nmea(tmp_path / "walk.nmea", start=start, bearing_deg=90, speed_mps=6.0, seconds=60)
    bench = emulated_bench([device("gps-1", gps=log, cfg={
        "home_lat_e7": int(HOME[0] * 1e7), "home_lon_e7": int(HOME[1] * 1e7), "home_radius_m": 300,
        "margin_m": 25, "confirm_n": 2, "report_s": 3600, "still_report_s": 86400})])
    got = bench.platform.wait_for(lambda a: a.type == "geofence_exit", timeout_s=40)
    assert got, bench.debug()
    a = got[0]
    d = a.payload["data"]
    dist = math.hypot((d["lat"] - HOME[0]) * 111_320, (d["lon"] - HOME[1]) * 111_320 * math.cos(math.radians(HOME[0])))
    hil_metrics.figure("exit_reported_at_m", round(dist, 1))
    assert 325 <= dist <= 400, dist                 # beyond radius + margin, confirmed by the 2nd fix
    assert a.payload["class"] == "care"
    time.sleep(1.0)
    alarms = bench.alarms()
    assert [x.type for x in alarms] == ["geofence_exit"], [x.payload for x in alarms]
    Transcript(bench).arrivals(alarms).check("geofence_exit", update_golden)
