"""Benefit statistics: pure computation with hand-made inputs, CSV and SVG output, SQL inputs."""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import pytest

from fleet.monitoring._stats import Period, compute, percentile, split_periods, to_csv, uptime_fraction
from fleet.monitoring._svg import bar_chart

DAY = 86400.0
T0 = 1_793_491_200.0          # 2026-11-01T00:00:00Z


def test_split_periods_calendar():
    weeks = split_periods(T0, T0 + 30 * DAY, "week")
    assert weeks[0].end - weeks[0].start == 1 * DAY          # 2026-11-01 is a Sunday
    assert all(p.end - p.start == 7 * DAY for p in weeks[1:-1])
    months = split_periods(T0, T0 + 61 * DAY, "month")
    assert [p.label for p in months] == ["2026-11-01..2026-12-01", "2026-12-01..2027-01-01"]
    with pytest.raises(ValueError):
        split_periods(T0, T0 + DAY, "year")


def test_uptime_fraction_uses_state_at_period_start():
    p = Period(100.0, 200.0)
    assert uptime_fraction([(50.0, True), (150.0, False)], None, p) == pytest.approx(0.5)
    assert uptime_fraction([(120.0, False), (180.0, True)], True, p) == pytest.approx(0.4)
    assert uptime_fraction([], None, p) is None                # never heard of: unknown, not 0 %


def test_compute_alarms_acks_cancellations_uptime_and_night_checks():
    gm = {"gw-a": "0301", "gw-b": "4601"}
    alarms = [
        {"gateway_id": "gw-a", "class": "care", "type": "fall_detected", "test": False, "occurred_at": T0 + 10,
         "ack_received_at": T0 + 11, "ack_accepted_at": T0 + 70},
        {"gateway_id": "gw-a", "class": "care", "type": "button_press", "test": False, "occurred_at": T0 + 20,
         "ack_received_at": None, "ack_accepted_at": T0 + 50},
        {"gateway_id": "gw-a", "class": "care", "type": "button_press", "test": False, "occurred_at": T0 + 30,
         "ack_received_at": None, "ack_accepted_at": None},
        {"gateway_id": "gw-a", "class": "care", "type": "button_press", "test": True, "occurred_at": T0 + 40},
        {"gateway_id": "gw-a", "class": "technical", "type": "low_battery", "test": False, "occurred_at": T0 + 50},
        {"gateway_id": "gw-a", "class": "event", "type": "fall_cancelled", "test": False, "occurred_at": T0 + 60},
        {"gateway_id": "gw-b", "class": "care", "type": "door_at_night", "test": False, "occurred_at": T0 + DAY + 5,
         "ack_accepted_at": T0 + DAY + 125},
    ]
    stats = compute(split_periods(T0, T0 + 2 * DAY, "day"), alarms=alarms,
                    transitions=[{"gateway_id": "gw-a", "at": T0 + DAY / 2, "online": False}],
                    initial_state={"gw-a": True, "gw-b": True}, gateway_municipality=gm,
                    night_installations=[{"municipality": "0301", "start": T0 - DAY, "end": None}],
                    baselines={"0301": 2.0}, municipalities=["0301", "4601"])
    by = {(s.municipality, s.period.start): s.summary() for s in stats}
    a1 = by[("0301", T0)]
    assert (a1["care_alarms"], a1["technical_alarms"], a1["acknowledged"], a1["unacknowledged"]) == (3, 1, 2, 1)
    assert a1["alarms_by_type"] == {"button_press": 2, "fall_detected": 1, "low_battery": 1}
    assert a1["ack_median_s"] == 45.0 and a1["cancelled_false_alarms"] == 1
    assert a1["uptime_pct"] == 50.0 and a1["night_checks_replaced"] == 2.0
    assert by[("0301", T0 + DAY)]["uptime_pct"] == 0.0
    b2 = by[("4601", T0 + DAY)]
    assert (b2["care_alarms"], b2["ack_median_s"], b2["uptime_pct"], b2["night_checks_replaced"]) == (1, 120.0, 100.0, None)
    rows = list(csv.DictReader(io.StringIO(to_csv(stats))))
    assert {"municipality": "0301", "period_start": "2026-11-01", "period_end": "2026-11-02", "metric": "alarms",
            "key": "button_press", "value": "2"} in rows
    assert percentile([1, 2, 3, 4], 0.5) == 2.5


def test_svg_is_well_formed_and_shows_every_bar():
    svg = bar_chart("Care alarms <per> period", ["w1", "w2"], {"0301": [3, None], "4601": [1, 5]}, unit=" s")
    root = ET.fromstring(svg)
    rects = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
    assert len(rects) == 3
    assert root.find("{http://www.w3.org/2000/svg}title").text == "Care alarms <per> period"
