"""Telemetry replay pump: the journal's undelivered rows to the primary route, in journal order.

Runs on the daemon's event loop (no I/O import: the journal and the route are ports).

- Telemetry is journalled first; once stored it is published live if there is no backlog,
  otherwise the pump sends it in journal order (:meth:`ReplayPump.telemetry_stored`).
- The pump reads ``batch`` undelivered rows at a time (on the journal's writer thread) and
  keeps at most ``window`` publications un-PUBACKed — and never more than the broker's
  Receive Maximum minus 4, room left for alarms — optionally also capped at
  ``rate_per_s`` (a token bucket), so an alarm never has more than a window of small
  messages in front of it on the socket and the replay cannot starve it of CPU.
- PUBACK marks an event delivered (:attr:`ReplayPump.delivered`, written in one queued
  journal call per flush). A refused PUBACK, or none within ``puback_timeout_s``, rewinds
  the read position to that row: it is read and sent again (receivers de-duplicate).
- An alarm row the forwarder does not know (an alarm stored while the forwarder ran
  without seeing it, e.g. restored after a restart) is handed to ``on_alarm_row``: alarms
  never go out on the telemetry topic.
"""
from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Callable

from gateway.domain.journal_codec import decode_event
from gateway.domain.journal_types import AppendOutcome, AppendResult
from gateway.domain.model import Event
from gateway.domain.payload import encode_event
from gateway.domain.ports import Clock
from gateway.domain.uplink_errors import NotConnected, UplinkError
from gateway.domain.uplink_ports import JournalFront, Publisher

log = logging.getLogger(__name__)

StoredCallback = Callable[[Event, bool], None]

