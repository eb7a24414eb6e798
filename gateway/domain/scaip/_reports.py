"""Per-report reply handling as a state machine table (pure; the route adapter drives it).

One SCAIP report (one event, one ``ref``) lives from submission until the centre
answers ``snu`` 0 (``done``) or says our message is wrong (``refused``). Every re-send
carries the same ``ref``. The tracker never does I/O: its methods take ``now``
(monotonic seconds) and return :class:`Action` values the adapter executes (put an
attempt on the wire, tell the listener). :data:`TRANSITIONS` is the whole behaviour;
docs/scaip.md shows it (:func:`transition_table_markdown`, kept identical by a test).

- ``snu`` 0 → done; the listener hears ``delivered`` (with ``escalated`` if the alarm had
  been escalated meanwhile, so the local signal can stop).
- ``snu`` 4 hold / 6 busy / a SIP failure (timer F, transport error, error response) →
  re-send after a capped, jittered back-off.
- ``snu`` 5 not treated → back-off and re-send, and escalate at once: the centre said it
  will not handle it, so someone else must.
- ``snu`` 1/2/3/7 → refused: the listener raises a technical alarm and sends the alarm on
  the other route. Never silently dropped.
- A SIP 2xx without ``<mrs>`` → wait ``reply_timeout_s`` for the reply as a separate
  MESSAGE; none → re-send.
- An alarm without ``snu`` 0 within ``escalate_after_s`` of its submission → escalate once
  (other route + local signal) and keep re-sending here until the centre answers.

Late answers count: a ``snu`` 0 that arrives while the tracker is backing off (the reply
to an earlier attempt, same ``ref``) finishes the report. SIP results are per attempt: a
result for an attempt that is no longer the current one is ignored.

Alarms go on the wire at once. Every other report waits for one of ``window`` slots
(``queued``), so a replayed backlog never has more than a window of messages open in
front of an alarm and goes out in submission (journal) order.

**An outage keeps the order.** A SIP failure (timer F, a transport error) marks the centre
unreachable. While it is, only the oldest report that failed keeps re-sending on its
back-off (the *probe*); the others that failed wait without a timer (*parked*) and no new
non-alarm report takes a slot. The first answer from the centre — to the probe, to a
heartbeat (:meth:`ReportTracker.centre_answered`), to anything — makes it reachable
again, and every parked and queued report goes out at once in submission order: the
centre's first arrivals are in journal order. An alarm raised during the outage is still
sent at once (an alarm never waits), so it may arrive ahead of older parked reports.
Back-offs the centre asked for (``snu`` 4/6) are not parked: the centre set that pace.
"""
from __future__ import annotations

import collections
import enum
import random
from dataclasses import dataclass, field
from typing import Iterable

from gateway.domain.model import Event
from gateway.domain.scaip._codes import Snu
from gateway.domain.scaip._mapping import ReportKind
from gateway.domain.scaip._xml import ScaipReply


class ReportState(enum.Enum):
    QUEUED = "queued"                  # waiting for a send slot (non-alarm reports beyond the window)
    SENDING = "sending"                # the MESSAGE of the current attempt has no final SIP response yet
    AWAITING_REPLY = "awaiting_reply"  # SIP 2xx without <mrs>: the reply comes as a separate MESSAGE
    BACKING_OFF = "backing_off"        # waiting to re-send
    DONE = "done"                      # snu 0
    REFUSED = "refused"                # snu 1/2/3/7: our message was wrong

    @property
    def terminal(self) -> bool:
        return self in (ReportState.DONE, ReportState.REFUSED)


class Input(enum.Enum):
    SLOT = "slot"                          # a send slot is free
    SIP_ACCEPTED = "sip_accepted"          # 2xx final response to the current attempt, no <mrs> in it
    SIP_FAILED = "sip_failed"              # timer F, transport error, or a non-2xx final response
    SNU_OK = "snu_0"
    SNU_RETRY = "snu_4_6"                  # hold / busy
    SNU_NOT_TREATED = "snu_5"
    SNU_WRONG = "snu_1_2_3_7"              # too long / invalid format / wrong content / tag missing
    REPLY_TIMEOUT = "reply_timeout"        # reply_timeout_s after a 2xx without <mrs>
    RETRY_DUE = "retry_due"                # back-off over
    ESCALATION_DUE = "escalation_due"      # escalate_after_s after submission, still no snu 0


class Do(enum.Enum):
    SEND = "send"                  # put the next attempt on the wire (same ref)
    AWAIT_REPLY = "await_reply"    # arm the reply timer
    BACK_OFF = "back_off"          # schedule RETRY_DUE after the back-off delay
    DELIVERED = "delivered"        # listener: the centre has it
    ESCALATE = "escalate"          # listener: use the other route and signal locally (alarms, once)
    REFUSED = "refused"            # listener: technical alarm on the other route


