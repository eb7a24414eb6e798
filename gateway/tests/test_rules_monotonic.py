"""Rule durations are monotonic (issue 10, F19): a wall-clock step (an NTP correction, a wrong
RTC at boot) neither delays, suppresses nor fires early a bed, dose, door, mains or uplink
alarm; the night window and the alarm's timestamps stay wall time; pending timers persist as
wall anchors and come back after a restart by the documented rule (gateway/domain/rules/_base.py,
"Time")."""
from __future__ import annotations

import pytest

import dataclasses
import datetime as dt
import json
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.mains import EmulatedMainsInput, MainsState
from gateway.config import BedRule, DoorRule, DoseRule
from gateway.domain.model import Event, EventCode
from gateway.domain.rules import (BedNotReturnedRule, DoorAtNightRule, MainsRule, MissedDoseRule, RuleEngine,
                                  UplinkRule, in_window)
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import device_event
from gateway.tests._kit import FakeJournal, FakeSink

OSLO = ZoneInfo("Europe/Oslo")
BED, DOOR, DISP = "a4c1380a0001", "a4c1380a0002", "a4c1380a0003"
HOUR = 3600.0
MIN = 60.0


def at(y, mo, d, h, mi) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=OSLO).timestamp()


NIGHT = at(2026, 11, 23, 23, 50)       # inside the bed window 20:30-06:00 and the door window 23:00-06:00
MORNING = at(2026, 11, 23, 8, 0)
_seq = iter(range(1, 1_000_000))


def ev(code: EventCode, device: str, clock: FakeClock, **data) -> Event:
    """An event received now, stamped with the gateway's wall clock (as ingress stamps it)."""
    return device_event(next(_seq), code, clock.time(), device=device, data=data)


def codes(raised) -> list[EventCode]:
    return [r.code for r in raised]


# ------------------------------------------------------------------ bed
@pytest.mark.security
def test_F19_bed_alarm_not_delayed_by_a_wall_step_backwards():
    clock = FakeClock(NIGHT)
    rule = BedNotReturnedRule(BedRule(max_out_min=30), OSLO, clock)
    rule.on_event(ev(EventCode.BED_OUT, BED, clock))
    clock.advance(10 * MIN)
    clock.set(clock.t - HOUR)                          # NTP steps the wall clock back an hour
    clock.advance(19 * MIN + 59)
    assert list(rule.tick(clock.time())) == []
    clock.advance(1)                                   # 30 minutes out, by the monotonic clock
    [alarm] = rule.tick(clock.time())
    assert alarm.code is EventCode.BED_NOT_RETURNED and alarm.data["out_min"] == 30.0
    assert alarm.data["left_at"] == NIGHT              # the exit's own (wall) timestamp
    assert alarm.occurred_at == clock.time()           # the alarm is stamped with wall time now


def test_bed_alarm_not_fired_early_by_a_wall_step_forwards():
    clock = FakeClock(NIGHT)
    rule = BedNotReturnedRule(BedRule(max_out_min=30), OSLO, clock)
    rule.on_event(ev(EventCode.BED_OUT, BED, clock))
    clock.advance(10 * MIN)
    clock.set(clock.t + HOUR)                          # a wrong RTC corrected forward
    assert list(rule.tick(clock.time())) == []         # wall says 70 minutes: still only 10
    clock.advance(19 * MIN)
    assert list(rule.tick(clock.time())) == []
    clock.advance(1 * MIN)
    assert codes(rule.tick(clock.time())) == [EventCode.BED_NOT_RETURNED]


def test_the_night_window_is_wall_time_of_day():
    """A step changes which window an exit falls in (time of day is the wall clock's business),
    but not how long the rule then waits."""
    clock = FakeClock(at(2026, 11, 23, 19, 0))         # 19:00: before the window
    rule = BedNotReturnedRule(BedRule(max_out_min=30), OSLO, clock)
    rule.on_event(ev(EventCode.BED_OUT, BED, clock))
    clock.advance(HOUR)
    assert list(rule.tick(clock.time())) == [] and rule.pending == {}
    clock.set(at(2026, 11, 23, 22, 0))                 # stepped to 22:00: now inside
    rule.on_event(ev(EventCode.BED_OUT, BED, clock))
    clock.advance(30 * MIN)
    assert codes(rule.tick(clock.time())) == [EventCode.BED_NOT_RETURNED]


def test_a_buffered_exit_counts_from_when_it_happened():
    """The frame's age (received_at - occurred_at) moves the start back on the monotonic clock."""
    clock = FakeClock(NIGHT)
    rule = BedNotReturnedRule(BedRule(max_out_min=30), OSLO, clock)
    late = dataclasses.replace(ev(EventCode.BED_OUT, BED, clock), occurred_at=NIGHT - 10 * MIN)
    rule.on_event(late)
    clock.advance(19 * MIN)
    assert list(rule.tick(clock.time())) == []
    clock.advance(1 * MIN)
    assert codes(rule.tick(clock.time())) == [EventCode.BED_NOT_RETURNED]


