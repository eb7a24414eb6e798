"""Property tests: the bed and dose rules against a brute-force reference over random timelines."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import BedRule, DoseRule
from gateway.domain.model import EventCode
from gateway.domain.rules import BedNotReturnedRule, MissedDoseRule, in_window
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import device_event

OSLO = ZoneInfo("Europe/Oslo")
T0 = dt.datetime(2026, 11, 23, 18, 0, tzinfo=OSLO).timestamp()
DEV = "a4c1380a0001"


def ev(code, t, n, **data):
    return device_event(n, code, t, device=DEV, data=data)


def at(clock: FakeClock, t: float) -> float:
    """Time passes (wall and monotonic together) up to wall time ``t``; returns ``t``."""
    clock.advance(t - clock.t)
    return t


steps = st.lists(st.tuples(st.sampled_from(["out", "in", "tick"]), st.integers(1, 40 * 60)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(1, 90))
def test_bed_rule_matches_reference(timeline, max_out_min):
    cfg = BedRule(max_out_min=max_out_min)
    clock = FakeClock(T0)
    rule = BedNotReturnedRule(cfg, OSLO, clock)
    limit = max_out_min * 60
    t = T0
    out_since: float | None = None        # reference model
    expected: list[float] = []
    got: list[float] = []
    for n, (kind, gap) in enumerate(timeline, 1):
        # ticks happen every minute in between, as the engine does
        end = t + gap
        while t + 60 < end:
            t += 60
            got += [r.occurred_at for r in rule.tick(at(clock, t))]
            if out_since is not None and t - out_since >= limit:
                expected.append(t)
                out_since = None
        t = end
        if kind == "out":
            rule.on_event(ev(EventCode.BED_OUT, at(clock, t), n))
            if in_window(t, cfg.window_start, cfg.window_end, OSLO):
                out_since = out_since if out_since is not None else t
            else:
                out_since = None
        elif kind == "in":
            rule.on_event(ev(EventCode.BED_IN, at(clock, t), n))
            out_since = None
        got += [r.occurred_at for r in rule.tick(at(clock, t))]
        if out_since is not None and t - out_since >= limit:
            expected.append(t)
            out_since = None
    assert got == expected       # same alarms at the same ticks


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["due", "taken", "missed", "tick"]), st.integers(0, 2),
                          st.integers(1, 20 * 60)), max_size=40), st.integers(1, 60))
def test_dose_rule_matches_reference(timeline, delay_min):
    clock = FakeClock(T0)
    rule = MissedDoseRule(DoseRule(delay_min=delay_min), clock)
    due: dict[int, float] = {}
    t = T0
    expected, got = [], []
    for n, (kind, slot, gap) in enumerate(timeline, 1):
        end = t + gap
        for d in sorted({v + delay_min * 60 for v in due.values() if t < v + delay_min * 60 <= end}):
            got += sorted(r.data["slot"] for r in rule.tick(at(clock, d)))     # tick exactly at each deadline
            for s in sorted(due):
                if d - due[s] >= delay_min * 60:
                    expected.append(s)
                    del due[s]
        t = end
        sched = 480 + slot
        if kind == "due":
            rule.on_event(ev(EventCode.DOSE_DUE, at(clock, t), n, slot=slot, scheduled_min=sched))
            due.setdefault(slot, t)
        elif kind in ("taken", "missed"):
            code = EventCode.DOSE_TAKEN if kind == "taken" else EventCode.DOSE_MISSED
            rule.on_event(ev(code, at(clock, t), n, slot=slot, scheduled_min=sched))
            due.pop(slot, None)
        got += sorted(r.data["slot"] for r in rule.tick(at(clock, t)))
        for s in sorted(due):
            if t - due[s] >= delay_min * 60:
                expected.append(s)
                del due[s]
    assert got == expected
