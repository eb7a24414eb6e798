"""The alarm lifecycle as state machines (tables), after the ``fleet/upgrades/_states.py`` pattern.

One :class:`Alarm` per alarm the forwarder handles, with two explicit dimensions:

- :class:`AlarmState` — delivery, i.e. what the forwarder still owes the platform for this
  alarm (table :data:`ALARM_TRANSITIONS`)::

      submitted --published--> sent --puback--> pubacked --platform_ack--> acknowledged
      submitted|escalated --no_route--> held --published--> sent
      sent|pubacked --refused--> held                (broker refused the copy / no route took it)
      sent|pubacked|held --ack_timeout--> escalated --published--> sent   (re-sent on every route)
      sent|pubacked|held --centre_ack--> acknowledged  (a SCAIP centre answered snu 0)

  ``submitted`` and ``escalated`` are transient: they last while the forwarder publishes.
- :class:`CentreState` — the alarm's leg at a SCAIP alarm receiving centre, when the gateway
  has one (table :data:`CENTRE_TRANSITIONS`): ``none`` → ``open`` (handed to the SCAIP
  route, which re-sends it with the same ``ref``) → ``done`` (``snu`` 0) or ``refused``
  (``snu`` 1/2/3/7: never sent there again); ``skipped`` for a technical alarm about the
  centre itself, which only the other routes carry.
- :class:`StoreState` — the journal write (table :data:`STORE_TRANSITIONS`): ``pending`` →
  ``stored``, or ``failed`` (disk full / I/O error: held in memory, retried every 5 s) →
  ``stored``.

Besides those, an alarm records where it is *safe* (:class:`Custody`): in the journal
(``stored``), at a broker (a PUBACK), at the platform (its ack) or at the centre (``snu`` 0). Custody only grows: a
re-sent copy does not undo an earlier PUBACK. The invariant it serves: a device's repeat of
an alarm is ACKed to the device only when the alarm is in someone's custody — an alarm held
only in RAM is not, because a ``kill -9`` would lose it.

A pair not in a table raises :class:`IllegalAlarmTransition`: it is a bug in the caller, not
a condition of the network. A copy's late PUBACK (or refusal) after the platform ack is in
the table as a no-op. docs/mqtt.md shows the tables; a test keeps them
in sync with these (``markdown_tables()``).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

from gateway.domain.model import Event
from gateway.domain.payload import AckStatus
from gateway.domain.uplink_errors import UplinkError

StoredCallback = Callable[[Event, bool], None]


class IllegalAlarmTransition(UplinkError):
    """An alarm was asked to take an event its state does not allow (a forwarder bug)."""

    def __init__(self, message: str, *, event_id: str, state: str, event: str) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.state = state
        self.event = event


class AlarmState(enum.Enum):
    SUBMITTED = "submitted"          # accepted (device, rule, gateway) or restored; first publication in progress
    SENT = "sent"                    # the latest copy is on a route, not PUBACKed yet
    PUBACKED = "pubacked"            # a broker PUBACKed the latest copy; waiting for the platform ack
    HELD = "held"                    # no route took the latest copy: re-sent on the next poll or (re)connect
    ESCALATED = "escalated"          # no platform ack in time: being re-sent on every connected route
    ACKNOWLEDGED = "acknowledged"    # the platform acked it (received/accepted/resolved): nothing left to send

    @property
    def terminal(self) -> bool:
        return self is AlarmState.ACKNOWLEDGED


class AlarmEvent(enum.Enum):
    PUBLISHED = "published"          # a connected route took a copy (publish() returned)
    NO_ROUTE = "no_route"            # no route is connected
    PUBACK = "puback"                # a broker PUBACKed a copy
    REFUSED = "refused"              # the broker refused a copy, or every route's publish() raised
    ACK_TIMEOUT = "ack_timeout"      # the platform ack deadline passed
    PLATFORM_ACK = "platform_ack"    # wt.ack/1 for this alarm
    CENTRE_ACK = "centre_ack"        # the SCAIP alarm centre answered snu 0 (docs/scaip.md)


S, E = AlarmState, AlarmEvent
ALARM_TRANSITIONS: dict[tuple[AlarmState, AlarmEvent], AlarmState] = {
    (S.SUBMITTED, E.PUBLISHED): S.SENT,
    (S.SUBMITTED, E.NO_ROUTE): S.HELD,
    (S.SENT, E.PUBACK): S.PUBACKED,
    (S.SENT, E.REFUSED): S.HELD,
    (S.SENT, E.PUBLISHED): S.SENT,               # stranded on a dead route: re-sent on the one that came back
    (S.SENT, E.NO_ROUTE): S.HELD,                # ... and that one is gone again already
    (S.SENT, E.ACK_TIMEOUT): S.ESCALATED,
    (S.SENT, E.PLATFORM_ACK): S.ACKNOWLEDGED,
    (S.PUBACKED, E.PUBACK): S.PUBACKED,          # another copy's PUBACK (an escalation goes to every route)
    (S.PUBACKED, E.REFUSED): S.HELD,
    (S.PUBACKED, E.ACK_TIMEOUT): S.ESCALATED,
    (S.PUBACKED, E.PLATFORM_ACK): S.ACKNOWLEDGED,
    (S.HELD, E.PUBLISHED): S.SENT,
    (S.HELD, E.NO_ROUTE): S.HELD,
    (S.HELD, E.PUBACK): S.HELD,                  # an earlier copy's PUBACK: the re-send is still owed
    (S.HELD, E.REFUSED): S.HELD,
    (S.HELD, E.ACK_TIMEOUT): S.ESCALATED,
    (S.HELD, E.PLATFORM_ACK): S.ACKNOWLEDGED,
    # the centre's snu 0 counts like the platform's received ack (custody: the centre)
    (S.SENT, E.CENTRE_ACK): S.ACKNOWLEDGED,
    (S.PUBACKED, E.CENTRE_ACK): S.ACKNOWLEDGED,
    (S.HELD, E.CENTRE_ACK): S.ACKNOWLEDGED,
    (S.ESCALATED, E.PUBLISHED): S.SENT,
    (S.ESCALATED, E.NO_ROUTE): S.HELD,
    # a copy's late PUBACK (or refusal) after the platform ack: nothing changes. (A further
    # ack, accepted/resolved, finds the alarm already forgotten: hook and journal only.)
    (S.ACKNOWLEDGED, E.PUBACK): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.REFUSED): S.ACKNOWLEDGED,
}


class CentreState(enum.Enum):
    NONE = "none"                    # not handed to the SCAIP route (yet)
    OPEN = "open"                    # the SCAIP route has it and re-sends (same ref) until the centre answers
    DONE = "done"                    # the centre answered snu 0
    REFUSED = "refused"              # snu 1/2/3/7 (or not encodable): our message is wrong, never re-sent there
    SKIPPED = "skipped"              # a technical alarm about the centre: the other routes carry it


class CentreEvent(enum.Enum):
    HANDED = "handed"                # submitted to the SCAIP route
    SNU_OK = "snu_ok"                # snu 0
    SNU_WRONG = "snu_wrong"          # snu 1/2/3/7, or the report could not be encoded


CS, CE = CentreState, CentreEvent
CENTRE_TRANSITIONS: dict[tuple[CentreState, CentreEvent], CentreState] = {
    (CS.NONE, CE.HANDED): CS.OPEN,
    (CS.OPEN, CE.SNU_OK): CS.DONE,
    (CS.OPEN, CE.SNU_WRONG): CS.REFUSED,
}


class StoreState(enum.Enum):
    PENDING = "pending"              # the journal write is queued on the writer thread
    STORED = "stored"                # durable in the journal
    FAILED = "failed"                # the write failed (disk full / I/O error): held in memory, retried every 5 s


class StoreEvent(enum.Enum):
    WRITTEN = "written"              # append outcome stored or duplicate (it was already there)
    WRITE_FAILED = "write_failed"    # append outcome failed


ST, SE = StoreState, StoreEvent
STORE_TRANSITIONS: dict[tuple[StoreState, StoreEvent], StoreState] = {
    (ST.PENDING, SE.WRITTEN): ST.STORED,
    (ST.PENDING, SE.WRITE_FAILED): ST.FAILED,
    (ST.FAILED, SE.WRITTEN): ST.STORED,          # a retry got through
    (ST.FAILED, SE.WRITE_FAILED): ST.FAILED,     # and another retry in 5 s
    # two retries were in flight at once (a slow disk): the later outcome changes nothing
    (ST.STORED, SE.WRITTEN): ST.STORED,
    (ST.STORED, SE.WRITE_FAILED): ST.STORED,
}


class Custody(enum.Flag):
    """Where an alarm is safe besides the gateway's memory. Only ever grows."""

    NONE = 0
    JOURNAL = enum.auto()            # StoreState.STORED
    BROKER = enum.auto()             # a broker PUBACKed a copy
    PLATFORM = enum.auto()           # the platform acked it
    CENTRE = enum.auto()             # the SCAIP alarm centre answered snu 0

    @property
    def upstream(self) -> bool:
        """Safe beyond this gateway (a broker, the platform or the centre has it)."""
        return bool(self & (Custody.BROKER | Custody.PLATFORM | Custody.CENTRE))


