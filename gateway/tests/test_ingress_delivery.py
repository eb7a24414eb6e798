"""Property: with retransmits, lost ACKs, slow journal writes and gateway restarts, every
event a device sends ends up in the journal exactly once, and nothing is acked before it
is stored."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codec import Ack, AckStatus, decode_wire
from gateway.domain.ingress import Ingress
from gateway.domain.model import EventCode
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import TEST_DEVICE as DEV, TEST_KEY as KEY, event_frame
from gateway.tests._kit import FakeJournal


def frame(seq: int) -> bytes:
    return event_frame(seq, EventCode.BUTTON_PRESS if seq % 3 == 0 else EventCode.MOTION, urgent=True)


ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("send_new"), st.just(0)),
    st.tuples(st.just("resend"), st.integers(0, 30)),
    st.tuples(st.just("store"), st.integers(0, 5)),
    st.tuples(st.just("drop_acks"), st.just(0)),
    st.tuples(st.just("wait"), st.integers(1, 60)),
    st.tuples(st.just("restart"), st.just(0)),
), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS)
def test_every_event_stored_exactly_once(actions):
    clock, journal = FakeClock(1_795_413_600.0), FakeJournal()
    ing = Ingress("gw", {DEV: KEY}, journal, clock)
    next_seq = 1
    unacked: set[int] = set()          # device outbox
    submitted: list = []               # events handed to the sink, not yet durable
    acks_in_flight: list[bytes] = []

    def deliver_acks() -> None:
        for raw in acks_in_flight:
            f = decode_wire(raw)
            p = f.decode_payload()
            assert f.downlink and f.verify(KEY) and isinstance(p, Ack)
            assert p.status in (AckStatus.STORED, AckStatus.DUPLICATE)
            assert journal.contains(f"{DEV}-{p.acked_seq:08x}"), "ACK before the event was stored"
            unacked.discard(p.acked_seq)
        acks_in_flight.clear()

    def feed(seq: int) -> None:
        res = ing.feed("l", frame(seq))
        assert not res.rejects, res.rejects
        submitted.extend(res.events)
        acks_in_flight.extend(raw for _, raw in res.replies)

    for action, arg in actions:
        if action == "send_new":
            unacked.add(next_seq)
            feed(next_seq)
            next_seq += 1
        elif action == "resend" and unacked:
            feed(sorted(unacked)[arg % len(unacked)])
        elif action == "store" and submitted:
            ev = submitted.pop(arg % len(submitted))
            is_new = journal.append(ev)
            acks_in_flight.append(ing.ack_frame(ev, duplicate=not is_new))
            deliver_acks()
        elif action == "drop_acks":
            acks_in_flight.clear()
        elif action == "wait":
            clock.advance(arg)
        elif action == "restart":
            submitted.clear()           # lost with the process; the device still has them
            acks_in_flight.clear()
            ing = Ingress("gw", {DEV: KEY}, journal, clock)

    # drain: the device keeps retrying (after its retry timeout), the gateway keeps storing
    for _ in range(5):
        clock.advance(31)
        for seq in sorted(unacked):
            feed(seq)
        while submitted:
            ev = submitted.pop()
            acks_in_flight.append(ing.ack_frame(ev, duplicate=not journal.append(ev)))
        deliver_acks()
    assert not unacked, f"never acknowledged: {sorted(unacked)}"
    assert set(journal.events) == {f"{DEV}-{s:08x}" for s in range(1, next_seq)}
