"""Non-INVITE transactions (RFC 3261 §17.1.2 client, §17.2.2 server) as tables; pure.

Client (our MESSAGE): ``trying`` → (1xx) ``proceeding`` → (final) ``completed`` →
(timer K) ``terminated``. Over UDP timer E retransmits the request: T1, 2·T1, 4·T1 …
capped at T2 while trying, every T2 once proceeding. Timer F (64·T1) ends the
transaction as a timeout. Over TCP/TLS nothing is retransmitted (the transport is
reliable), timer F still bounds the wait and timer K is 0. In ``completed``
retransmitted responses are absorbed, so the caller sees the final response once.

Server (a MESSAGE from the centre): the first request is answered at once
(``completed``); a retransmission of it gets the same response again; timer J (64·T1
on UDP, 0 on TCP/TLS) ends it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class TxState(enum.Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class TxEvent(enum.Enum):
    PROVISIONAL = "1xx"
    FINAL = "final"               # 200-699
    TIMER_E = "timer_e"
    TIMER_F = "timer_f"
    TIMER_K = "timer_k"
    TRANSPORT_ERROR = "transport_error"


class TxDo(enum.Enum):
    RETRANSMIT = "retransmit"     # send the request again and re-arm timer E
    DELIVER = "deliver"           # hand the final response to the caller
    TIMEOUT = "timeout"           # fail the caller with SipTimeout
    FAIL = "fail"                 # fail the caller with SipTransportError
    ARM_K = "arm_timer_k"         # keep absorbing retransmitted responses for timer K


_T, _P, _C, _X = TxState.TRYING, TxState.PROCEEDING, TxState.COMPLETED, TxState.TERMINATED
E = TxEvent

CLIENT_TRANSITIONS: dict[tuple[TxState, TxEvent], tuple[TxState, tuple[TxDo, ...]]] = {
    (_T, E.PROVISIONAL): (_P, ()),
    (_T, E.FINAL): (_C, (TxDo.DELIVER, TxDo.ARM_K)),
    (_T, E.TIMER_E): (_T, (TxDo.RETRANSMIT,)),
    (_T, E.TIMER_F): (_X, (TxDo.TIMEOUT,)),
    (_T, E.TRANSPORT_ERROR): (_X, (TxDo.FAIL,)),
    (_P, E.PROVISIONAL): (_P, ()),
    (_P, E.FINAL): (_C, (TxDo.DELIVER, TxDo.ARM_K)),
    (_P, E.TIMER_E): (_P, (TxDo.RETRANSMIT,)),
    (_P, E.TIMER_F): (_X, (TxDo.TIMEOUT,)),
    (_P, E.TRANSPORT_ERROR): (_X, (TxDo.FAIL,)),
    (_C, E.PROVISIONAL): (_C, ()),
    (_C, E.FINAL): (_C, ()),
    (_C, E.TIMER_K): (_X, ()),
}


def event_for_status(status: int) -> TxEvent:
    return TxEvent.PROVISIONAL if status < 200 else TxEvent.FINAL


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer values (seconds). T1 is the RTT estimate, T2 the cap of non-INVITE
    retransmission intervals, T4 how long a message may live in the network."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def f(self) -> float:
        return 64 * self.t1

    def k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def j(self, reliable: bool) -> float:
        return 0.0 if reliable else 64 * self.t1

    def next_e(self, state: TxState, interval: float) -> float:
        """Timer E after a retransmission at ``interval``."""
        return self.t2 if state is TxState.PROCEEDING else min(2 * interval, self.t2)


def transition_table_markdown() -> str:
    lines = ["| state | event | next state | actions |", "| --- | --- | --- | --- |"]
    for (state, event), (new, dos) in CLIENT_TRANSITIONS.items():
        lines.append(f"| {state.value} | {event.value} | {new.value} | {', '.join(d.value for d in dos) or '—'} |")
    return "\n".join(lines)


def step(state: TxState, event: TxEvent) -> tuple[TxState, tuple[TxDo, ...]] | None:
    """The transition, or None when the table has none (the event is ignored)."""
    return CLIENT_TRANSITIONS.get((state, event))
