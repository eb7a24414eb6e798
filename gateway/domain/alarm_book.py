"""The forwarder's book of alarms: which alarms are live, which were acknowledged lately.

Invariant: an alarm is *live* (in the book, in submission order) from the moment it is
submitted or restored until it is acknowledged — by the platform's ack or by the SCAIP
centre's ``snu`` 0 — and not one step longer; then it is forgotten, and its event is
remembered among the last :data:`RECENT_ALARMS` acknowledged ones, so that a device's late
repeat is not published again. An id is never live and recent at once: the forwarder
checks :meth:`AlarmBook.known` before it tracks a new alarm. Alarm records (what
``gateway status`` shows) outlive both: the last ``last_alarms`` are kept.

The book holds no I/O and no routes. It iterates over a snapshot, so the forwarder may
forget or track alarms while it walks the book (a re-send can acknowledge an alarm).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterator

from gateway.domain.alarms import Alarm, AlarmRecord, AlarmState
from gateway.domain.model import Event

__all__ = ["AlarmBook", "AlarmCounts", "RECENT_ALARMS"]

#: Acknowledged alarm ids remembered (a device's late repeat is not published again).
RECENT_ALARMS = 1024


@dataclass(frozen=True)
class AlarmCounts:
    """The live alarms as ``gateway status`` counts them."""

    in_flight: int          # on the wire, in nobody's custody upstream yet
    unacknowledged: int
    held: int               # no route took the latest copy


class AlarmBook:
    """Live alarms by event id (submission order), recently acknowledged events, records.

    ``book[event_id]`` and ``event_id in book`` look at the live alarms only.
    """

    def __init__(self, *, last_alarms: int = 20, recent: int = RECENT_ALARMS) -> None:
        self._live: dict[str, Alarm] = {}                 # in submission order (dicts keep it)
        self._recent: collections.OrderedDict[str, Event] = collections.OrderedDict()
        self._recent_max = recent
        self._records: collections.deque[AlarmRecord] = collections.deque(maxlen=last_alarms)

    # ---- live alarms -------------------------------------------------------------------
    def track(self, a: Alarm) -> None:
        """A new live alarm (submitted or restored); its record joins the status records."""
        self._live[a.event.event_id] = a
        self._records.append(a.record)

    def get(self, event_id: str) -> Alarm | None:
        return self._live.get(event_id)

    def __getitem__(self, event_id: str) -> Alarm:
        return self._live[event_id]

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._live

    def __len__(self) -> int:
        return len(self._live)

    def live(self) -> Iterator[Alarm]:
        """The live alarms in submission order (a snapshot: safe to change the book meanwhile)."""
        return iter(list(self._live.values()))

    def forget_if_done(self, a: Alarm) -> bool:
        """Forget ``a`` once it is acknowledged (nothing is left to re-send or escalate) and
        remember its event; True if it was forgotten."""
        if a.state is not AlarmState.ACKNOWLEDGED:
            return False
        self._live.pop(a.event.event_id, None)
        self.remember(a.event)
        return True

    # ---- recently acknowledged -----------------------------------------------------------
    def remember(self, event: Event) -> None:
        """``event`` was acknowledged: a repeat of it is not published again."""
        self._recent[event.event_id] = event
        self._recent.move_to_end(event.event_id)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    def acknowledged(self, event_id: str) -> bool:
        """Acknowledged lately (and forgotten)."""
        return event_id in self._recent

    def known(self, event_id: str) -> bool:
        """Live, or acknowledged lately: a new copy of it is not a new alarm."""
        return event_id in self._live or event_id in self._recent

    def event(self, event_id: str) -> Event | None:
        """The event of a live or lately acknowledged alarm."""
        a = self._live.get(event_id)
        return a.event if a is not None else self._recent.get(event_id)

    # ---- status ----------------------------------------------------------------------------
    def counts(self) -> AlarmCounts:
        alarms = self._live.values()
        return AlarmCounts(in_flight=sum(1 for a in alarms if a.in_flight),
                           unacknowledged=sum(1 for a in alarms if a.state is not AlarmState.ACKNOWLEDGED),
                           held=sum(1 for a in alarms if a.state is AlarmState.HELD))

    def records(self) -> tuple[AlarmRecord, ...]:
        """The last alarms' records, oldest first."""
        return tuple(self._records)
