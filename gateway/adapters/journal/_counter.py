"""The gateway event counter: numbers the events the gateway raises itself.

Their ids are ``<gateway_id>-g<counter:010d>`` (gateway/domain/event_ids.py; docs/mqtt.md).
A value must never be handed out twice — not after a crash, a restart or a quarantined
(corrupt) journal — so values are reserved in blocks of ``block`` in the high-water-mark
file ``<journal>.hwm`` (:mod:`gateway.adapters.journal._hwm`, written atomically) *before*
any of them is used. A restart continues above the reserved block, so values may skip.

The file lives beside the journal, not in it: it survives quarantine, and reserving a block
never waits for a journal commit. :class:`ReservedCounter` has its own lock, never held across
a journal commit's fsync. :meth:`ReservedCounter.next` writes the file only when the block is
used up; the journal writer calls :meth:`ReservedCounter.reserve_ahead` off the event loop when
less than half a block is left (``JournalWriter.next_gateway_counter``), so a call on the loop
normally takes its value from memory.
"""
from __future__ import annotations

import threading
from pathlib import Path

from gateway.adapters.journal._errors import write_error
from gateway.adapters.journal._hwm import read_hwm, write_hwm


class ReservedCounter:
    """Durable, never reused gateway counter reserved in blocks in ``path`` (see module doc).
    Thread-safe. :class:`gateway.adapters.journal.SqliteJournal` builds one (``counter_block``)
    and exposes it as ``next_gateway_counter`` (the domain's ``GatewayCounter`` port,
    gateway/domain/event_ids.py) and friends."""

    def __init__(self, path: Path, block: int) -> None:
        self.path = path
        self.block = block
        self._lock = threading.Lock()     # never held across a journal commit
        self._reserved = read_hwm(path)
        self._counter = self._reserved    # the next value is always above anything handed out before

    def next(self) -> int:
        """Next value; reserves the next block in the file first when this one is used up.
        Raises :class:`JournalError` (:class:`JournalFull` on a full disk) if the file
        cannot be written then."""
        with self._lock:
            nxt = self._counter + 1
            if nxt > self._reserved:
                new = nxt + self.block - 1
                self._write(new)
                self._reserved = new
            self._counter = nxt
            return nxt

    def left(self) -> int:
        """Values reserved in the file and not yet handed out."""
        with self._lock:
            return self._reserved - self._counter

    def reserve_ahead(self) -> int:
        """Extend the reservation by ``block`` values if fewer than half a block are left.
        Returns the values left. Raises :class:`JournalError` if the file cannot be written."""
        with self._lock:
            if self._reserved - self._counter >= self.block // 2:
                return self._reserved - self._counter
            new = self._reserved + self.block
            self._write(new)
            self._reserved = new
            return self._reserved - self._counter

    def _write(self, new: int) -> None:
        try:
            write_hwm(self.path, new)
        except OSError as exc:
            raise write_error(f"cannot reserve gateway counters in {self.path}: {exc}",
                              path=self.path, cause=exc) from exc