def alarm_step(state: AlarmState, event: AlarmEvent, *, event_id: str = "?") -> AlarmState:
    """Next delivery state; a pair not in :data:`ALARM_TRANSITIONS` raises."""
    nxt = ALARM_TRANSITIONS.get((state, event))
    if nxt is None:
        allowed = sorted(e.value for (s, e) in ALARM_TRANSITIONS if s is state)
        raise IllegalAlarmTransition(
            f"alarm {event_id} is {state.value}; it cannot take {event.value} "
            f"(allowed now: {', '.join(allowed) or 'nothing'})",
            event_id=event_id, state=state.value, event=event.value)
    return nxt


def centre_step(state: CentreState, event: CentreEvent, *, event_id: str = "?") -> CentreState:
    """Next centre leg state; a pair not in :data:`CENTRE_TRANSITIONS` raises."""
    nxt = CENTRE_TRANSITIONS.get((state, event))
    if nxt is None:
        raise IllegalAlarmTransition(f"alarm {event_id}: centre leg {state.value} cannot take {event.value}",
                                     event_id=event_id, state=state.value, event=event.value)
    return nxt


def store_step(state: StoreState, event: StoreEvent, *, event_id: str = "?") -> StoreState:
    """Next journal state; a pair not in :data:`STORE_TRANSITIONS` raises."""
    nxt = STORE_TRANSITIONS.get((state, event))
    if nxt is None:
        raise IllegalAlarmTransition(f"alarm {event_id}: journal state {state.value} cannot take {event.value}",
                                     event_id=event_id, state=state.value, event=event.value)
    return nxt


