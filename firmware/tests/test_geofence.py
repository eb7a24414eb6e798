"""Geofence (firmware/lib/geofence.py) on the real MicroPython interpreter."""
from __future__ import annotations

import json
import math
import random

from firmware.tests.gps_fixtures import offset
from firmware.tests.mpy import run_mpy


def mp(script: str) -> object:
    out = run_mpy("import geofence as g, geozones as gz, json\n" + script, heap="64k").stdout.strip().splitlines()
    return json.loads(out[-1])


def haversine_m(lat1, lon1, lat2, lon2):
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def e7(v: float) -> int:
    return int(round(v * 1e7))


def test_circle_distance_matches_haversine_at_norwegian_and_arctic_latitudes():
    rng = random.Random(7)
    cases = []
    for lat0, lon0 in ((59.9127, 10.7461), (69.6492, 18.9553), (78.2232, 15.6267)):  # Oslo, Tromsø, Longyearbyen
        for _ in range(10):
            n, e = rng.uniform(-3000, 3000), rng.uniform(-3000, 3000)
            lat, lon = offset(lat0, lon0, n, e)
            cases.append((lat0, lon0, lat, lon))
    got = mp("cases = %r\nout = []\nfor a, b, c, d in cases:\n"
             "    out.append(g.Circle(a, b, 500).distance_out(c, d) + 500)\nprint(json.dumps(out))"
             % [(e7(a), e7(b), e7(c), e7(d)) for a, b, c, d in cases])
    for (a, b, c, d), dist in zip(cases, got):
        ref = haversine_m(a, b, c, d)
        assert abs(dist - ref) <= max(1.0, 0.002 * ref), (a, b, c, d, dist, ref)


def test_polygon_inside_outside_and_across_the_antimeridian():
    r = mp("""
sq = gz.Polygon([(599100000, 107400000), (599100000, 107500000), (599150000, 107500000), (599150000, 107400000)])
am = gz.Polygon([(-170000000, 1795000000), (-170000000, -1795000000), (-180000000, -1795000000), (-180000000, 1795000000)])
print(json.dumps([sq.distance_out(599125000, 107450000), sq.distance_out(599200000, 107450000),
                  am.distance_out(-175000000, 1799999999), am.distance_out(-175000000, -1799000000),
                  am.distance_out(-175000000, 1790000000), am.distance_out(-175000000, -1790000000)]))
""")
    inside_sq, north_sq, am_e, am_w, am_out_w, am_out_e = r
    assert inside_sq < 0 and -280 < inside_sq < -270       # 0.0025 deg lat = 278 m to the nearest edge
    assert 550 < north_sq < 560                             # 0.005 deg north of the north edge
    assert am_e < 0 and am_w < 0                           # both sides of 180 deg are inside
    assert am_out_w > 50000 and am_out_e > 50000           # 0.5 deg beyond the polygon's edges


def test_border_jitter_does_not_flap_and_confirmed_exit_is_raised_once():
    lat0, lon0 = 59.9127, 10.7461
    rng = random.Random(3)
    # wander around the 200 m border with +-15 m GPS jitter: margin 25 m -> no events at all
    jitter = [offset(lat0, lon0, 200 + rng.uniform(-15, 15), 0) for _ in range(200)]
    # then clearly outside (260 m = 60 m beyond the border) twice -> one exit; back inside -> enter
    seq = jitter + [offset(lat0, lon0, 260, 0)] * 3 + [offset(lat0, lon0, 100, 0)] * 2
    r = mp("f = g.Geofence([g.Circle(%d, %d, 200)], margin_m=25, confirm_n=2)\n"
           "ev = [f.update(%d, %d)[0]]\n"
           "for la, lo in %r:\n    ev.append(f.update(la, lo)[0])\nprint(json.dumps(ev))"
           % (e7(lat0), e7(lon0), e7(lat0), e7(lon0), [(e7(a), e7(b)) for a, b in seq]))
    events = [e for e in r if e]
    assert events == [0x41, 0x42]
    assert r.index(0x41) == 1 + 200 + 1  # the second outside fix confirms the exit


def test_exit_is_raised_on_the_first_fix_far_outside_with_long_reporting_intervals():
    lat0, lon0 = 69.6492, 18.9553
    far = offset(lat0, lon0, 0, 900)   # next fix (10 min later) is 700 m beyond the border
    r = mp("f = g.Geofence([g.Circle(%d, %d, 200)], margin_m=25, confirm_n=3)\n"
           "a = f.update(%d, %d)\nb = f.update(%d, %d)\n"
           "f2 = g.Geofence([g.Circle(%d, %d, 200)])\nc = f2.update(%d, %d)\n"
           "print(json.dumps([a, b, c]))"
           % (e7(lat0), e7(lon0), e7(lat0), e7(lon0), e7(far[0]), e7(far[1]),
              e7(lat0), e7(lon0), e7(far[0]), e7(far[1])))
    assert r[0] == [0, 0] and r[1] == [0x41, 0]
    assert r[2] == [0x41, 0]   # first fix after boot already outside: raised too, nearest zone


def test_report_interval_is_power_aware():
    r = mp("""
I, O = g.INSIDE, g.OUTSIDE
print(json.dumps([g.report_interval_ms(I, True, 80), g.report_interval_ms(I, False, 80),
                  g.report_interval_ms(I, False, 20), g.report_interval_ms(I, False, 10),
                  g.report_interval_ms(O, False, 10), g.report_interval_ms(I, True, 80, True)]))
""")
    moving, still, low, critical, outside_low, border = r
    assert moving < still < low < critical
    assert outside_low == 30000 and border == 10000   # never stretched when it matters


def test_invalid_zone_config_is_rejected_with_a_reason():
    r = mp("""
out = []
for z in ({"lat": 59.9, "lon": 10.7}, {"lat": 59.9, "lon": 10.7, "radius_m": 5}, {"lat": 95, "lon": 0, "radius_m": 100},
          {"polygon": [[59.9, 10.7], [59.91, 10.7]]}, {"polygon": [[59.9, "x"], [1, 2], [3, 4]]}, "home"):
    try:
        gz.zone_from_config(z)
        out.append(None)
    except g.GeofenceError as e:
        out.append(str(e))
print(json.dumps(out))
""")
    assert all(isinstance(x, str) for x in r), r
    assert "radius_m" in r[0] and "radius_m" in r[1] and "out of range" in r[2]
    assert "vertices" in r[3] and "not a number" in r[4]
