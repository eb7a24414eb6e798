"""Follow-ups (and, if configured, information events) to the SCAIP centre in journal order.

Why not the telemetry replay pump (:mod:`gateway.domain.replay`): the pump's progress is
the journal's ``delivered`` flag, which belongs to the MQTT route (a PUBACK). The centre
needs progress of its own: with both routes, a cancel or a restoral is PUBACKed by the
broker long before the centre has it (or while the centre is unreachable), and it must
still reach the centre after a gateway restart. The feed keeps that progress as a
*cursor* in the journal's state table (``scaip.cursor``): every row up to it is finished
for the centre — answered ``snu`` 0, refused, or not for the centre at all (alarms go the
forwarder's alarm path; information events unless ``send_info``). Rows after the cursor
are read again at start and handed to the route in journal order; one finished before a
restart goes out again with its same ``ref`` (the centre recognises the repeat).

- At most ``window`` reports are open at the route; the route's tracker sends them in
  submission order and never lets them delay an alarm (docs/scaip.md).
- A freshly configured centre starts at the journal's end: history is not sent (events of
  this run stored before the cursor was read are, in order).
- When MQTT is off (a SCAIP-only gateway) the feed also owns the ``delivered`` flag: a
  row is marked delivered once it is finished for the centre, so the backlog, retention
  and ``gateway status`` read as they do with MQTT.
- The cursor is written through the journal writer at most every ``save_every_s`` while
  it moves (and on :meth:`flush`), so a telemetry stream does not cost a write per row.
- A row the centre does not carry is skipped on its event code alone (read from the
  row's body without decoding it): a telemetry backlog costs microseconds per row on the
  event loop, not a JSON parse — the alarms share that loop.

Pure: the journal and the route are ports; runs on the event loop.
"""
from __future__ import annotations

import collections
import logging
import re
from typing import Any, Callable, Protocol

from gateway.domain.journal_codec import decode_event
from gateway.domain.journal_types import AppendOutcome, AppendResult
from gateway.domain.model import Event, EventCode
from gateway.domain.scaip._ports import CentreRoute

log = logging.getLogger(__name__)

CURSOR_KEY = "scaip.cursor"

#: The event code in a journal body (gateway/domain/journal_codec.py writes ``"code":N``).
_CODE = re.compile(r'"code":(\d{1,3})[,}]')


class FeedJournal(Protocol):
    """What the feed needs of the journal front (gateway.adapters.journal.JournalWriter)."""

    def call(self, fn: Callable[[Any], Any], callback: Callable[[Any], None] | None = None,
             on_error: Callable[[BaseException], None] | None = None) -> None: ...

    def set_state(self, key: str, value: bytes) -> None: ...

    def mark_delivered(self, event_ids: list[str]) -> None: ...


