"""The alarm lifecycle tables (gateway/domain/alarms.py): allowed pairs, illegal pairs,
custody, the one-shot device answer, and a fuzz of the forwarder that must never ask an
alarm for a transition its table does not have."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.domain.alarms import (ALARM_TRANSITIONS, CENTRE_TRANSITIONS, STORE_TRANSITIONS, Alarm, AlarmEvent,
                                   AlarmState, CentreEvent, CentreState, Custody, IllegalAlarmTransition, StoreEvent,
                                   StoreState, alarm_step, centre_step, markdown_tables, store_step)
from gateway.domain.forwarder import Forwarder
from gateway.domain.journal_types import AppendOutcome, AppendResult
from gateway.domain.model import Event, EventCode
from gateway.domain.payload import encode_ack
from gateway.domain.ports import JournalDepth
from gateway.domain.uplink_errors import UplinkError
from gateway.testing.clock import FakeClock
from gateway.testing.platform import FakePublisher
from gateway.testing.sip_centre import FakeCentre

S, E = AlarmState, AlarmEvent
GW = "gw-0001"
DOC = (Path(__file__).resolve().parents[2] / "docs" / "mqtt.md").read_text(encoding="utf-8")


def _alarm(i: int = 1) -> Event:
    return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", EventCode.BUTTON_PRESS, 1.0, 1.0, seq=i)


def test_doc_tables_match_code():
    assert markdown_tables() in DOC


def test_happy_path():
    state = S.SUBMITTED
    for ev, want in [(E.PUBLISHED, S.SENT), (E.PUBACK, S.PUBACKED), (E.PLATFORM_ACK, S.ACKNOWLEDGED)]:
        state = alarm_step(state, ev)
        assert state is want


def test_escalation_and_held_paths():
    assert alarm_step(S.SUBMITTED, E.NO_ROUTE) is S.HELD
    assert alarm_step(S.HELD, E.PUBLISHED) is S.SENT
    for s in (S.SENT, S.PUBACKED, S.HELD):
        assert alarm_step(s, E.ACK_TIMEOUT) is S.ESCALATED
        assert alarm_step(s, E.PLATFORM_ACK) is S.ACKNOWLEDGED
        assert alarm_step(s, E.REFUSED) is S.HELD
    assert alarm_step(S.ESCALATED, E.PUBLISHED) is S.SENT
    assert alarm_step(S.ESCALATED, E.NO_ROUTE) is S.HELD
    assert alarm_step(S.HELD, E.PUBACK) is S.HELD          # an old copy's PUBACK: the re-send is still owed


@pytest.mark.parametrize("state,event", [
    (S.SUBMITTED, E.PUBACK), (S.SUBMITTED, E.ACK_TIMEOUT), (S.SUBMITTED, E.PLATFORM_ACK),
    (S.PUBACKED, E.PUBLISHED), (S.PUBACKED, E.NO_ROUTE),
    (S.ESCALATED, E.ACK_TIMEOUT), (S.ESCALATED, E.PLATFORM_ACK), (S.ESCALATED, E.PUBACK),
    (S.ACKNOWLEDGED, E.PUBLISHED), (S.ACKNOWLEDGED, E.NO_ROUTE), (S.ACKNOWLEDGED, E.ACK_TIMEOUT),
])
def test_illegal_transitions_raise_with_fields(state, event):
    assert (state, event) not in ALARM_TRANSITIONS
    with pytest.raises(IllegalAlarmTransition) as exc:
        alarm_step(state, event, event_id="x-1")
    assert (exc.value.event_id, exc.value.state, exc.value.event) == ("x-1", state.value, event.value)
    assert isinstance(exc.value, UplinkError) and "allowed now" in str(exc.value)


def test_every_state_is_reachable_and_everything_can_end_acknowledged():
    reach, frontier = {S.SUBMITTED}, [S.SUBMITTED]
    while frontier:
        s = frontier.pop()
        for (f, _), t in ALARM_TRANSITIONS.items():
            if f is s and t not in reach:
                reach.add(t)
                frontier.append(t)
    assert reach == set(AlarmState)
    for s in AlarmState:   # from any state, acknowledged is reachable
        seen, todo = {s}, [s]
        while todo:
            x = todo.pop()
            for (f, _), t in ALARM_TRANSITIONS.items():
                if f is x and t not in seen:
                    seen.add(t)
                    todo.append(t)
        assert S.ACKNOWLEDGED in seen, s


def test_transient_states_only_publish_and_acknowledged_only_absorbs_late_reports():
    for s in (S.SUBMITTED, S.ESCALATED):
        assert {e for (f, e) in ALARM_TRANSITIONS if f is s} == {E.PUBLISHED, E.NO_ROUTE}
    assert all(t is S.ACKNOWLEDGED for (f, _), t in ALARM_TRANSITIONS.items() if f is S.ACKNOWLEDGED)
    assert S.ACKNOWLEDGED.terminal and not any(s.terminal for s in AlarmState if s is not S.ACKNOWLEDGED)


def test_store_table():
    assert store_step(StoreState.PENDING, StoreEvent.WRITE_FAILED) is StoreState.FAILED
    assert store_step(StoreState.FAILED, StoreEvent.WRITTEN) is StoreState.STORED
    for ev in StoreEvent:                  # stored stays stored (concurrent retries)
        assert store_step(StoreState.STORED, ev) is StoreState.STORED
    assert len(STORE_TRANSITIONS) == len(StoreState) * len(StoreEvent)


def test_centre_leg_table():
    assert centre_step(CentreState.NONE, CentreEvent.HANDED) is CentreState.OPEN
    assert centre_step(CentreState.OPEN, CentreEvent.SNU_OK) is CentreState.DONE
    assert centre_step(CentreState.OPEN, CentreEvent.SNU_WRONG) is CentreState.REFUSED
    for s in (CentreState.DONE, CentreState.REFUSED, CentreState.SKIPPED):   # never handed over again
        with pytest.raises(IllegalAlarmTransition):
            centre_step(s, CentreEvent.HANDED)
    for s in (S.SENT, S.PUBACKED, S.HELD):                 # the centre's snu 0 acknowledges like the platform's
        assert alarm_step(s, E.CENTRE_ACK) is S.ACKNOWLEDGED
    a = Alarm(_alarm())
    a.fire(E.PUBLISHED)
    a.fire(E.CENTRE_ACK)
    assert a.custody == Custody.CENTRE and a.custody.upstream


def test_custody_only_grows_and_answer_is_once():
    answers: list[tuple[str, bool]] = []
    a = Alarm(_alarm(), lambda e, new: answers.append((e.event_id, new)))
    assert a.custody is Custody.NONE and a.in_flight
    a.fire(E.PUBLISHED)
    a.fire(E.PUBACK)
    assert a.custody == Custody.BROKER and a.custody.upstream and not a.in_flight
    a.fire(E.ACK_TIMEOUT)
    a.fire(E.PUBLISHED)                    # the re-sent copy does not undo the PUBACK
    assert a.state is S.SENT and a.custody == Custody.BROKER and not a.stranded
    a.stored(StoreEvent.WRITTEN)
    assert a.custody == Custody.BROKER | Custody.JOURNAL
    a.fire(E.PLATFORM_ACK)
    assert Custody.PLATFORM in a.custody
    a.answer_device(True)
    a.answer_device(False)
    assert answers == [(a.event.event_id, True)]


def test_restored_alarms():
    d = Alarm.restored(_alarm(), delivered=True)
    assert (d.state, d.store, d.custody, d.attempt) == (S.PUBACKED, StoreState.STORED,
                                                        Custody.BROKER | Custody.JOURNAL, 1)
    n = Alarm.restored(_alarm(), delivered=False)
    assert (n.state, n.custody) == (S.SUBMITTED, Custody.JOURNAL)


def test_stranded_means_sent_unpubacked_on_a_dead_route():
    route = FakePublisher("primary")
    a = Alarm(_alarm())
    a.fire(E.PUBLISHED)
    a.sent_on = route
    assert not a.stranded
    route.set_connected(False)
    assert a.stranded
    a.fire(E.PUBACK)
    assert not a.stranded


# ---- fuzz: the forwarder never asks for a pair the table lacks --------------------------
class ScriptedJournal:
    """JournalFront whose append outcomes the fuzz decides (no disk)."""

    def __init__(self) -> None:
        self.pending: list = []
        self.fail = False
        self.counter = 0

    def submit(self, event, callback=None):
        self.pending.append((event, callback))

    def run(self, limit: int | None = None) -> None:
        batch, self.pending = self.pending[:limit], self.pending[len(self.pending[:limit]):]
        for ev, cb in batch:
            if cb is not None:
                cb(ev, AppendResult(AppendOutcome.FAILED, error="disk full") if self.fail
                   else AppendResult(AppendOutcome.STORED, rowid=1))

    def mark_delivered(self, ids):
        pass

    def mark_acknowledged(self, event_id, status):
        pass

    def call(self, fn, callback=None, on_error=None):
        pass

    def next_gateway_counter(self) -> int:
        self.counter += 1
        return self.counter

    def depth(self) -> JournalDepth:
        return JournalDepth(0, 0, 0, 0, 0)


class DeferredPublisher(FakePublisher):
    """A route whose connection listeners run later, as a real link's do (handed to the
    loop): by then the route may be down again."""

    def __init__(self, route: str, clock: FakeClock, queue: list) -> None:
        super().__init__(route, clock=clock)
        self._queue = queue

    def set_connected(self, up: bool) -> None:
        self._connected = up
        self._queue.extend((cb, up) for cb in self.listeners)


def run_steps(steps: list[tuple[int, int]], centre: str | None = None) -> Forwarder:
    """Drive a forwarder with fakes through ``steps`` of (operation, argument). ``centre``:
    also a SCAIP centre (FakeCentre), ``"primary"`` or ``"fallback"`` (ops 10-12 answer it)."""
    clock = FakeClock()
    journal = ScriptedJournal()
    later: list = []
    lane, pub, fb = (DeferredPublisher("primary", clock, later), DeferredPublisher("primary", clock, later),
                     DeferredPublisher("fallback", clock, later))
    fwd = Forwarder(gateway_id=GW, journal=journal, primary=pub, fallback=fb, alarm_lane=lane, clock=clock,
                    ack_timeout_s=10, centre=(lambda listener: FakeCentre(listener)) if centre else None,
                    centre_first=centre == "primary")
    arc: FakeCentre | None = fwd.centre  # type: ignore[assignment]
    fwd.start()
    routes = [lane, pub, fb]
    n = 0
    for op, arg in steps:
        if op == 0:
            n += 1
            fwd.submit(_alarm(n), lambda e, new: None)
        elif op == 1 and n:
            fwd.submit(_alarm(1 + arg % n), lambda e, new: None)       # a device repeat
        elif op == 2:
            routes[arg % 3].puback(1 + arg % 2, ok=arg < 4)
        elif op == 3:
            r = routes[arg % 3]
            r.set_connected(not r.connected)
        elif op == 4:
            journal.fail = arg >= 3
            journal.run(limit=1 + arg % 2)
        elif op == 5 and n:
            eid = _alarm(1 + arg % n).event_id
            pub.deliver(f"wt/v1/gw/{GW}/ack", encode_ack(event_id=eid, status="received", by="t", at=0))
        elif op in (6, 7):
            calls, later[:] = later[:1 + arg], later[1 + arg:]
            for cb, up in calls:
                cb(up)
        elif op >= 10 and arc is not None and arc.open:
            eid = list(arc.open)[arg % len(arc.open)]
            if op == 10:
                arc.answer(eid, 0)
            elif op == 11:
                arc.answer(eid, (1, 2, 3, 7, 4, 5)[arg])
            else:
                arc.escalate(eid)
        else:
            clock.advance(arg * 2.5)
            fwd.poll()
        s = fwd.status()
        assert 0 <= s.alarms_held <= s.alarms_unacknowledged
    json.dumps(fwd.status().to_dict())
    return fwd


STEP = st.tuples(st.integers(0, 12), st.integers(0, 5))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=5, max_size=80), st.sampled_from([None, "primary", "fallback"]))
def test_forwarder_fuzz_stays_inside_the_table(steps, centre):
    run_steps(steps, centre)


def test_every_table_entry_is_used_by_the_forwarder(monkeypatch):
    """A seeded random walk of the forwarder uses every pair of the tables: no dead entries
    (together with the fuzz above: the tables are exactly what the forwarder does)."""
    import random

    import gateway.domain.alarms as alarms

    used: set = set()
    real_alarm, real_store, real_centre = alarms.alarm_step, alarms.store_step, alarms.centre_step

    def alarm_spy(state, event, **kw):
        used.add((state, event))
        return real_alarm(state, event, **kw)

    def store_spy(state, event, **kw):
        used.add((state, event))
        return real_store(state, event, **kw)

    def centre_spy(state, event, **kw):
        used.add((state, event))
        return real_centre(state, event, **kw)

    monkeypatch.setattr(alarms, "alarm_step", alarm_spy)
    monkeypatch.setattr(alarms, "store_step", store_spy)
    monkeypatch.setattr(alarms, "centre_step", centre_spy)
    rng = random.Random(8)
    for i in range(300):
        run_steps([(rng.randrange(13), rng.randrange(6)) for _ in range(80)], (None, "primary", "fallback")[i % 3])
    missing = (set(ALARM_TRANSITIONS) | set(STORE_TRANSITIONS) | set(CENTRE_TRANSITIONS)) - used
    assert not missing, sorted((s.value, e.value) for s, e in missing)
