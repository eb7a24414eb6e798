"""The journal's housekeeping pass: retention pruning, size budget, checkpoint, incremental vacuum.

Policy and its reasons: :mod:`gateway.adapters.journal._retention`. This module runs it:
:meth:`Maintenance.step` does ONE bounded transaction of the current pass (starting a pass
when one is due) and says whether more steps follow. The journal writer thread calls it
between batches and while idle (gateway/adapters/journal/_writer.py), under the journal's
write lock, so an alarm's commit waits for at most one step.

A pass is a table of phases, each with the rows it may delete. Only the two retention
phases and the acknowledged-alarm size phase can match alarms, and all three require
``delivered = 1 AND ack IS NOT NULL``; the undelivered size phase requires ``alarm = 0``.
"""
from __future__ import annotations

import enum
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.adapters.journal._retention import MaintenanceStats, RetentionPolicy

if TYPE_CHECKING:   # pragma: no cover
    from gateway.adapters.journal._store import SqliteJournal

log = logging.getLogger(__name__)

#: Size pruning starts above this share of the budget and stops at ``_SIZE_LOW`` (hysteresis).
_SIZE_HIGH = 0.9
_SIZE_LOW = 0.8
#: The first pass runs this long (or ``interval_s`` if shorter) after the journal is opened.
_FIRST_PASS_S = 60.0


class Phase(enum.Enum):
    TELEMETRY = "telemetry"                # delivered telemetry past its retention
    ALARMS = "alarms"                      # delivered, acknowledged alarms past their retention
    SIZE_TELEMETRY = "size_telemetry"      # over budget: delivered telemetry, any age
    SIZE_ALARMS = "size_alarms"            # over budget: delivered, acknowledged alarms, any age
    SIZE_UNDELIVERED = "size_undelivered"  # over budget: undelivered telemetry (shed)
    CHECKPOINT = "checkpoint"
    VACUUM = "vacuum"
    DONE = "done"


NEXT: dict[Phase, Phase] = {
    Phase.TELEMETRY: Phase.ALARMS,
    Phase.ALARMS: Phase.SIZE_TELEMETRY,
    Phase.SIZE_TELEMETRY: Phase.SIZE_ALARMS,
    Phase.SIZE_ALARMS: Phase.SIZE_UNDELIVERED,
    Phase.SIZE_UNDELIVERED: Phase.CHECKPOINT,
    Phase.CHECKPOINT: Phase.VACUUM,
    Phase.VACUUM: Phase.DONE,
}

#: The rows each pruning phase may delete (oldest first). Named parameters: ``cutoff``
#: (wall time), ``bound`` (highest id stored before the cutoff, bounds the scan).
PRUNABLE: dict[Phase, str] = {
    Phase.TELEMETRY: "alarm = 0 AND delivered = 1 AND stored_at < :cutoff AND id <= :bound",
    Phase.ALARMS: "alarm = 1 AND delivered = 1 AND ack IS NOT NULL AND stored_at < :cutoff AND id <= :bound",
    Phase.SIZE_TELEMETRY: "alarm = 0 AND delivered = 1",
    Phase.SIZE_ALARMS: "alarm = 1 AND delivered = 1 AND ack IS NOT NULL",
    Phase.SIZE_UNDELIVERED: "alarm = 0 AND delivered = 0",
}
_SIZE_PHASES = (Phase.SIZE_TELEMETRY, Phase.SIZE_ALARMS, Phase.SIZE_UNDELIVERED)


@dataclass
class _Pass:
    phase: Phase
    tele_cutoff: float
    tele_bound: int
    alarm_cutoff: float
    alarm_bound: int
    size_pruning: bool = False
    vacuuming: bool = False
    shed: int = 0