Q, S, W, B, D_, R = (ReportState.QUEUED, ReportState.SENDING, ReportState.AWAITING_REPLY,
                     ReportState.BACKING_OFF, ReportState.DONE, ReportState.REFUSED)
I = Input

#: (state, input) → (next state, actions). Pairs absent here are ignored (and counted).
TRANSITIONS: dict[tuple[ReportState, Input], tuple[ReportState, tuple[Do, ...]]] = {
    (Q, I.SLOT): (S, (Do.SEND,)),
    (S, I.SIP_ACCEPTED): (W, (Do.AWAIT_REPLY,)),
    (S, I.SIP_FAILED): (B, (Do.BACK_OFF,)),
    (S, I.SNU_OK): (D_, (Do.DELIVERED,)),
    (S, I.SNU_RETRY): (B, (Do.BACK_OFF,)),
    (S, I.SNU_NOT_TREATED): (B, (Do.BACK_OFF, Do.ESCALATE)),
    (S, I.SNU_WRONG): (R, (Do.REFUSED, Do.ESCALATE)),
    (S, I.ESCALATION_DUE): (S, (Do.ESCALATE,)),
    (W, I.SNU_OK): (D_, (Do.DELIVERED,)),
    (W, I.SNU_RETRY): (B, (Do.BACK_OFF,)),
    (W, I.SNU_NOT_TREATED): (B, (Do.BACK_OFF, Do.ESCALATE)),
    (W, I.SNU_WRONG): (R, (Do.REFUSED, Do.ESCALATE)),
    (W, I.REPLY_TIMEOUT): (S, (Do.SEND,)),
    (W, I.ESCALATION_DUE): (W, (Do.ESCALATE,)),
    (B, I.RETRY_DUE): (S, (Do.SEND,)),
    (B, I.SNU_OK): (D_, (Do.DELIVERED,)),
    (B, I.SNU_WRONG): (R, (Do.REFUSED, Do.ESCALATE)),
    (B, I.ESCALATION_DUE): (B, (Do.ESCALATE,)),
}


def input_for(snu: Snu) -> Input:
    if snu is Snu.OK:
        return Input.SNU_OK
    if snu in (Snu.HOLD, Snu.BUSY):
        return Input.SNU_RETRY
    if snu is Snu.NOT_TREATED:
        return Input.SNU_NOT_TREATED
    return Input.SNU_WRONG


