"""What the journal does when the disk is full: the ballast file and the degraded write.

Policy: alarms are kept, telemetry gives way.

- **Ballast.** A file ``<journal>.reserve`` (``reserve_bytes``, 1 MiB by default) is kept
  beside the journal. On a full disk it is deleted first, so that shedding telemetry (which
  itself needs WAL space) and storing the alarms can still proceed; it is re-created after
  a later batch commits (:meth:`DiskFull.after_commit`).
- **Degraded write.** When a batch's transaction fails (:meth:`DiskFull.apply_degraded`,
  called by ``SqliteJournal.apply`` after the rollback): on a full disk the ballast is
  released, the oldest tenth of the telemetry (at least 256 rows) is deleted and the WAL
  truncated; then the batch's alarms, delivery marks, acks and state values are retried
  alone in one transaction. The batch's telemetry comes back ``AppendOutcome.SHED``
  (counted in ``depth().shed``) on a full disk, ``FAILED`` on any other error; alarms
  that still cannot be stored come back ``FAILED`` and the forwarder holds them in memory
  (and raises a technical alarm). If state values were in the batch and the retry failed,
  the error is raised so the writer keeps them pending and retries them.

Tests and benches emulate a full disk with the journal's ``before_commit`` seam (raise
``OSError(ENOSPC)``) or a tiny filesystem (gateway/tests/test_journal_crash.py).
"""
from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.adapters.journal._errors import is_full, write_error
from gateway.domain.journal_types import AppendOutcome, AppendResult
from gateway.domain.model import Event

if TYPE_CHECKING:   # pragma: no cover
    from gateway.adapters.journal._store import SqliteJournal

log = logging.getLogger(__name__)


class DiskFull:
    """The disk-full policy of one :class:`SqliteJournal` (built by it; see module doc).
    Runs under the journal's write lock."""

    def __init__(self, journal: SqliteJournal, reserve_path: Path, reserve_bytes: int) -> None:
        self._j = journal
        self.reserve_path = reserve_path
        self._reserve_bytes = reserve_bytes
        self._reserve_missing = False

    # ---- ballast -------------------------------------------------------------------
    def ensure_reserve(self) -> bool:
        """Create the ballast file if it is missing or short. False if it cannot be written."""
        if self._reserve_bytes <= 0:
            return True
        try:
            if self.reserve_path.exists() and self.reserve_path.stat().st_size >= self._reserve_bytes:
                return True
            with open(self.reserve_path, "wb") as f:
                f.write(b"\0" * self._reserve_bytes)
                f.flush()
                os.fsync(f.fileno())
            return True
        except OSError as exc:
            log.warning("cannot (re)create the journal's disk reserve %s: %s", self.reserve_path, exc)
            try:
                self.reserve_path.unlink()
            except OSError:
                pass
            return False

    def after_commit(self) -> None:
        """A write transaction committed: put back a ballast released earlier, if possible."""
        if self._reserve_missing and self.ensure_reserve():
            self._reserve_missing = False

    # ---- degraded write --------------------------------------------------------------
    def apply_degraded(self, appends: list[Event], delivered: list[str], acks: list[tuple[str, str]],
                       states: list[tuple[str, bytes]], exc: BaseException) -> list[AppendResult]:
        """The batch's transaction failed with ``exc`` (rolled back): shed on a full disk,
        retry what must not be lost, one result per append (module doc)."""
        j = self._j
        full = is_full(exc)
        log.error("journal write failed (%s); %s", exc, "shedding telemetry" if full else "holding alarms in memory")
        if full:
            self._emergency_shed()
        alarms = [e for e in appends if e.is_alarm]
        by_id: dict[str, AppendResult] = {}
        if alarms or states:
            try:
                for e, r in zip(alarms, j._apply_once(alarms, delivered, acks, states)):
                    by_id[e.event_id] = r
            except (sqlite3.Error, OSError) as exc2:
                j._rollback()
                for e in alarms:
                    by_id[e.event_id] = AppendResult(AppendOutcome.FAILED, error=str(exc2))
                if states:   # the writer keeps them pending and retries
                    raise write_error(f"journal write failed: {exc2}", path=j.path, cause=exc2) from exc2
        out = []
        n_shed = 0
        for e in appends:
            if e.is_alarm:
                out.append(by_id[e.event_id])
            elif full:
                n_shed += 1
                out.append(AppendResult(AppendOutcome.SHED, error=str(exc)))
            else:
                out.append(AppendResult(AppendOutcome.FAILED, error=str(exc)))
        j._counts.shed += n_shed
        return out

    def _emergency_shed(self) -> None:
        """Free space on a full disk: release the ballast, drop the oldest tenth of
        telemetry, truncate the WAL; the ballast is put back after a later commit."""
        j = self._j
        try:
            self.reserve_path.unlink()
            self._reserve_missing = True
        except OSError:
            pass
        k = j._counts
        n = max(256, k.tele_rows // 10)
        try:
            j._c.execute("BEGIN IMMEDIATE")
            removed, undelivered, size = j._delete_oldest_telemetry(n)
            j._c.execute("COMMIT")
            k.total -= removed
            k.undelivered -= undelivered
            k.tele_rows -= removed
            k.tele_bytes -= size
            k.shed += undelivered
            j._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, OSError) as exc:
            j._rollback()
            log.error("could not shed telemetry on a full disk: %s", exc)