class CentreFeed:
    """See the module doc. ``owns_delivery``: mark rows delivered (MQTT is off)."""

    def __init__(self, *, journal: FeedJournal, route: CentreRoute, window: int = 8, batch: int = 256,
                 owns_delivery: bool = False, save_every_s: float = 5.0,
                 stats: collections.Counter | None = None) -> None:
        self._journal = journal
        self._route = route
        self.window = max(1, window)
        self.batch = max(1, batch)
        self.owns_delivery = owns_delivery
        self.save_every_s = save_every_s
        self.stats: collections.Counter = stats if stats is not None else collections.Counter()
        self._open: dict[str, int] = {}                                   # event_id -> rowid, at the route
        self._queue: collections.deque[tuple[int, str, bool]] = collections.deque()
        self._read_pos = 0         # last rowid taken from the journal
        self._end_pos = 0
        self._cursor = 0           # every row <= cursor is finished for the centre
        self._saved: int | None = None
        self._saved_at = float("-inf")
        self._started = False
        self._reading = False
        self._end_reached = False
        self._delivered: list[str] = []
        self._early: list[tuple[int, Event]] = []       # stored before the cursor was read

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Read the saved cursor (or the journal's end) on the writer thread, then feed."""
        self._journal.call(lambda j: (j.get_state(CURSOR_KEY), j.max_rowid()), self._on_start,
                           on_error=lambda exc: log.error("scaip feed: cannot read its cursor: %s", exc))

    def _on_start(self, res: tuple[bytes | None, int]) -> None:
        raw, top = res
        cursor = _parse_cursor(raw)
        if cursor is None:
            cursor = top
            log.info("scaip feed: no cursor yet; the centre gets events from journal row %d on", top)
        self._cursor = self._read_pos = cursor
        self._saved = cursor if raw is not None else None
        self._started = True
        early, self._early = self._early, []
        if raw is None:                   # this run's first events, stored while the cursor was read
            for rowid, ev in sorted(early, key=lambda x: x[0]):
                if len(self._open) < self.window:
                    self._take(rowid, ev)
                else:
                    self._cursor = self._read_pos = min(self._read_pos, rowid - 1)
                    break
            self._advance()
        self.kick()

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def open_count(self) -> int:
        return len(self._open)

    def status(self) -> dict[str, Any]:
        return {"cursor": self._cursor, "open": len(self._open), "queued": len(self._queue),
                "caught_up": self._end_reached and not self._queue}

    # ---- input -------------------------------------------------------------------------
    def stored(self, event: Event, result: AppendResult) -> None:
        """A non-alarm event's journal outcome: take it at once if the feed has caught up."""
        if result.outcome is not AppendOutcome.STORED or result.rowid is None:
            return
        if not self._started:
            self._early.append((result.rowid, event))
            return
        if self._end_reached and not self._queue and not self._reading and result.rowid > self._read_pos \
                and len(self._open) < self.window:
            self._read_pos = result.rowid
            self._take(result.rowid, event)
            self._advance()
            return
        self._end_reached = False
        self.kick()

    def finished(self, event_id: str) -> bool:
        """The centre answered (``snu`` 0) or refused this event: its row is done here."""
        rowid = self._open.pop(event_id, None)
        if rowid is None:
            return False
        if self.owns_delivery:
            self._delivered.append(event_id)
        self._advance()
        self.drain()
        return True

    def poll(self, now: float) -> None:
        """Periodic: delivered marks, and the cursor if it moved ``save_every_s`` ago."""
        if self._delivered:
            ids, self._delivered = self._delivered, []
            self._journal.mark_delivered(ids)
        if self._started and self._cursor != self._saved and now - self._saved_at >= self.save_every_s:
            self._save(now)
        if not self._queue:
            self.kick()

    def flush(self, now: float) -> None:
        """Write the marks and the cursor now (shutdown)."""
        self._saved_at = float("-inf")
        self.poll(now)

    # ---- the journal -------------------------------------------------------------------
    def kick(self) -> None:
        if not self._started or self._reading or self._end_reached or len(self._queue) >= self.batch:
            return
        self._reading = True
        after = self._queue[-1][0] if self._queue else self._read_pos
        batch = self.batch
        self._journal.call(lambda j: (j.rows_after(batch, after), j.max_rowid()),
                           lambda res, after=after: self._on_read(after, res), on_error=self._on_read_error)

    def _on_read_error(self, exc: BaseException) -> None:
        self._reading = False
        log.error("scaip feed: journal read failed: %s", exc)

    def _on_read(self, after: int, res: tuple[list[tuple[int, str, bool]], int]) -> None:
        self._reading = False
        rows, top = res
        tail = self._queue[-1][0] if self._queue else self._read_pos
        if after != tail:
            self.kick()
            return
        self._queue.extend(rows)
        if len(rows) < self.batch:
            self._end_reached = True
            self._end_pos = max(top, rows[-1][0] if rows else 0)
        self.drain()

    def drain(self) -> None:
        while self._queue and len(self._open) < self.window:
            rowid, body, alarm = self._queue.popleft()
            self._read_pos = max(self._read_pos, rowid)
            if alarm:
                continue                  # the forwarder's alarm path (pending alarms at start)
            if not self._wanted(body):
                self._skipped(rowid, body)
                continue
            try:
                ev = decode_event(body)
            except (ValueError, KeyError, TypeError) as exc:
                self.stats["centre_feed_undecodable"] += 1
                log.error("scaip feed: journal row %d undecodable (%s); skipped", rowid, exc)
                continue
            self._take(rowid, ev)
        if not self._queue and self._end_reached:
            self._read_pos = max(self._read_pos, self._end_pos)
        self._advance()
        if len(self._queue) < self.batch // 2:
            self.kick()

    def _take(self, rowid: int, ev: Event) -> None:
        if ev.event_id in self._open or ev.is_alarm:
            return
        self._open[ev.event_id] = rowid
        if self._route.submit(ev) is None:           # not for the centre (or refused at once: told apart)
            if self._open.pop(ev.event_id, None) is not None:
                self.stats["centre_feed_skipped"] += 1
                if self.owns_delivery:
                    self._delivered.append(ev.event_id)
            return
        self.stats["centre_feed_sent"] += 1

    def _wanted(self, body: str) -> bool:
        """False only when the body's code is one the route does not carry (else decode it)."""
        m = _CODE.search(body, 0, 200)
        if m is None:
            return True
        try:
            return self._route.carries(EventCode(int(m.group(1))))
        except ValueError:
            return True                   # unknown code: let the decoder judge

    def _skipped(self, rowid: int, body: str) -> None:
        self.stats["centre_feed_skipped"] += 1
        if self.owns_delivery:
            m = re.search(r'"id":"([^"]{1,80})"', body[:200])
            if m is not None:
                self._delivered.append(m.group(1))

    def _advance(self) -> None:
        self._cursor = (min(self._open.values()) - 1) if self._open else self._read_pos

    def _save(self, now: float) -> None:
        self._journal.set_state(CURSOR_KEY, str(self._cursor).encode("ascii"))
        self._saved, self._saved_at = self._cursor, now


def _parse_cursor(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        log.error("scaip feed: cursor %r unreadable; starting at the journal's end", raw[:40])
        return None
    return value if value >= 0 else None
