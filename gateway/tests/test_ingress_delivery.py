"""Property: with retransmits, lost ACKs, slow journal writes and gateway restarts, every
event a device sends ends up in the journal exactly once, and nothing is acked before it
is stored."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codec import Ack, AckStatus, EventPayload, MsgType, decode_wire, encode_frame
from gateway.domain.ingress import Ingress
from gateway.domain.model import EventCode

DEV = "a4c1380a1b2c"
KEY = bytes(range(16))


class Clock:
    def __init__(self) -> None:
        self.t = 1_795_413_600.0

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


class Journal:
    def __init__(self) -> None:
        self.events: dict[str, object] = {}
        self.appends = 0
        self.state: dict[str, bytes] = {}

    def append(self, event) -> bool:
        self.appends += 1
        if event.event_id in self.events:
            return False
        self.events[event.event_id] = event
        return True

    def contains(self, event_id: str) -> bool:
        return event_id in self.events

    def get_state(self, key: str) -> bytes | None:
        return self.state.get(key)

    def set_state(self, key: str, value: bytes) -> None:
        self.state[key] = value


def frame(seq: int) -> bytes:
    code = EventCode.BUTTON_PRESS if seq % 3 == 0 else EventCode.MOTION
    return encode_frame(MsgType.EVENT, DEV, seq, EventPayload(code, 0, {}), key=KEY, urgent=True)


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
    clock, journal = Clock(), Journal()
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
            clock.t += arg
        elif action == "restart":
            submitted.clear()           # lost with the process; the device still has them
            acks_in_flight.clear()
            ing = Ingress("gw", {DEV: KEY}, journal, clock)

    # drain: the device keeps retrying (after its retry timeout), the gateway keeps storing
    for _ in range(5):
        clock.t += 31
        for seq in sorted(unacked):
            feed(seq)
        while submitted:
            ev = submitted.pop()
            acks_in_flight.append(ing.ack_frame(ev, duplicate=not journal.append(ev)))
        deliver_acks()
    assert not unacked, f"never acknowledged: {sorted(unacked)}"
    assert set(journal.events) == {f"{DEV}-{s:08x}" for s in range(1, next_seq)}