@dataclass
class AlarmRecord:
    """One alarm as shown by ``gateway status`` (latency = first upstream custody - received_at:
    a broker's PUBACK or the centre's ``snu`` 0)."""

    event_id: str
    type: str
    received_at: float
    attempts: int = 0
    route: str | None = None
    latency_ms: float | None = None
    ack: str | None = None
    escalations: int = 0
    snu: int | None = None                   # the SCAIP centre's last status number for it
    centre_latency_ms: float | None = None   # received_at -> the centre's snu 0


class Alarm:
    """One alarm in the forwarder: its two state machines, its custody and its counters.

    ``attempt``: publication round (the ``attempt`` field of the next copy is ``attempt+1``);
    ``deadline``: monotonic time by which the platform ack is expected (set at the first
    publication); ``escalations``: how many times the deadline passed; ``sent_on``: the
    route carrying the latest copy; ``ack``: the platform's status once acknowledged.
    """

    __slots__ = ("event", "record", "on_stored", "state", "store", "centre", "attempt", "ack", "deadline",
                 "escalations", "sent_on", "_upstream", "_answered")

    def __init__(self, event: Event, on_stored: StoredCallback | None = None, *,
                 state: AlarmState = AlarmState.SUBMITTED, store: StoreState = StoreState.PENDING,
                 centre: CentreState = CentreState.NONE,
                 upstream: Custody = Custody.NONE, attempt: int = 0, answered: bool = False) -> None:
        self.event = event
        self.record = AlarmRecord(event.event_id, event.code.type_name, event.received_at)
        self.on_stored = on_stored
        self.state = state
        self.store = store
        self.centre = centre
        self.attempt = attempt
        self.ack: AckStatus | None = None
        self.deadline: float | None = None
        self.escalations = 0
        self.sent_on: Any = None
        self._upstream = upstream
        self._answered = answered

    @classmethod
    def restored(cls, event: Event, *, delivered: bool) -> "Alarm":
        """An alarm read back from the journal at start-up (stored; its device was answered
        before the restart). ``delivered``: a broker PUBACKed it then; it waits for the
        platform ack instead of being published again."""
        if delivered:
            return cls(event, state=AlarmState.PUBACKED, store=StoreState.STORED, upstream=Custody.BROKER,
                       attempt=1, answered=True)
        return cls(event, store=StoreState.STORED, attempt=1, answered=True)

    # ---- transitions -------------------------------------------------------------------
    def fire(self, event: AlarmEvent) -> AlarmState:
        """Take a delivery event (custody grows with PUBACK and PLATFORM_ACK)."""
        self.state = alarm_step(self.state, event, event_id=self.event.event_id)
        if event is AlarmEvent.PUBACK:
            self._upstream |= Custody.BROKER
        elif event is AlarmEvent.PLATFORM_ACK:
            self._upstream |= Custody.PLATFORM
        elif event is AlarmEvent.CENTRE_ACK:
            self._upstream |= Custody.CENTRE
        return self.state

    def centre_fire(self, event: CentreEvent) -> CentreState:
        """Take a SCAIP centre outcome (the leg's own table)."""
        self.centre = centre_step(self.centre, event, event_id=self.event.event_id)
        return self.centre

    def stored(self, event: StoreEvent) -> StoreState:
        """Take a journal outcome."""
        self.store = store_step(self.store, event, event_id=self.event.event_id)
        return self.store

    # ---- facts -------------------------------------------------------------------------
    @property
    def custody(self) -> Custody:
        return self._upstream | (Custody.JOURNAL if self.store is StoreState.STORED else Custody.NONE)

    @property
    def stranded(self) -> bool:
        """The only copy sits un-PUBACKed on a route that is down (it may never arrive, or
        arrive after later alarms when that route's session comes back)."""
        return (self.state is AlarmState.SENT and not self._upstream.upstream and self.sent_on is not None
                and not self.sent_on.connected)

    @property
    def in_flight(self) -> bool:
        """On the wire and in nobody's custody upstream yet (``gateway status`` inflight)."""
        return self.state is not AlarmState.HELD and not self._upstream.upstream

    def answer_device(self, new: bool) -> None:
        """Tell the device (``on_stored``) — once per alarm; later outcomes stay silent."""
        if not self._answered and self.on_stored is not None:
            self._answered = True
            self.on_stored(self.event, new)