class Maintenance:
    """Housekeeping of one :class:`SqliteJournal` (built by it; see module doc)."""

    def __init__(self, journal: "SqliteJournal", policy: RetentionPolicy) -> None:
        self._j = journal
        self.policy = policy
        self.stats = MaintenanceStats()
        self._pass: _Pass | None = None
        now = journal._clock.monotonic()
        self._last_pass = now - policy.interval_s + min(_FIRST_PASS_S, policy.interval_s)
        self._last_probe = now
        self._page_size = int(self._pragma("page_size"))
        self.stats.auto_vacuum = {0: "none", 1: "full", 2: "incremental"}.get(int(self._pragma("auto_vacuum")), "?")

    # ---- sizes ------------------------------------------------------------------------
    def _pragma(self, name: str) -> Any:
        return self._j._c.execute(f"PRAGMA {name}").fetchone()[0]

    def live_bytes(self) -> int:
        """Bytes of pages holding data (the file's pages minus the freelist)."""
        return (int(self._pragma("page_count")) - int(self._pragma("freelist_count"))) * self._page_size

    def file_bytes(self) -> int:
        return int(self._pragma("page_count")) * self._page_size

    # ---- scheduling -------------------------------------------------------------------
    @property
    def in_pass(self) -> bool:
        return self._pass is not None

    def due(self) -> bool:
        """A pass is running, its interval has passed, or the size budget is nearly used.
        Call with the journal's write lock held (the writer thread)."""
        if self._pass is not None:
            return True
        now = self._j._clock.monotonic()
        if now - self._last_pass >= self.policy.interval_s:
            return True
        if now - self._last_probe >= self.policy.size_probe_s:
            self._last_probe = now
            return self.live_bytes() > _SIZE_HIGH * self.policy.budget_bytes
        return False

    def step(self, *, force: bool = False) -> bool:
        """One bounded step (starting a pass if due, or if ``force``). True if more follow."""
        if self._pass is None:
            if not (force or self.due()):
                return False
            self._pass = self._begin()
        t0 = time.perf_counter()
        phase = self._pass.phase
        try:
            self._step(self._pass)
        except (sqlite3.Error, OSError) as exc:
            self._j._rollback()
            self.stats.errors += 1
            self.stats.last_error = str(exc)
            log.error("journal maintenance stopped for this pass (%s step): %s", self._pass.phase.value, exc)
            self._pass.phase = Phase.DONE
        finally:
            ms = (time.perf_counter() - t0) * 1000.0
            self.stats.steps += 1
            self.stats.total_step_ms += ms
            if ms > self.stats.longest_step_ms:
                self.stats.longest_step_ms = ms
                self.stats.longest_step_phase = phase.value
        if self._pass.phase is Phase.DONE:
            if self._pass.shed:      # one line per pass, not per batch
                log.warning("journal %s over its size budget: shed %d undelivered telemetry events (oldest first)",
                            self._j.path, self._pass.shed)
            self._pass = None
            self._last_pass = self._last_probe = self._j._clock.monotonic()
            self.stats.passes += 1
            self.stats.last_pass_at = self._j._clock.time()
            return False
        return True

    def run_pass(self) -> int:
        """A whole pass now (tests, tools): returns the steps taken."""
        n = 1
        while self.step(force=True):
            n += 1
        return n

    # ---- the pass -----------------------------------------------------------------------
    def _begin(self) -> _Pass:
        now = self._j._clock.time()
        tele_cutoff = now - self.policy.telemetry_retention_s
        alarm_cutoff = now - self.policy.alarm_retention_s
        return _Pass(Phase.TELEMETRY, tele_cutoff, self._id_before(tele_cutoff),
                     alarm_cutoff, self._id_before(alarm_cutoff))

    def _id_before(self, cutoff: float) -> int:
        """Highest id stored before ``cutoff``, by bisection on the primary key (ids grow with
        time; if the wall clock stepped back the bound is approximate, and the ``stored_at``
        condition of the delete still decides). 0 when nothing is that old."""
        c = self._j._c
        first = c.execute("SELECT id, stored_at FROM events ORDER BY id LIMIT 1").fetchone()
        if first is None or first[1] >= cutoff:
            return 0
        last = c.execute("SELECT id, stored_at FROM events ORDER BY id DESC LIMIT 1").fetchone()
        if last[1] < cutoff:
            return int(last[0])
        lo, hi = int(first[0]), int(last[0])        # stored_at(lo) < cutoff <= stored_at(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            rid, at = c.execute("SELECT id, stored_at FROM events WHERE id >= ? ORDER BY id LIMIT 1", (mid,)).fetchone()
            if at < cutoff:
                lo = int(rid)
            else:
                hi = mid        # no row in [mid, rid), and rid is not old enough
        return lo

    def _step(self, p: _Pass) -> None:
        budget = self.policy.budget_bytes
        if p.phase in _SIZE_PHASES:
            live = self.live_bytes()
            if live <= (_SIZE_LOW if p.size_pruning else _SIZE_HIGH) * budget:
                if self.stats.over_budget:
                    log.info("journal %s is back within its size budget (%.1f MB live)", self._j.path, live / 1e6)
                self.stats.over_budget = False
                p.phase = Phase.CHECKPOINT      # next step (each step is timed on its own)
                return
            p.size_pruning = True
        if p.phase in PRUNABLE:
            params = {"cutoff": p.tele_cutoff, "bound": p.tele_bound} if p.phase is Phase.TELEMETRY else \
                     {"cutoff": p.alarm_cutoff, "bound": p.alarm_bound}
            if params["bound"] == 0 and p.phase in (Phase.TELEMETRY, Phase.ALARMS):
                deleted = 0     # nothing is that old
            else:
                deleted = self._prune(p.phase, params)
            if deleted < self.policy.batch_rows:
                if p.phase is Phase.SIZE_UNDELIVERED:
                    live = self.live_bytes()
                    was, self.stats.over_budget = self.stats.over_budget, live > budget
                    if self.stats.over_budget and not was:     # said once, not every pass
                        log.warning("journal %s is over its size budget (%.1f of %.1f MB live) with only "
                                    "unacknowledged alarms left; they are kept until the platform acknowledges them",
                                    self._j.path, live / 1e6, budget / 1e6)
                p.phase = NEXT[p.phase]
            return
        if p.phase is Phase.CHECKPOINT:
            self._j.checkpointer.request()      # in the background, never in front of a commit
            p.phase = Phase.VACUUM
            return
        if p.phase is Phase.VACUUM:
            if not self._vacuum_step(p):
                p.phase = Phase.DONE

    def _restore_sync(self) -> None:
        try:
            self._j._c.execute(f"PRAGMA synchronous={self._j._synchronous}")
        except sqlite3.Error as exc:     # the connection is broken; the caller reports the first error
            log.error("cannot restore synchronous=%s: %s", self._j._synchronous, exc)

    def _prune(self, phase: Phase, params: dict[str, Any]) -> int:
        """Delete up to ``batch_rows`` of ``phase``'s rows, oldest first, in one transaction
        committed without an fsync of its own (module doc of _retention). Returns the count."""
        j = self._j
        c = j._c
        k = j._counts
        c.execute("PRAGMA synchronous=NORMAL")
        try:
            c.execute("BEGIN IMMEDIATE")
            rows = c.execute(f"SELECT id, alarm, delivered, size FROM events WHERE {PRUNABLE[phase]} "
                             "ORDER BY id LIMIT :limit", {**params, "limit": self.policy.batch_rows}).fetchall()
            undelivered = sum(1 for r in rows if not r[2])
            if rows:
                c.executemany("DELETE FROM events WHERE id = ?", [(r[0],) for r in rows])
                if undelivered:
                    c.execute("INSERT INTO meta(key, value) VALUES('shed', ?) "
                              "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value", (undelivered,))
            if j._before_commit is not None:
                j._before_commit()
            c.execute("COMMIT")
        except BaseException:
            j._rollback()
            raise
        finally:
            self._restore_sync()
        tele = [r for r in rows if not r[1]]
        k.total -= len(rows)
        k.undelivered -= undelivered
        k.tele_rows -= len(tele)
        k.tele_bytes -= sum(r[3] for r in tele)
        k.shed += undelivered
        s = self.stats
        if phase is Phase.TELEMETRY:
            s.telemetry_pruned += len(rows)
        elif phase is Phase.ALARMS:
            s.alarms_pruned += len(rows)
        elif phase is Phase.SIZE_UNDELIVERED:
            s.shed_for_size += len(rows)
            if self._pass is not None:
                self._pass.shed += len(rows)
        else:
            s.pruned_for_size += len(rows)
        return len(rows)

    def _vacuum_step(self, p: _Pass) -> bool:
        """Hand free pages back to the filesystem, ``vacuum_step_pages`` per step, once the
        freelist is large (auto_vacuum = INCREMENTAL only). True if more steps follow."""
        if self.stats.auto_vacuum != "incremental":
            return False
        pol = self.policy
        free = int(self._pragma("freelist_count")) * self._page_size
        if not p.vacuuming:
            if free < max(pol.vacuum_min_free_bytes, pol.vacuum_free_fraction * self.file_bytes()):
                return False
            p.vacuuming = True
        if free <= 0:
            return False
        j = self._j
        before = int(self._pragma("freelist_count"))
        j._c.execute("PRAGMA synchronous=NORMAL")
        try:
            # executescript steps the pragma to completion (a plain execute frees one page)
            j._c.executescript(f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(pol.vacuum_step_pages)}); COMMIT;")
        except BaseException:
            j._rollback()
            raise
        finally:
            self._restore_sync()
        after = int(self._pragma("freelist_count"))
        self.stats.vacuumed_pages += before - after
        return after > 0 and after < before
