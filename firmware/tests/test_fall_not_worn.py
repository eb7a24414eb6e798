"""Not worn, daytime by the local clock: the fall role's summer time (lib/fall_tz.py, EU
rule: last Sunday of March to last Sunday of October, 01:00 UTC) computed on the real
MicroPython interpreter, checked against the time zone database (Europe/Oslo) across both changes,
and the role counting lying still by it."""
from __future__ import annotations

import datetime as dt
import json
import zoneinfo

from firmware.tests.mpy import run_mpy
from firmware.tests.test_fall_role import run_role, worn_recording

OSLO = zoneinfo.ZoneInfo("Europe/Oslo")


def _utc(*a) -> int:
    return int(dt.datetime(*a, tzinfo=dt.timezone.utc).timestamp())


def _instants() -> list[int]:
    """Every hour from two days before to two days after each change, 2024..2040 (a
    leap year, years whose last Sunday is the 31st or the 25th), the seconds either side
    of 01:00 UTC on the change days, New Year and mid-summer, and the u32 epoch's end."""
    out = []
    for y in range(2024, 2041):
        for m in (3, 10):
            last = max(d for d in range(25, 32) if dt.date(y, m, d).weekday() == 6)
            change = _utc(y, m, last, 1)
            out += [change - 1, change, change + 1]
            out += list(range(change - 2 * 86400, change + 2 * 86400, 3600))
        out += [_utc(y, 1, 1, 0), _utc(y, 12, 31, 23, 59, 59), _utc(y, 2, 29 if y % 4 == 0 else 28, 12),
                _utc(y, 7, 1, 5, 30)]
    out.append(2 ** 32 - 1)
    return out


def test_local_hour_follows_oslo_summer_time_across_both_changes_on_micropython():
    ts = _instants()
    r = run_mpy(f"""
import json
from fall_tz import local_hour
ts = {ts!r}
print(json.dumps([[local_hour(t, 60, True), local_hour(t, 60, False)] for t in ts]))
""", heap="1024k")
    got = json.loads(r.stdout.strip().splitlines()[-1])
    want = [dt.datetime.fromtimestamp(t, OSLO).hour for t in ts]
    wrong = [(dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(), g[0], w)
             for t, g, w in zip(ts, got, want) if g[0] != w]
    assert wrong == []
    # without summer time the standard offset all year (the old behaviour)
    assert all(g[1] == (t // 3600 + 1) % 24 for t, g in zip(ts, got))
    # 2026: 00:59:59 UTC is 01:59:59 CET on 29 March, 01:00 UTC is 03:00 CEST; on 25 October
    # 00:59:59 UTC is 02:59:59 CEST and 01:00 UTC 02:00 CET
    i = ts.index(_utc(2026, 3, 29, 1))
    assert got[i - 1][0] == 1 and got[i][0] == 3
    i = ts.index(_utc(2026, 10, 25, 1))
    assert got[i - 1][0] == 2 and got[i][0] == 2 and want[i - 1] == 2


def test_not_worn_counts_daytime_by_summer_time(tmp_path):
    # 1 July 05:30 UTC is 07:30 in Oslo (summer time: daytime from 07:00, counted) but would
    # be 06:30 with the fixed winter offset (night: not counted)
    rec = worn_recording(tmp_path, 200)
    july = "gw.epoch_s = %d" % _utc(2026, 7, 1, 5, 30)
    cfg = {"cancel_s": 5, "not_worn_min": 2, "heartbeat_s": 600}
    r = run_role(tmp_path, rec, cfg, end_ms=230000, model_setup=july)
    assert [(e[1], e[3]) for e in r["events"]] == [(0x66, [2]), (0x67, [3])], r["events"]
    r = run_role(tmp_path, rec, {**cfg, "summer_time": False}, end_ms=230000, model_setup=july)
    assert r["events"] == []
    # the same UTC time in January is 06:30 local: night either way
    r = run_role(tmp_path, rec, cfg, end_ms=230000, model_setup="gw.epoch_s = %d" % _utc(2027, 1, 15, 5, 30))
    assert r["events"] == []