#: Delivered marks are written once this many PUBACKs have accumulated (else every poll).
MARK_BATCH = 256


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``rate <= 0``: no cap."""

    rate: float
    burst: float = 1.0        # at least what accrues between two polls, or the cap would bite early
    tokens: float = 0.0
    last: float | None = None

    def take(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        if self.last is None:
            self.last, self.tokens = now, self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _Inflight:
    rowid: int
    sent_mono: float


class ReplayPump:
    """Telemetry from the journal to ``primary`` (see module doc). Keyword arguments:
    ``gateway_id``, ``topic`` (the event topic), ``journal``, ``primary``, ``clock``,
    ``window``, ``batch``, ``rate_per_s``, ``tick_s`` (sizes the token bucket's burst),
    ``stats`` (a Counter shared with the forwarder), ``on_alarm_row(event)``."""

    def __init__(self, *, gateway_id: str, topic: str, journal: JournalFront, primary: Publisher, clock: Clock,
                 window: int, batch: int, rate_per_s: float, tick_s: float,
                 stats: collections.Counter, on_alarm_row: Callable[[Event], None]) -> None:
        self.gateway_id = gateway_id
        self.topic = topic
        self.window = window
        self.batch = batch
        self._journal = journal
        self._primary = primary
        self._clock = clock
        self._bucket = TokenBucket(rate_per_s, burst=max(1.0, rate_per_s * tick_s * 2))
        self._stats = stats
        self._on_alarm_row = on_alarm_row
        self._inflight: dict[str, _Inflight] = {}
        self._queue: collections.deque[tuple[int, str, bool]] = collections.deque()   # (rowid, body, alarm)
        self._read_pos = 0
        self._end_reached = False
        self._reading = False
        self._end_pos = 0
        self.delivered: list[str] = []       # PUBACKed event ids (alarms too) not yet marked in the journal

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def flush(self) -> None:
        """Queue the coalesced delivered-marks now."""
        if self.delivered:
            ids, self.delivered = self.delivered, []
            self._journal.mark_delivered(ids)

    def expire(self, now: float, timeout_s: float) -> None:
        """Publications without a PUBACK for ``timeout_s`` are read again (primary up only)."""
        stale = [i for i, f in self._inflight.items() if now - f.sent_mono > timeout_s]
        if stale and self._primary.connected:
            for i in stale:
                self._rewind(self._inflight.pop(i).rowid)

    # ---- live telemetry ----------------------------------------------------------------
    def telemetry_stored(self, e: Event, r: AppendResult, on_stored: StoredCallback | None) -> None:
        """The journal's outcome for a telemetry event: answer the device, publish live or replay."""
        if r.outcome in (AppendOutcome.FAILED, AppendOutcome.SHED):   # F11: shed is not stored
            self._stats["telemetry_not_stored"] += 1
            return          # not ACKed to the device: it keeps it and retransmits
        if on_stored is not None:
            on_stored(e, r.outcome is not AppendOutcome.DUPLICATE)
        if r.outcome is not AppendOutcome.STORED or r.rowid is None:
            return
        if (self._end_reached and not self._queue and not self._reading and r.rowid > self._read_pos
                and len(self._inflight) < self._window() and self._primary.connected):
            if self._publish(r.rowid, e):
                self._read_pos = r.rowid
                self._stats["live"] += 1
                return
        self._end_reached = False
        self.kick()

    # ---- replay ------------------------------------------------------------------------
    def _window(self) -> int:
        """Replay window, kept below the broker's Receive Maximum (room left for alarms)."""
        rm = getattr(self._primary, "receive_maximum", 65535)
        return max(1, min(self.window, rm - 4))

    def _publish(self, rowid: int, e: Event) -> bool:
        if e.event_id in self._inflight:
            return True
        payload = encode_event(e, gateway_id=self.gateway_id, attempt=1, route=self._primary.route,
                               sent_at=self._clock.time())
        try:
            self._primary.publish(self.topic, payload, qos=1,
                                  on_puback=lambda ok, at, i=e.event_id: self._puback(i, ok))
        except NotConnected:
            return False
        except UplinkError as exc:
            log.error("event %s not published: %s", e.event_id, exc)
            return False
        self._inflight[e.event_id] = _Inflight(rowid, self._clock.monotonic())
        return True

    def _puback(self, event_id: str, ok: bool) -> None:
        f = self._inflight.pop(event_id, None)
        if f is None:
            return
        if ok:
            self.delivered.append(event_id)
            self._stats["telemetry_delivered"] += 1
            if len(self.delivered) >= MARK_BATCH:
                self.flush()
        else:
            self._rewind(f.rowid)
        # Refill the window in bursts: fewer write flushes and less bookkeeping per event
        # than one publication per PUBACK. With a rate cap (the default) bursts stay small
        # (16) so no loop callback runs long enough to hold up the alarm lane; uncapped
        # (replay_rate_per_s=0: drain as fast as possible) half a window at a time.
        w = self._window()
        burst = max(1, w // 2) if self._bucket.rate <= 0 else min(16, max(1, w // 2))
        if len(self._inflight) <= w - burst:
            self.drain()

    def _rewind(self, rowid: int) -> None:
        self._read_pos = min(self._read_pos, rowid - 1)
        self._queue.clear()
        self._end_reached = False
        self._end_pos = 0

    def kick(self) -> None:
        """Read the next batch from the journal unless a read is running or the end is known."""
        if self._reading or self._end_reached or not self._primary.connected:
            return
        if len(self._queue) >= self.batch:
            return
        self._reading = True
        after = self._queue[-1][0] if self._queue else self._read_pos
        batch = self.batch
        self._journal.call(lambda j: (j.undelivered_rows(batch, after), j.max_rowid()),
                           lambda res, after=after: self._on_read(after, res),
                           on_error=self._on_read_error)

    def _on_read_error(self, exc: BaseException) -> None:
        self._reading = False
        log.error("journal read for replay failed: %s", exc)

    def _on_read(self, after: int, res: tuple[list[tuple[int, str, bool]], int]) -> None:
        self._reading = False
        rows, max_rowid = res
        tail = self._queue[-1][0] if self._queue else self._read_pos
        if after != tail:
            self.kick()      # rewound meanwhile: this read is stale
            return
        self._queue.extend(rows)
        if len(rows) < self.batch:
            self._end_reached = True
            end = max(max_rowid, rows[-1][0] if rows else 0)
            if not self._queue:
                self._read_pos = max(self._read_pos, end)
            self._end_pos = end
        self.drain()

    def drain(self) -> None:
        """Publish queued rows while the window, the rate cap and the route allow."""
        now = self._clock.monotonic()
        while self._queue and self._primary.connected:
            rowid, body, alarm = self._queue[0]
            if not alarm and (len(self._inflight) >= self._window() or not self._bucket.take(now)):
                break
            try:
                ev = decode_event(body)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("journal row %d undecodable (%s); skipped", rowid, exc)
                self._queue.popleft()
                continue
            if alarm:
                self._queue.popleft()
                self._read_pos = max(self._read_pos, rowid)
                self._on_alarm_row(ev)
                continue
            if ev.event_id in self._inflight:
                self._queue.popleft()
                continue
            if not self._publish(rowid, ev):
                break
            self._queue.popleft()
            self._read_pos = max(self._read_pos, rowid)
            self._stats["replayed"] += 1
        if not self._queue and self._end_reached:
            self._read_pos = max(self._read_pos, self._end_pos)
        if len(self._queue) < self.batch // 2:
            self.kick()
