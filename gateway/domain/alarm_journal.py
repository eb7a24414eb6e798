"""The alarms' side of the journal: writes, their outcomes, retries, the device's answer.

The forwarder publishes an alarm *while* its journal write proceeds on the writer thread;
:class:`AlarmJournal` takes the write's outcome (the :class:`~gateway.domain.alarms.StoreState`
table of the alarm):

- stored (or already there): the device is answered (``on_stored``, new unless a
  duplicate), and marks that waited for the row are written now (delivered, ack status);
- failed (disk full / I/O error): the alarm stays in memory — it is being published
  anyway — and is written again every :data:`STORE_RETRY_S`; the technical alarm
  ``journal_fault`` (``data.reason`` ``write_failed``) is raised once until an alarm is
  stored again.

Invariant: a device's alarm is ACKed to the device only once the alarm is in someone's
custody — stored in the journal, PUBACKed by a broker, acked by the platform or the centre.
An alarm held only in RAM is not: a ``kill -9`` would lose it, so the device keeps it and
re-sends. Pure; runs on the event loop (the journal front is a port).
"""
from __future__ import annotations

import collections
import logging
from typing import Any, Callable, Protocol

from gateway.domain.alarm_book import AlarmBook
from gateway.domain.alarms import Alarm, StoreEvent, StoreState, StoredCallback
from gateway.domain.journal_types import AppendOutcome, AppendResult
from gateway.domain.model import Event, EventCode
from gateway.domain.uplink_ports import JournalFront

__all__ = ["AlarmJournal", "JOURNAL_FAULT_CODE", "STORE_RETRY_S"]

log = logging.getLogger(__name__)

#: Code of the technical alarm raised when the journal cannot store (disk full / I/O
#: error); ``data.reason`` = ``write_failed``. Raised once until an alarm is stored again.
JOURNAL_FAULT_CODE = EventCode.JOURNAL_FAULT

#: Alarms whose journal write failed are submitted again this often (seconds).
STORE_RETRY_S = 5.0


class TechnicalAlarms(Protocol):
    """Where a technical alarm is raised (the forwarder)."""

    def raise_technical(self, code: EventCode, data: dict[str, Any] | None = None, *,
                        avoid_centre: bool = False) -> None: ...


class AlarmJournal:
    """See the module doc. ``mark_delivered(event_id)``: queue the journal's delivered mark
    (coalesced by the replay pump)."""

    def __init__(self, *, journal: JournalFront, book: AlarmBook, technical: TechnicalAlarms,
                 mark_delivered: Callable[[str], None], stats: collections.Counter) -> None:
        self._journal = journal
        self._book = book
        self._technical = technical
        self._mark_delivered = mark_delivered
        self.stats = stats
        self._fault_raised = False
        self._last_retry = 0.0

    def write(self, a: Alarm) -> None:
        """Write a new alarm (its publication is already under way)."""
        self._journal.submit(a.event, lambda e, r: self._stored(a, r))

    def write_repeat(self, event: Event, on_stored: StoredCallback | None) -> None:
        """A device repeated an alarm that is live or acknowledged lately: no new publication,
        only the journal's duplicate check, then the device's answer (:meth:`_repeat_stored`)."""
        self._journal.submit(event, lambda e, r: self._repeat_stored(e, r, on_stored))

    def retry_failed(self, now: float) -> None:
        """Every :data:`STORE_RETRY_S`: write again the live alarms whose write failed."""
        if now - self._last_retry < STORE_RETRY_S:
            return
        self._last_retry = now
        for a in self._book.live():
            if a.store is StoreState.FAILED:
                self._journal.submit(a.event, lambda e, r, a=a: self._stored(a, r, retry=True))

    def _stored(self, a: Alarm, r: AppendResult, retry: bool = False) -> None:
        if r.outcome in (AppendOutcome.STORED, AppendOutcome.DUPLICATE):
            if a.store is StoreState.FAILED:
                self._fault_raised = False
                log.warning("alarm %s stored after an earlier journal failure", a.event.event_id)
                if a.custody.upstream:
                    self._mark_delivered(a.event.event_id)
                if a.ack is not None:
                    self._journal.mark_acknowledged(a.event.event_id, a.ack.value)
            a.stored(StoreEvent.WRITTEN)
            a.answer_device(r.outcome is AppendOutcome.STORED or retry)
            self._book.forget_if_done(a)
            return
        # FAILED (full or broken disk): keep the alarm in memory, it is being published anyway
        a.stored(StoreEvent.WRITE_FAILED)
        self.stats["alarms_not_stored"] += 1
        if a.custody.upstream:
            a.answer_device(True)
        if not self._fault_raised and a.event.code is not JOURNAL_FAULT_CODE:
            self._fault_raised = True
            self._technical.raise_technical(JOURNAL_FAULT_CODE, {"reason": "write_failed", "detail": r.error or ""})

    def _repeat_stored(self, event: Event, r: AppendResult, on_stored: StoredCallback | None) -> None:
        """A repeated alarm's journal outcome. ACK it (duplicate) only if it is safe somewhere:
        this append or an earlier one stored it, or the broker PUBACKed the copy we hold. A
        failed append of an alarm held only in memory is NOT acknowledged: the device keeps it
        (and re-sends) until the disk or the broker has it — a kill -9 would lose it otherwise."""
        if on_stored is None:
            return
        if r.outcome in (AppendOutcome.STORED, AppendOutcome.DUPLICATE):
            on_stored(event, False)
            return
        held = self._book.get(event.event_id)
        if self._book.acknowledged(event.event_id) or (held is not None and bool(held.custody)):
            on_stored(event, False)
            return
        log.warning("repeated alarm %s neither stored nor at the broker: no ACK, the device keeps it",
                    event.event_id)