def _table_markdown(table: dict, states: type[enum.Enum], events: type[enum.Enum]) -> list[str]:
    """States down, events across; a cell is the next state, ``·`` where the pair raises."""
    lines = ["| from \\ event | " + " | ".join(f"`{e.value}`" for e in events) + " |",
             "| --- |" + " --- |" * len(events)]
    for s in states:
        cells = [f"`{table[(s, e)].value}`" if (s, e) in table else "·" for e in events]
        lines.append(f"| `{s.value}` | " + " | ".join(cells) + " |")
    return lines


def markdown_tables() -> str:
    """The tables as docs/mqtt.md shows them (kept in sync by a test)."""
    return "\n".join(["Delivery (`AlarmState` × `AlarmEvent`, table `ALARM_TRANSITIONS`):", "",
                      *_table_markdown(ALARM_TRANSITIONS, AlarmState, AlarmEvent), "",
                      "Journal (`StoreState` × `StoreEvent`, table `STORE_TRANSITIONS`):", "",
                      *_table_markdown(STORE_TRANSITIONS, StoreState, StoreEvent), "",
                      "SCAIP centre leg (`CentreState` × `CentreEvent`, table `CENTRE_TRANSITIONS`):", "",
                      *_table_markdown(CENTRE_TRANSITIONS, CentreState, CentreEvent)])
