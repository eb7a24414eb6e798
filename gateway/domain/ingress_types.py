"""What ingress answers and needs (pure values and ports): :class:`IngressResult` and its
parts, the :class:`IngressStore` port (the journal writer's state KV), and the
rate-limited :class:`RejectLog` (one global budget). Split from :mod:`gateway.domain.ingress`, which
re-exports them."""
from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.codec._result import Rejection
from gateway.codec.enums import RejectReason
from gateway.codec.payloads import Payload
from gateway.domain.model import Event, Role
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.domain.ingress")


class IngressStore(Protocol):
    """What ingress needs of the journal. The daemon passes the :class:`JournalWriter`
    (queued, read-your-writes ``set_state``: the loop never waits for an fsync); a plain
    :class:`SqliteJournal` also fits (tests, tools) but commits synchronously."""

    def contains(self, event_id: str) -> bool: ...

    def get_state(self, key: str) -> bytes | None: ...

    def set_state(self, key: str, value: bytes) -> None: ...


@dataclass(frozen=True)
class DeviceUpdate:
    """What one valid frame / advert / GATT value told us about a device ("seen" at ``at``)."""

    device_id: str
    at: float
    link: str
    role: Role | None = None
    battery_pct: int | None = None
    battery_mv: int | None = None
    power_flags: int | None = None
    rssi: int | None = None
    fw_version: str | None = None
    reset_cause: int | None = None
    config_version: int | None = None
    queue_depth: int | None = None
    device_rejects: int | None = None
    uptime_s: int | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UplinkMessage:
    """An accepted non-EVENT frame others may act on (ACK/ERROR to a downlink, CONFIG, OTA_STATUS)."""

    link: str
    device_id: str
    seq: int
    payload: Payload


@dataclass
class IngressResult:
    events: list[Event] = field(default_factory=list)
    replies: list[tuple[str, bytes]] = field(default_factory=list)
    device_updates: list[DeviceUpdate] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)
    messages: list[UplinkMessage] = field(default_factory=list)
    event_links: dict[str, str] = field(default_factory=dict)   # event_id -> link to ACK on

    def extend(self, other: "IngressResult") -> None:
        self.events += other.events
        self.replies += other.replies
        self.device_updates += other.device_updates
        self.rejects += other.rejects
        self.messages += other.messages
        self.event_links.update(other.event_links)


class RejectLog:
    """Reject logging under ONE global budget (F14): at most ``max_lines`` lines per
    ``interval_s`` across all sources together, so rotating identities or many noisy
    neighbours cannot flood the log (an SD card). Within the budget, one line per
    (reason, source) per interval, with the count suppressed since. What the global budget
    suppresses is summed per reason and written as one summary line when the next interval
    starts (or on :meth:`flush`). Memory is bounded: the per-key table is an LRU of
    ``max_keys`` entries."""

    def __init__(self, clock: Clock, interval_s: float = 60.0, logger: logging.Logger = log, *,
                 max_lines: int = 20, max_keys: int = 1024) -> None:
        self._clock = clock
        self._interval = interval_s
        self._log = logger
        self._max_lines = max_lines
        self._max_keys = max_keys
        self._state: OrderedDict[tuple[RejectReason, str], tuple[float, int]] = OrderedDict()
        self._period_start: float | None = None
        self._lines = 0                                   # lines written in this period
        self._suppressed: Counter[RejectReason] = Counter()   # by the global budget, this period
        self.lines_written = 0
        self.lines_suppressed = 0

    def __call__(self, rejection: Rejection, source: str) -> bool:
        """Log (or suppress) one rejection. True if a line was written."""
        now = self._clock.monotonic()
        self._roll(now)
        key = (rejection.reason, rejection.device_id or source)
        started, suppressed = self._state.get(key, (None, 0))
        if started is not None and now - started < self._interval:
            self._state[key] = (started, suppressed + 1)
            self._state.move_to_end(key)
            self.lines_suppressed += 1
            return False
        if self._lines >= self._max_lines:
            self._suppressed[rejection.reason] += 1
            self.lines_suppressed += 1
            return False
        self._state[key] = (now, 0)
        self._state.move_to_end(key)
        while len(self._state) > self._max_keys:
            self._state.popitem(last=False)
        self._lines += 1
        self.lines_written += 1
        level = logging.DEBUG if rejection.reason is RejectReason.REPEAT else logging.WARNING
        more = f" (+{suppressed} more in the last {self._interval:.0f} s)" if suppressed else ""
        self._log.log(level, "rejected %s from %s on %s: %s%s", rejection.reason.value,
                      rejection.device_id or "?", source, rejection.detail, more)
        return True

    def flush(self) -> bool:
        """Write the summary of what the global budget suppressed so far (True if any)."""
        if not self._suppressed:
            return False
        n = sum(self._suppressed.values())
        by_reason = ", ".join(f"{r.value} {c}" for r, c in self._suppressed.most_common())
        self._log.warning("%d more rejections not logged (limit %d lines per %.0f s across all sources): %s",
                          n, self._max_lines, self._interval, by_reason)
        self._suppressed.clear()
        self.lines_written += 1
        return True

    def _roll(self, now: float) -> None:
        if self._period_start is not None and now - self._period_start < self._interval:
            return
        self.flush()
        self._period_start = now
        self._lines = 0
