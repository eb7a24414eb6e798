"""Heartbeat (``mty=PI``) schedule of one SCAIP route (pure; times are monotonic seconds).

A missing heartbeat is how the centre notices a dead gateway, so heartbeats go out on
schedule whatever else happens; the first one at start. The interval is the configured
one until the centre sets ``hbi`` in a reply — followed only when the route is configured
``adjustable`` (then the requests say ``hbo=1``). ``hbi`` is one digit; its meaning comes
from :data:`DEFAULT_HBI_INTERVALS_S` (configurable per route). **Assumption**: the values
there are ours, not taken from the standard's text, which this repository does not have;
check them against SS 91100 with the centre at commissioning (docs/scaip.md). An ``hbi``
without an entry (e.g. 0) leaves the interval as it is.

Health: a heartbeat counts as answered by any ``<mrs>`` with its ``ref`` (``snu`` 0, 4 or
6: the centre is there); ``snu`` 1/2/3/7 counts as refused (our heartbeat is wrong). A
heartbeat still unanswered when the next one goes out counts as missed.
"""
from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from gateway.domain.scaip._codes import Snu
from gateway.domain.scaip._xml import ScaipReply

#: hbi digit → interval (seconds). ASSUMED values, see the module doc.
DEFAULT_HBI_INTERVALS_S: Mapping[int, float] = {1: 60.0, 2: 300.0, 3: 900.0, 4: 3600.0}


class HeartbeatOutcome(enum.Enum):
    ANSWERED = "answered"
    INTERVAL_CHANGED = "interval_changed"
    REFUSED = "refused"
    NOT_OURS = "not_ours"          # no heartbeat with this ref (an alarm's reply, or unknown)


@dataclass
class HeartbeatSchedule:
    interval_s: float = 300.0
    adjustable: bool = False
    hbi_intervals_s: Mapping[int, float] = field(default_factory=lambda: dict(DEFAULT_HBI_INTERVALS_S))
    min_interval_s: float = 10.0
    max_interval_s: float = 86400.0

    def __post_init__(self) -> None:
        if not self.min_interval_s <= self.interval_s <= self.max_interval_s:
            raise ValueError(f"heartbeat interval {self.interval_s} s outside "
                             f"[{self.min_interval_s}, {self.max_interval_s}] s")
        self.configured_interval_s = self.interval_s
        self.next_due: float | None = None
        self.in_flight: str | None = None
        self.last_sent_at: float | None = None
        self.last_answered_at: float | None = None
        self.last_snu: Snu | None = None
        self.hbi: int | None = None
        self.missed = 0                    # consecutive heartbeats without an answer
        self.counters: collections.Counter[str] = collections.Counter()
        self._recent: collections.deque[str] = collections.deque(maxlen=4)
        self._last_ref_n = 0

    def start(self, now: float) -> None:
        self.next_due = now

    def stop(self) -> None:
        self.next_due = None

    def due(self, now: float) -> bool:
        return self.next_due is not None and now >= self.next_due

    def next_ref(self, wall_epoch: float) -> str:
        """``hb`` + 14 digits (milliseconds, strictly increasing): unique per unit, never hex."""
        n = max(int(wall_epoch * 1000) % 10**14, self._last_ref_n + 1) % 10**14
        self._last_ref_n = n
        return f"hb{n:014d}"

    def sent(self, ref: str, now: float) -> None:
        if self.in_flight is not None:
            self.missed += 1
            self.counters["missed"] += 1
        self.in_flight = ref
        self._recent.append(ref)
        self.last_sent_at = now
        self.next_due = now + self.interval_s
        self.counters["sent"] += 1

    def failed(self, ref: str, now: float) -> None:
        """The MESSAGE carrying heartbeat ``ref`` failed at the SIP level."""
        self.counters["failed"] += 1
        if ref == self.in_flight:
            self.in_flight = None
            self.missed += 1
            self.counters["missed"] += 1

    def owns(self, ref: str) -> bool:
        return ref in self._recent

    def on_reply(self, reply: ScaipReply, now: float) -> HeartbeatOutcome:
        if reply.ref not in self._recent:
            return HeartbeatOutcome.NOT_OURS
        if reply.ref == self.in_flight:
            self.in_flight = None
        self.last_snu = reply.snu
        if reply.snu.our_fault:
            self.counters["refused"] += 1
            return HeartbeatOutcome.REFUSED
        self.last_answered_at = now
        self.missed = 0
        self.counters["answered"] += 1
        if reply.hbi is None:
            return HeartbeatOutcome.ANSWERED
        self.hbi = reply.hbi
        if not self.adjustable:
            self.counters["hbi_ignored_fixed"] += 1
            return HeartbeatOutcome.ANSWERED
        target = self.hbi_intervals_s.get(reply.hbi)
        if target is None:
            self.counters["hbi_unmapped"] += 1
            return HeartbeatOutcome.ANSWERED
        target = min(max(float(target), self.min_interval_s), self.max_interval_s)
        if target == self.interval_s:
            return HeartbeatOutcome.ANSWERED
        self.interval_s = target
        if self.next_due is not None and self.last_sent_at is not None:
            self.next_due = self.last_sent_at + target
        self.counters["interval_changed"] += 1
        return HeartbeatOutcome.INTERVAL_CHANGED

    def alive(self, now: float, grace_s: float = 30.0) -> bool:
        """The centre answered a heartbeat within two intervals (plus ``grace_s``)."""
        return self.last_answered_at is not None and now - self.last_answered_at <= 2 * self.interval_s + grace_s

    def status(self, now: float) -> dict[str, Any]:
        def ago(t: float | None) -> float | None:
            return None if t is None else round(now - t, 3)
        return {"interval_s": self.interval_s, "configured_interval_s": self.configured_interval_s,
                "adjustable": self.adjustable, "hbi": self.hbi, "alive": self.alive(now),
                "missed": self.missed, "in_flight": self.in_flight,
                "last_sent_s_ago": ago(self.last_sent_at), "last_answered_s_ago": ago(self.last_answered_at),
                "next_in_s": None if self.next_due is None else round(self.next_due - now, 3),
                "last_snu": None if self.last_snu is None else int(self.last_snu),
                "counters": dict(self.counters)}