def transition_table_markdown() -> str:
    lines = ["| state | input | next state | actions |", "| --- | --- | --- | --- |"]
    for (state, inp), (new, dos) in TRANSITIONS.items():
        lines.append(f"| {state.value} | {inp.value} | {new.value} | {', '.join(d.value for d in dos)} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off before re-send n (0-based): uniform(initial_s/2, min(cap_s, initial_s*factor**n))."""

    initial_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 30.0

    def delay_s(self, n: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.initial_s * (self.factor ** min(n, 32)))
        return rng.uniform(min(self.initial_s / 2, ceiling), ceiling)


@dataclass
class Report:
    ref: str
    event: Event
    body: bytes
    kind: ReportKind
    submitted_at: float
    state: ReportState = ReportState.QUEUED
    attempt: int = 0
    backoffs: int = 0
    sent_at: float | None = None
    retry_at: float | None = None
    reply_deadline: float | None = None
    escalate_at: float | None = None
    escalated: bool = False
    last_snu: Snu | None = None
    last_error: str = ""
    finished_at: float | None = None
    failed: bool = False                 # backing off after a SIP failure (not a hold/busy the centre asked for)


@dataclass(frozen=True)
class Action:
    """What the adapter must do. ``attempt`` is the attempt a SEND starts (1-based)."""

    do: Do
    ref: str
    event: Event
    attempt: int = 0
    body: bytes = b""
    reply: ScaipReply | None = None
    reason: str = ""
    escalated: bool = False


@dataclass(frozen=True)
class ReportView:
    """One report as ``gateway status`` shows it."""

    ref: str
    event_id: str
    type: str
    kind: str
    state: str
    attempts: int
    last_snu: int | None
    escalated: bool
    last_error: str
    age_s: float


@dataclass
class ReportTracker:
    """All open SCAIP reports of one route (see the module doc).

    ``reply_timeout_s`` (10): after a 2xx without ``<mrs>``; ``escalate_after_s`` (30):
    alarms only, counted from submission; ``window`` (8): non-alarm reports open at once;
    ``retry``: back-off policy; ``rng``: injected randomness for the jitter.
    """

    reply_timeout_s: float = 10.0
    escalate_after_s: float = 30.0
    window: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    history_size: int = 32
    counters: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self.centre_up = True                # False after a SIP failure until the centre answers again
        self._open: dict[str, Report] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._history: collections.deque[Report] = collections.deque(maxlen=self.history_size)

    # ---- inputs ---------------------------------------------------------------------

    def submit(self, event: Event, body: bytes, *, ref: str, kind: ReportKind, now: float) -> list[Action]:
        """Track a new report. Alarms are sent at once; others when a slot is free. A ref
        that is already open is not submitted twice (idempotent)."""
        if ref in self._open:
            self.counters["duplicate_submit"] += 1
            return []
        rep = Report(ref=ref, event=event, body=body, kind=kind, submitted_at=now)
        if kind is ReportKind.ALARM:
            rep.escalate_at = now + self.escalate_after_s
        self._open[ref] = rep
        self.counters["submitted"] += 1
        if kind is ReportKind.ALARM:
            return self._gate(self._apply(rep, Input.SLOT, now), now)
        self._queue.append(ref)
        return self._fill_window(now)

    def on_sip_result(self, ref: str, attempt: int, *, accepted: bool, now: float, detail: str = "") -> list[Action]:
        """The SIP transaction of ``attempt`` ended: 2xx without ``<mrs>`` (``accepted``)
        or failed (``detail`` says how). A reply inside the 2xx goes to :meth:`on_reply`."""
        rep = self._open.get(ref)
        if rep is None or attempt != rep.attempt:
            self.counters["stale_sip_result"] += 1
            return []
        if not accepted:
            rep.last_error = detail[:200]
            self.counters["sip_failed"] += 1
            self.centre_unreachable()
            return self._gate(self._apply(rep, Input.SIP_FAILED, now), now)
        out = self._apply(rep, Input.SIP_ACCEPTED, now)
        return out + self._answered(now)

    def on_reply(self, reply: ScaipReply, now: float) -> list[Action]:
        """An ``<mrs>`` (from a 2xx body or a separate MESSAGE). Unknown refs are counted."""
        self.counters[f"snu_{int(reply.snu)}"] += 1
        rep = self._open.get(reply.ref)
        if rep is None:
            if any(h.ref == reply.ref for h in self._history):
                self.counters["late_reply"] += 1
            else:
                self.counters["unknown_ref"] += 1
            return self._answered(now)
        rep.last_snu = reply.snu
        out = self._apply(rep, input_for(reply.snu), now, reply=reply)
        return out + self._answered(now)

    def centre_answered(self, now: float) -> list[Action]:
        """Something from the centre came back (a heartbeat's reply, a 2xx): reachable."""
        return self._answered(now)

    def centre_unreachable(self) -> None:
        """A MESSAGE failed at the SIP level (timer F, transport): park retries behind one probe."""
        if self.centre_up:
            self.centre_up = False
            self.counters["centre_unreachable"] += 1

    def poll(self, now: float) -> list[Action]:
        """Fire every deadline that has passed (retry, reply timeout, escalation)."""
        out: list[Action] = []
        for rep in list(self._open.values()):
            if rep.escalate_at is not None and now >= rep.escalate_at:
                rep.escalate_at = None
                out += self._apply(rep, Input.ESCALATION_DUE, now, reason=f"no snu 0 within {self.escalate_after_s:g} s")
            if rep.ref not in self._open:
                continue
            if rep.retry_at is not None and now >= rep.retry_at:
                rep.retry_at = None
                out += self._apply(rep, Input.RETRY_DUE, now)
            elif rep.reply_deadline is not None and now >= rep.reply_deadline:
                rep.reply_deadline = None
                self.counters["reply_timeout"] += 1
                out += self._apply(rep, Input.REPLY_TIMEOUT, now)
        return self._gate(out, now)

    def next_deadline(self) -> float | None:
        times = [t for rep in self._open.values() for t in (rep.retry_at, rep.reply_deadline, rep.escalate_at)
                 if t is not None]
        return min(times) if times else None

    # ---- views ----------------------------------------------------------------------

    def get(self, ref: str) -> Report | None:
        return self._open.get(ref)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def views(self, now: float) -> list[ReportView]:
        def view(r: Report) -> ReportView:
            return ReportView(r.ref, r.event.event_id, r.event.code.type_name, r.kind.value, r.state.value,
                              r.attempt, None if r.last_snu is None else int(r.last_snu), r.escalated,
                              r.last_error, round(now - r.submitted_at, 3))
        return [view(r) for r in self._open.values()] + [view(r) for r in reversed(self._history)]

    # ---- the machine ----------------------------------------------------------------

    def _busy_slots(self) -> int:
        return sum(1 for r in self._open.values()
                   if r.kind is not ReportKind.ALARM and r.state is not ReportState.QUEUED)

    def _answered(self, now: float) -> list[Action]:
        """Reachable again: every parked and queued report goes out, in submission order."""
        if self.centre_up:
            return []
        self.centre_up = True
        self.counters["centre_back"] += 1
        out: list[Action] = []
        for rep in list(self._open.values()):       # dicts keep submission order
            if rep.ref not in self._open:
                continue
            if rep.state is ReportState.BACKING_OFF and rep.failed:
                rep.retry_at = None
                self.counters["resumed"] += 1
                out += self._apply(rep, Input.RETRY_DUE, now)
            elif rep.state is ReportState.QUEUED and self._busy_slots() < self.window:
                if rep.ref in self._queue:
                    self._queue.remove(rep.ref)
                out += self._apply(rep, Input.SLOT, now)
        return out + self._fill_window(now)

    def _gate(self, out: list[Action], now: float) -> list[Action]:
        """While the centre is unreachable: one probe (the oldest failed report) keeps its
        back-off timer, every other failed report waits without one."""
        if self.centre_up:
            return out
        failed = [r for r in self._open.values() if r.state is ReportState.BACKING_OFF and r.failed]
        if failed:
            probe, parked = failed[0], failed[1:]
            for r in parked:
                if r.retry_at is not None:
                    r.retry_at = None
                    self.counters["parked"] += 1
            if probe.retry_at is None:
                probe.retry_at = now + self.retry.delay_s(probe.backoffs, self.rng)
                probe.backoffs += 1
        return out

    def _probing(self) -> bool:
        return any(r.state in (ReportState.SENDING, ReportState.AWAITING_REPLY)
                   or (r.state is ReportState.BACKING_OFF and r.failed) for r in self._open.values())

    def _fill_window(self, now: float) -> list[Action]:
        out: list[Action] = []
        if not self.centre_up and self._probing():
            return out                               # wait for the centre: journal order on its return
        while self._queue and self._busy_slots() < self.window and (self.centre_up or not out):
            rep = self._open.get(self._queue.popleft())
            if rep is not None and rep.state is ReportState.QUEUED:
                out += self._apply(rep, Input.SLOT, now)
        return out

    def _apply(self, rep: Report, inp: Input, now: float, *, reply: ScaipReply | None = None,
               reason: str = "") -> list[Action]:
        step = TRANSITIONS.get((rep.state, inp))
        if step is None:
            self.counters[f"ignored_{inp.value}"] += 1
            return []
        rep.state, dos = step
        out: list[Action] = []
        for do in dos:
            if do is Do.SEND:
                rep.attempt += 1
                rep.sent_at = now
                rep.retry_at = rep.reply_deadline = None
                self.counters["attempts"] += 1
                out.append(Action(Do.SEND, rep.ref, rep.event, attempt=rep.attempt, body=rep.body))
            elif do is Do.AWAIT_REPLY:
                rep.reply_deadline = now + self.reply_timeout_s
            elif do is Do.BACK_OFF:
                rep.reply_deadline = None
                rep.failed = inp is Input.SIP_FAILED
                rep.retry_at = now + self.retry.delay_s(rep.backoffs, self.rng)
                rep.backoffs += 1
            elif do is Do.DELIVERED:
                self.counters["delivered"] += 1
                out.append(Action(Do.DELIVERED, rep.ref, rep.event, attempt=rep.attempt, reply=reply,
                                  escalated=rep.escalated))
            elif do is Do.REFUSED:
                self.counters["refused"] += 1
                out.append(Action(Do.REFUSED, rep.ref, rep.event, attempt=rep.attempt, reply=reply,
                                  reason=f"snu {int(reply.snu) if reply else '?'}"))
            elif do is Do.ESCALATE:
                if rep.kind is ReportKind.ALARM and not rep.escalated:
                    rep.escalated = True
                    rep.escalate_at = None
                    self.counters["escalated"] += 1
                    why = reason or (f"snu {int(reply.snu)}" if reply else "escalation")
                    out.append(Action(Do.ESCALATE, rep.ref, rep.event, attempt=rep.attempt, reply=reply, reason=why))
        if rep.state.terminal:
            rep.finished_at = now
            rep.retry_at = rep.reply_deadline = rep.escalate_at = None
            del self._open[rep.ref]
            self._history.append(rep)
            out += self._fill_window(now)
        return out


def actions_of(kind: Do, actions: Iterable[Action]) -> list[Action]:
    return [a for a in actions if a.do is kind]