# ------------------------------------------------------------------ dose
def test_dose_deadline_ignores_wall_steps_both_ways():
    for step in (-HOUR, +HOUR):
        clock = FakeClock(MORNING)
        rule = MissedDoseRule(DoseRule(delay_min=30), clock)
        rule.on_event(ev(EventCode.DOSE_DUE, DISP, clock, slot=1, scheduled_min=480))
        clock.advance(5 * MIN)
        clock.set(clock.t + step)
        clock.advance(24 * MIN + 59)
        assert list(rule.tick(clock.time())) == [], step
        clock.advance(1)
        [missed] = rule.tick(clock.time())
        assert missed.code is EventCode.DOSE_MISSED and missed.data["due_at"] == MORNING, step


# ------------------------------------------------------------------ door
@pytest.mark.security
def test_F19_door_repeat_suppression_ignores_a_wall_step_backwards():
    """Back an hour right after an alarm: with wall differences every opening for the next hour
    and five minutes would be muted; the repeat limit is five minutes, so the next opening
    after five minutes alarms."""
    clock = FakeClock(at(2026, 11, 24, 2, 15))
    rule = DoorAtNightRule(DoorRule(repeat_after_min=5), OSLO, clock)
    assert codes(rule.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock))) == [EventCode.DOOR_AT_NIGHT]
    clock.set(clock.t - HOUR)                          # 01:15 on the wall, still inside 23:00-06:00
    clock.advance(4 * MIN)
    assert list(rule.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock))) == []
    clock.advance(1 * MIN)
    assert codes(rule.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock))) == [EventCode.DOOR_AT_NIGHT]


def test_door_repeat_suppression_ignores_a_wall_step_forwards():
    clock = FakeClock(at(2026, 11, 24, 2, 15))
    rule = DoorAtNightRule(DoorRule(repeat_after_min=5), OSLO, clock)
    assert codes(rule.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock))) == [EventCode.DOOR_AT_NIGHT]
    clock.set(clock.t + HOUR)                          # 03:15 on the wall
    clock.advance(1 * MIN)
    assert list(rule.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock))) == []   # one minute: still muted
    clock.advance(4 * MIN)
    assert codes(rule.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock))) == [EventCode.DOOR_AT_NIGHT]


# ------------------------------------------------------------------ technical rules
def test_mains_debounce_and_uplink_threshold_ignore_wall_steps():
    clock = FakeClock(MORNING)
    mains = EmulatedMainsInput(MainsState.ON)
    up = {"v": True}
    m_rule = MainsRule("gw-1", mains, 5, clock)
    u_rule = UplinkRule("gw-1", lambda: up["v"], 60, clock)
    assert list(m_rule.tick(clock.time())) == [] and list(u_rule.tick(clock.time())) == []
    mains.set(MainsState.OFF)
    up["v"] = False
    lost_at = clock.time()
    assert list(m_rule.tick(clock.time())) == [] and list(u_rule.tick(clock.time())) == []
    clock.set(clock.t - HOUR)                          # back an hour
    clock.advance(5)
    [lost] = m_rule.tick(clock.time())
    assert lost.code is EventCode.MAINS_LOST and lost.occurred_at == lost_at
    clock.set(clock.t + 2 * HOUR)                      # forward two hours: not yet 60 s down
    clock.advance(50)
    assert list(u_rule.tick(clock.time())) == []
    clock.advance(5)
    assert codes(u_rule.tick(clock.time())) == [EventCode.UPLINK_LOST]
    up["v"] = True
    [up_again] = u_rule.tick(clock.time())
    assert up_again.code is EventCode.UPLINK_RESTORED and up_again.data["down_s"] == 60.0
    mains.set(MainsState.ON)
    m_rule.tick(clock.time())
    clock.advance(5)
    [restored] = m_rule.tick(clock.time())
    assert restored.code is EventCode.MAINS_RESTORED and restored.data["down_s"] == 60.0


# ------------------------------------------------------------------ persisted timers
def _engine(clock: FakeClock, store: FakeJournal, sink: FakeSink) -> RuleEngine:
    return RuleEngine("gw-1", [BedNotReturnedRule(BedRule(max_out_min=30), OSLO, clock),
                               MissedDoseRule(DoseRule(delay_min=30), clock)], FakeJournal(), sink, clock,
                      state=store)


def test_a_wall_step_rewrites_the_persisted_anchor_and_a_restart_keeps_the_deadline():
    """Exit at 23:50; ten minutes later NTP steps the wall clock back an hour (it was an hour
    fast): the anchor is re-written on today's wall clock (22:50). The gateway restarts five
    minutes later (monotonic restarts near 0); the alarm still comes 30 minutes after the exit."""
    clock, store = FakeClock(NIGHT), FakeJournal()
    first = _engine(clock, store, FakeSink())
    first.on_event(ev(EventCode.BED_OUT, BED, clock))
    assert json.loads(store.state["rules.bed"]) == {BED: [NIGHT, False, NIGHT]}
    writes = store.state_writes
    clock.advance(10 * MIN)
    first.tick()
    assert store.state_writes == writes                # nothing changed: nothing written
    clock.set(clock.t - HOUR)
    first.tick()
    assert json.loads(store.state["rules.bed"]) == {BED: [NIGHT, False, NIGHT - HOUR]}
    clock.advance(5 * MIN)
    rebooted = FakeClock(clock.time(), mono=3.0)       # a new boot: monotonic starts again
    sink = FakeSink()
    second = _engine(rebooted, store, sink)
    rebooted.advance(14 * MIN + 59)
    second.tick()
    assert sink.events == []
    rebooted.advance(1)
    second.tick()
    assert codes(sink.events) == [EventCode.BED_NOT_RETURNED] and sink.events[0].data["left_at"] == NIGHT


def test_restore_with_a_wall_clock_behind_the_anchor_restarts_the_wait_not_suppresses_it():
    """The documented rule: time already spent = wall now - anchor, never negative. A Pi that
    boots with its clock an hour behind the anchor waits the full delay again; the alarm is
    late, never lost."""
    store = FakeJournal()
    store.state["rules.dose"] = json.dumps({f"{DISP}/1/480": [MORNING, False, MORNING]}).encode()
    clock = FakeClock(MORNING - HOUR, mono=2.0)
    sink = FakeSink()
    eng = _engine(clock, store, sink)
    clock.advance(29 * MIN)
    eng.tick()
    assert sink.events == []
    clock.advance(1 * MIN)
    eng.tick()
    assert codes(sink.events) == [EventCode.DOSE_MISSED]


def test_restore_with_the_deadline_passed_during_the_outage_alarms_at_the_first_tick():
    store = FakeJournal()
    store.state["rules.bed"] = json.dumps({BED: [NIGHT, True]}).encode()      # stored before anchors existed
    clock = FakeClock(NIGHT + 45 * MIN, mono=2.0)
    sink = FakeSink()
    _engine(clock, store, sink).tick()
    assert codes(sink.events) == [EventCode.BED_NOT_RETURNED] and sink.events[0].test is True
    assert sink.events[0].data["out_min"] == 45.0


def test_non_finite_stored_state_is_refused_not_restored():
    store = FakeJournal()
    store.state["rules.bed"] = b'{"a4c1380a0001": [NaN, false, 1.0]}'
    eng = _engine(FakeClock(NIGHT), store, FakeSink())
    assert eng.rules[0].pending == {}


# ------------------------------------------------------------------ property
steps = st.lists(st.one_of(
    st.tuples(st.just("pass"), st.integers(1, 20 * 60)),                      # time passes (seconds)
    st.tuples(st.just("step"), st.integers(-2 * 86400, 2 * 86400)),           # the wall clock is stepped
    st.tuples(st.just("door"), st.integers(0, 0)),                            # the door opens
), max_size=30)


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(1, 90), st.integers(0, 30))
def test_wall_steps_never_move_a_deadline(timeline, limit_min, repeat_min):
    """Random wall steps among time passing: the bed and dose alarms fire at the tick where
    the monotonic time since the exit / due reaches the limit, and every door opening alarms
    exactly when it is inside the window on the wall clock and the last alarm is at least
    ``repeat_after_min`` monotonic minutes old."""
    clock = FakeClock(NIGHT)
    bed = BedNotReturnedRule(BedRule(max_out_min=limit_min), OSLO, clock)
    dose = MissedDoseRule(DoseRule(delay_min=limit_min), clock)
    door = DoorAtNightRule(DoorRule(repeat_after_min=repeat_min), OSLO, clock)
    start = clock.monotonic()
    bed.on_event(ev(EventCode.BED_OUT, BED, clock))
    dose.on_event(ev(EventCode.DOSE_DUE, DISP, clock, slot=1, scheduled_min=480))
    limit = limit_min * 60
    fired: set[str] = set()
    before = 0.0                                        # monotonic time since the start at the last tick
    last_door: float | None = None
    for kind, n in timeline:
        if kind == "pass":
            clock.advance(n)
        elif kind == "step":
            clock.set(max(0.0, clock.t + n))
        else:
            expect = in_window(clock.time(), door.cfg.window_start, door.cfg.window_end, OSLO) and (
                last_door is None or clock.monotonic() - last_door >= repeat_min * 60)
            got = codes(door.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock)))
            assert got == ([EventCode.DOOR_AT_NIGHT] if expect else [])
            if expect:
                last_door = clock.monotonic()
        now = clock.monotonic() - start
        for name, rule in (("bed", bed), ("dose", dose)):
            due = name not in fired and before < limit <= now      # the first tick at or past the deadline
            assert bool(list(rule.tick(clock.time()))) is due, (name, before, now)
            if due:
                fired.add(name)
        before = now
    assert fired == ({"bed", "dose"} if before >= limit else set())
