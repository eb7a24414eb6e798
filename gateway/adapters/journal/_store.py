"""SQLite (WAL) event journal: the gateway's durable memory.

Durability choice: ``PRAGMA synchronous=FULL`` in WAL mode. Every COMMIT fsyncs the WAL,
so an event is on stable storage when :meth:`SqliteJournal.apply` returns — also across
a power cut, which ``NORMAL`` does not give (in WAL mode NORMAL syncs only at
checkpoints, so the last transactions can roll back after power loss, and an alarm the
device was already ACKed for would be gone). The cost, one fsync per commit, is paid
once per *batch*: :class:`gateway.adapters.journal.JournalWriter` group-commits everything queued
while the previous fsync ran.

Long runs: delivered telemetry and acknowledged alarms are pruned after their retention,
the file is kept within a size budget, and checkpoints / incremental vacuum are paced for
SD-card wear — policy and write-amplification reasoning in
:mod:`gateway.adapters.journal._retention`, the pass in ``_maintenance``; the writer thread
runs it one bounded step at a time (:meth:`SqliteJournal.maintain_step`).

Thread safety: one connection guarded by a lock; normally only the writer thread calls in.
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from gateway.domain.model import Event
from gateway.domain.ports import Clock, JournalDepth, SystemClock

from gateway.domain.journal_codec import decode_event, encode_event
from gateway.domain.journal_types import ACK_STATUSES, AppendOutcome, AppendResult, Recovery
from gateway.adapters.journal._checkpoint import Checkpointer
from gateway.adapters.journal._errors import JournalClosed, JournalError, JournalFull
from gateway.adapters.journal._hwm import SeqMarks, read_hwm, write_hwm
from gateway.adapters.journal._maintenance import Maintenance
from gateway.adapters.journal._retention import RetentionPolicy

log = logging.getLogger(__name__)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  alarm INTEGER NOT NULL,
  body TEXT NOT NULL,
  size INTEGER NOT NULL,
  delivered INTEGER NOT NULL DEFAULT 0,
  ack TEXT,
  stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_undelivered ON events(id) WHERE delivered = 0;
CREATE INDEX IF NOT EXISTS events_telemetry ON events(id) WHERE alarm = 0;
CREATE INDEX IF NOT EXISTS events_alarm_pending ON events(id) WHERE alarm = 1 AND ack IS NULL;
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code == getattr(sqlite3, "SQLITE_FULL", 13) or "disk is full" in str(exc)


@dataclass
class _Counts:
    total: int = 0
    undelivered: int = 0
    alarms_pending: int = 0
    tele_rows: int = 0
    tele_bytes: int = 0
    shed: int = 0


class SqliteJournal:
    """Durable event store implementing :class:`gateway.domain.ports.Journal`.

    Keyword arguments (all documented defaults):

    - ``max_telemetry_rows`` (100 000) / ``max_telemetry_bytes`` (64 MiB): bound on
      non-alarm rows; beyond it the oldest telemetry is deleted first, undelivered ones
      counted in ``depth().shed``. Alarms are never evicted.
    - ``synchronous``: ``"FULL"`` (default, see module doc) or ``"NORMAL"``.
    - ``counter_block`` (1000): gateway counter values reserved per write of the
      high-water-mark file ``<path>.hwm``.
    - ``reserve_bytes`` (1 MiB): a ballast file ``<path>.reserve`` kept beside the
      journal. On a full disk it is deleted first, so shedding telemetry (which itself
      needs WAL space) and storing alarms can still proceed; it is re-created later.
    - ``before_commit``: test/bench seam called inside every write transaction just
      before COMMIT (sleep to emulate slow storage, raise ``OSError(ENOSPC)`` to emulate
      a full disk). ``None`` in production.
    - ``clock``: injected clock (``SystemClock()``).
    - ``retention``: :class:`RetentionPolicy` (retention of delivered telemetry and
      acknowledged alarms, size budget, checkpoint and vacuum pacing; defaults 24 h /
      30 days / 256 MiB). Applied by :meth:`maintain_step`, which the writer thread calls.

    A file that SQLite cannot read at start-up is quarantined (renamed
    ``<path>.corrupt-<UTC timestamp>``), a fresh journal is created and ``recovery``
    describes what happened, so the daemon raises a ``journal_recovered`` technical alarm.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_telemetry_rows: int = 100_000,
        max_telemetry_bytes: int = 64 * 1024 * 1024,
        synchronous: str = "FULL",
        counter_block: int = 1000,
        reserve_bytes: int = 1 << 20,
        before_commit: Callable[[], None] | None = None,
        clock: Clock | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise JournalError(f"synchronous={synchronous!r} is not supported; use 'FULL' or 'NORMAL'", path=path)
        if max_telemetry_rows < 1:
            raise JournalError(f"max_telemetry_rows={max_telemetry_rows} must be at least 1", path=path)
        self.path = Path(path)
        self.hwm_path = self.path.with_name(self.path.name + ".hwm")
        self.max_telemetry_rows = max_telemetry_rows
        self.max_telemetry_bytes = max_telemetry_bytes
        self._synchronous = synchronous
        self._counter_block = counter_block
        self._before_commit = before_commit
        self._clock = clock or SystemClock()
        self.retention = retention or RetentionPolicy()
        self._lock = threading.RLock()
        self._counter_lock = threading.Lock()   # never held across a journal commit
        self._counts = _Counts()
        self._reserve_missing = False
        self.recovery: Recovery | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            self._quarantine(str(exc))
            try:
                self._conn = self._open()
            except sqlite3.Error as exc2:
                raise JournalError(f"cannot create a fresh journal at {self.path}: {exc2}", path=self.path, cause=exc2) from exc2
        self.reserve_path = self.path.with_name(self.path.name + ".reserve")
        self._reserve_bytes = reserve_bytes
        self._ensure_reserve()
        self._reserved = read_hwm(self.hwm_path)
        self._counter = self._reserved  # the next value is always above anything handed out before
        self._load_counts()
        self.seq_marks = SeqMarks(self.path.with_name(self.path.name + ".seqs"))   # F13
        if self.seq_marks.items() and self._c.execute("SELECT 1 FROM state LIMIT 1").fetchone() is None:
            self._c.execute("BEGIN IMMEDIATE")   # a fresh journal starts above the saved marks
            self._c.executemany("INSERT OR IGNORE INTO state(key, value) VALUES (?, ?)", self.seq_marks.items())
            self._c.execute("COMMIT")
        self.maintenance = Maintenance(self, self.retention)
        self.checkpointer = Checkpointer(self.path, synchronous=synchronous)
        self._commits_since_ckpt = 0
        self._rows_since_ckpt = 0
        # A second, read-only connection: in WAL mode readers never wait for the writer, so
        # contains()/get_state() called on the event loop do not block behind a commit's fsync.
        self._rconn: sqlite3.Connection | None = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=10)
        self._rconn.execute(f"PRAGMA cache_size=-{int(self.retention.read_cache_kib)}")
        self._rlock = threading.Lock()

    # ---- opening / recovery -------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10)
        try:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")    # takes effect on a new file only
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.DatabaseError(f"journal_mode is {mode}, WAL unavailable")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA wal_autocheckpoint={int(self.retention.wal_autocheckpoint_pages)}")
            conn.execute(f"PRAGMA journal_size_limit={int(self.retention.wal_limit_bytes)}")
            conn.execute(f"PRAGMA cache_size=-{int(self.retention.cache_kib)}")
            self._migrate_auto_vacuum(conn)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _migrate_auto_vacuum(self, conn: sqlite3.Connection) -> None:
        """A journal created before auto_vacuum = INCREMENTAL: convert it with one VACUUM at
        open if it is small (``retention.migrate_max_bytes``), else leave it (module doc of
        _retention: freed pages are still reused; only shrinking the file is not possible)."""
        if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 0:
            return
        size = int(conn.execute("PRAGMA page_count").fetchone()[0]) * int(conn.execute("PRAGMA page_size").fetchone()[0])
        if size > self.retention.migrate_max_bytes:
            log.info("journal %s (%.1f MB) was created without incremental vacuum; left as it is (freed pages "
                     "are reused, the file does not shrink)", self.path, size / 1e6)
            return
        try:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
            log.info("journal %s (%.1f MB) converted to incremental vacuum", self.path, size / 1e6)
        except sqlite3.OperationalError as exc:   # e.g. no room for the copy: keep the file as it is
            log.warning("journal %s not converted to incremental vacuum: %s", self.path, exc)

    def _quarantine(self, reason: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock.time()))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(target) + suffix))
        log.error("journal %s unreadable (%s); moved to %s and starting a fresh journal", self.path, reason, target)
        self.recovery = Recovery(quarantined_to=target, reason=reason, at=self._clock.time())

    def _load_counts(self) -> None:
        c = self._c
        q = lambda sql: c.execute(sql).fetchone()  # noqa: E731
        self._counts.total = q("SELECT COUNT(*) FROM events")[0]
        self._counts.undelivered = q("SELECT COUNT(*) FROM events WHERE delivered = 0")[0]
        self._counts.alarms_pending = q("SELECT COUNT(*) FROM events WHERE alarm = 1 AND ack IS NULL")[0]
        rows, size = q("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE alarm = 0")
        self._counts.tele_rows, self._counts.tele_bytes = rows, size
        shed = q("SELECT value FROM meta WHERE key = 'shed'")
        self._counts.shed = shed[0] if shed else 0

    @property
    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalClosed("journal is closed", path=self.path)
        return self._conn

    def close(self) -> None:
        self.checkpointer.stop()
        with self._rlock:
            if self._rconn is not None:
                self._rconn.close()
                self._rconn = None
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def _read_one(self, sql: str, args: tuple) -> tuple | None:
        """A single-row read on the read connection (committed data; never waits for a commit)."""
        with self._rlock:
            if self._rconn is None:
                raise JournalClosed("journal is closed", path=self.path)
            return self._rconn.execute(sql, args).fetchone()

    # ---- writes ---------------------------------------------------------------
    def apply(
        self,
        appends: list[Event] = (),  # type: ignore[assignment]
        delivered: Iterable[str] = (),
        acks: Iterable[tuple[str, str]] = (),
        states: Iterable[tuple[str, bytes]] = (),
    ) -> list[AppendResult]:
        """One transaction (one fsync): append events, mark delivered, record platform acks,
        set state keys.

        Never raises for append failures: a full disk sheds the batch's telemetry and
        retries the alarms alone; what still cannot be stored comes back ``FAILED``.
        """
        appends = list(appends)
        delivered = list(delivered)
        acks = list(acks)
        states = list(states)
        with self._lock:
            try:
                return self._apply_once(appends, delivered, acks, states)
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                if not appends:
                    raise (JournalFull if _is_full(exc) else JournalError)(
                        f"journal write failed: {exc}", path=self.path, cause=exc) from exc
                return self._apply_degraded(appends, delivered, acks, states, exc)

    def _apply_degraded(self, appends: list[Event], delivered: list[str], acks: list[tuple[str, str]],
                        states: list[tuple[str, bytes]], exc: BaseException) -> list[AppendResult]:
        full = _is_full(exc)
        log.error("journal write failed (%s); %s", exc, "shedding telemetry" if full else "holding alarms in memory")
        if full:
            self._emergency_shed()
        alarms = [e for e in appends if e.is_alarm]
        by_id: dict[str, AppendResult] = {}
        if alarms or states:
            try:
                for e, r in zip(alarms, self._apply_once(alarms, delivered, acks, states)):
                    by_id[e.event_id] = r
            except (sqlite3.Error, OSError) as exc2:
                self._rollback()
                for e in alarms:
                    by_id[e.event_id] = AppendResult(AppendOutcome.FAILED, error=str(exc2))
                if states:   # the writer keeps them pending and retries
                    raise (JournalFull if _is_full(exc2) else JournalError)(
                        f"journal write failed: {exc2}", path=self.path, cause=exc2) from exc2
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
        self._counts.shed += n_shed
        return out

    def _ensure_reserve(self) -> bool:
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

    def _emergency_shed(self) -> None:
        """Free space on a full disk: release the ballast, drop the oldest tenth of
        telemetry, truncate the WAL; then try to put the ballast back."""
        try:
            self.reserve_path.unlink()
            self._reserve_missing = True
        except OSError:
            pass
        n = max(256, self._counts.tele_rows // 10)
        try:
            self._c.execute("BEGIN IMMEDIATE")
            removed, undelivered, size = self._delete_oldest_telemetry(n)
            self._c.execute("COMMIT")
            self._counts.total -= removed
            self._counts.undelivered -= undelivered
            self._counts.tele_rows -= removed
            self._counts.tele_bytes -= size
            self._counts.shed += undelivered
            self._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            log.error("could not shed telemetry on a full disk: %s", exc)

    def _apply_once(self, appends: list[Event], delivered: list[str], acks: list[tuple[str, str]],
                    states: list[tuple[str, bytes]] = ()) -> list[AppendResult]:  # type: ignore[assignment]
        c = self._c
        d = _Counts()
        results: list[AppendResult] = []
        now = self._clock.time()
        c.execute("BEGIN IMMEDIATE")
        for e in appends:
            body = encode_event(e)
            cur = c.execute(
                "INSERT OR IGNORE INTO events(event_id, alarm, body, size, stored_at) VALUES (?, ?, ?, ?, ?)",
                (e.event_id, 1 if e.is_alarm else 0, body, len(body), now),
            )
            if cur.rowcount == 0:
                results.append(AppendResult(AppendOutcome.DUPLICATE))
                continue
            results.append(AppendResult(AppendOutcome.STORED, rowid=cur.lastrowid))
            d.total += 1
            d.undelivered += 1
            if e.is_alarm:
                d.alarms_pending += 1
            else:
                d.tele_rows += 1
                d.tele_bytes += len(body)
        if delivered:
            cur = c.executemany("UPDATE events SET delivered = 1 WHERE event_id = ? AND delivered = 0",
                                [(i,) for i in delivered])
            d.undelivered -= max(cur.rowcount, 0)
        for event_id, status in acks:
            cur = c.execute("UPDATE events SET ack = ? WHERE event_id = ? AND alarm = 1 AND ack IS NULL",
                            (status, event_id))
            d.alarms_pending -= max(cur.rowcount, 0)
            if cur.rowcount == 0:
                c.execute("UPDATE events SET ack = ? WHERE event_id = ? AND alarm = 1", (status, event_id))
        for key, value in states:
            c.execute("INSERT INTO state(key, value) VALUES (?, ?) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, bytes(value)))
        rows = self._counts.tele_rows + d.tele_rows
        size = self._counts.tele_bytes + d.tele_bytes
        if rows > self.max_telemetry_rows or size > self.max_telemetry_bytes:
            excess = max(rows - self.max_telemetry_rows, 1)
            if size > self.max_telemetry_bytes and rows:
                excess = max(excess, int((size - self.max_telemetry_bytes) / (size / rows)) + 1)
            removed, undel, rsize = self._delete_oldest_telemetry(excess)
            d.total -= removed
            d.undelivered -= undel
            d.tele_rows -= removed
            d.tele_bytes -= rsize
            d.shed += undel
            if undel:
                c.execute("INSERT INTO meta(key, value) VALUES('shed', ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value", (undel,))
        if self._before_commit is not None:
            self._before_commit()
        c.execute("COMMIT")
        if states:
            self.seq_marks.observe(states)
        k = self._counts
        k.total += d.total
        k.undelivered += d.undelivered
        k.alarms_pending += d.alarms_pending
        k.tele_rows += d.tele_rows
        k.tele_bytes += d.tele_bytes
        k.shed += d.shed
        if self._reserve_missing and self._ensure_reserve():
            self._reserve_missing = False
        self._count_for_checkpoint(len(appends) + len(delivered) + len(acks) + len(states))
        return results

    def _count_for_checkpoint(self, rows: int) -> None:
        """Ask the background checkpointer for a checkpoint every so many commits / rows."""
        self._commits_since_ckpt += 1
        self._rows_since_ckpt += rows
        if (self._commits_since_ckpt >= self.retention.checkpoint_every_commits
                or self._rows_since_ckpt >= self.retention.checkpoint_every_rows):
            self._commits_since_ckpt = self._rows_since_ckpt = 0
            self.checkpointer.request()

    def _delete_oldest_telemetry(self, n: int) -> tuple[int, int, int]:
        c = self._c
        rows = c.execute("SELECT id, delivered, size FROM events WHERE alarm = 0 ORDER BY id LIMIT ?", (n,)).fetchall()
        if not rows:
            return 0, 0, 0
        last = rows[-1][0]
        c.execute("DELETE FROM events WHERE alarm = 0 AND id <= ?", (last,))
        undelivered = sum(1 for r in rows if not r[1])
        if undelivered:
            log.warning("journal: shed %d undelivered telemetry events (oldest first)", undelivered)
        return len(rows), undelivered, sum(r[2] for r in rows)

    def _rollback(self) -> None:
        try:
            if self._conn is not None and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("rollback failed: %s", exc)

    # ---- Journal port ---------------------------------------------------------
    def append(self, event: Event) -> bool:
        """Store durably (returns after the fsync). False if ``event_id`` is already stored.

        Raises :class:`JournalFull` / :class:`JournalError` when the event could not be stored.
        """
        (r,) = self.apply([event])
        if r.outcome is AppendOutcome.FAILED or r.outcome is AppendOutcome.SHED:
            raise JournalFull(f"event {event.event_id} not stored: {r.error}", path=self.path)
        return r.outcome is AppendOutcome.STORED

    def contains(self, event_id: str) -> bool:
        """Committed state; safe on the event loop (does not wait for a commit in progress)."""
        return self._read_one("SELECT 1 FROM events WHERE event_id = ?", (event_id,)) is not None

    def mark_delivered(self, event_ids: Iterable[str]) -> None:
        self.apply(delivered=list(event_ids))

    def mark_acknowledged(self, event_id: str, status: str) -> None:
        if status not in ACK_STATUSES:
            raise JournalError(f"ack status {status!r} is not one of {', '.join(ACK_STATUSES)}", path=self.path)
        self.apply(acks=[(event_id, status)])

    def undelivered(self, limit: int, after_rowid: int = 0) -> list[tuple[int, Event]]:
        with self._lock:
            rows = self._c.execute(
                "SELECT id, body FROM events WHERE delivered = 0 AND id > ? ORDER BY id LIMIT ?",
                (after_rowid, limit)).fetchall()
        return self._decode_rows(rows)

    def undelivered_rows(self, limit: int, after_rowid: int = 0) -> list[tuple[int, str, bool]]:
        """Like :meth:`undelivered` but undecoded: (rowid, body, is_alarm). The body is
        decoded with :func:`gateway.adapters.journal.decode_event` by the caller — on the event
        loop, so a large replay read does not hold the GIL on the writer thread."""
        with self._lock:
            rows = self._c.execute(
                "SELECT id, body, alarm FROM events WHERE delivered = 0 AND id > ? ORDER BY id LIMIT ?",
                (after_rowid, limit)).fetchall()
        return [(r[0], r[1], bool(r[2])) for r in rows]

    def rows_after(self, limit: int, after_rowid: int = 0) -> list[tuple[int, str, bool]]:
        """Every row after ``after_rowid``, delivered or not: (rowid, body, is_alarm), journal
        order. The SCAIP centre's feed keeps progress of its own (a cursor), independent of the
        MQTT route's ``delivered`` flag (gateway/domain/scaip/_feed.py)."""
        with self._lock:
            rows = self._c.execute("SELECT id, body, alarm FROM events WHERE id > ? ORDER BY id LIMIT ?",
                                   (after_rowid, limit)).fetchall()
        return [(r[0], r[1], bool(r[2])) for r in rows]

    def pending_alarms(self, limit: int = 10_000) -> list[tuple[int, Event, bool]]:
        """Alarms without a platform ack: (rowid, event, delivered-to-broker), journal order."""
        with self._lock:
            rows = self._c.execute(
                "SELECT id, body, delivered FROM events WHERE alarm = 1 AND ack IS NULL ORDER BY id LIMIT ?",
                (limit,)).fetchall()
        delivered = {r[0]: bool(r[2]) for r in rows}
        return [(rowid, ev, delivered[rowid]) for rowid, ev in self._decode_rows([(r[0], r[1]) for r in rows])]

    def ack_status(self, event_id: str) -> str | None:
        row = self._read_one("SELECT ack FROM events WHERE event_id = ?", (event_id,))
        return row[0] if row else None

    def is_delivered(self, event_id: str) -> bool | None:
        row = self._read_one("SELECT delivered FROM events WHERE event_id = ?", (event_id,))
        return bool(row[0]) if row else None

    def _decode_rows(self, rows: list[tuple[int, str]]) -> list[tuple[int, Event]]:
        out = []
        for rowid, body in rows:
            try:
                out.append((rowid, decode_event(body)))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("journal row %d has an undecodable body (%s); skipped", rowid, exc)
        return out

    def max_rowid(self) -> int:
        with self._lock:
            row = self._c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def depth(self) -> JournalDepth:
        k = self._counts
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.stat(str(self.path) + suffix).st_size
            except OSError:
                pass
        return JournalDepth(total=k.total, alarms_pending=k.alarms_pending, undelivered=k.undelivered,
                            shed=k.shed, bytes_used=size)

    # ---- housekeeping (writer thread) ------------------------------------------------------
    def maintain_step(self, *, force: bool = False) -> bool:
        """One bounded step of the maintenance pass (retention pruning, size budget,
        checkpoint, incremental vacuum), starting a pass when one is due or ``force``.
        True if the pass has more steps. Called by the writer thread between batches."""
        with self._lock:     # a closed journal raises JournalClosed (``_c``)
            return self.maintenance.step(force=force)

    def run_maintenance(self) -> int:
        """A whole maintenance pass now (tests, tools; blocking). Returns the steps taken."""
        with self._lock:
            return self.maintenance.run_pass()

    def maintenance_stats(self) -> dict[str, object]:
        """Counters of the maintenance passes, the live and file size, the budget."""
        with self._lock:
            d = self.maintenance.stats.to_dict()
            if self._conn is not None:
                d["live_bytes"] = self.maintenance.live_bytes()
                d["file_bytes"] = self.maintenance.file_bytes()
            d["budget_bytes"] = self.retention.budget_bytes
        ck = self.checkpointer
        d.update(checkpoints=ck.checkpoints, longest_checkpoint_ms=round(ck.longest_ms, 3),
                 checkpoint_errors=ck.errors)
        return d

    def next_gateway_counter(self) -> int:
        """Next gateway counter; values are reserved in blocks in ``<path>.hwm`` first.

        A restart (or a quarantined journal) continues above the reserved block, so a
        value is never handed out twice. Raises :class:`JournalError` if the
        high-water-mark file cannot be written and the reserved block is used up.
        """
        with self._counter_lock:    # not the write lock: never waits behind a commit's fsync
            nxt = self._counter + 1
            if nxt > self._reserved:
                new = nxt + self._counter_block - 1
                self._write_hwm(new)
                self._reserved = new
            self._counter = nxt
            return nxt

    @property
    def counter_block(self) -> int:
        return self._counter_block

    def counters_left(self) -> int:
        """Gateway counter values reserved (in ``<path>.hwm``) and not yet handed out."""
        with self._counter_lock:
            return self._reserved - self._counter

    def reserve_counters_ahead(self) -> int:
        """Extend the reserved block by ``counter_block`` values if fewer than half a block
        are left (the journal writer calls it off the event loop, so
        :meth:`next_gateway_counter` on the loop normally never writes the hwm file).
        Returns the values left. Raises :class:`JournalError` if the file cannot be written."""
        with self._counter_lock:
            if self._reserved - self._counter >= self._counter_block // 2:
                return self._reserved - self._counter
            new = self._reserved + self._counter_block
            self._write_hwm(new)
            self._reserved = new
            return self._reserved - self._counter

    def _write_hwm(self, new: int) -> None:
        try:
            write_hwm(self.hwm_path, new)
        except OSError as exc:
            raise (JournalFull if _is_full(exc) else JournalError)(
                f"cannot reserve gateway counters in {self.hwm_path}: {exc}",
                path=self.hwm_path, cause=exc) from exc

    def get_state(self, key: str) -> bytes | None:
        """Committed state; safe on the event loop (does not wait for a commit in progress)."""
        row = self._read_one("SELECT value FROM state WHERE key = ?", (key,))
        return bytes(row[0]) if row else None

    def set_state(self, key: str, value: bytes) -> None:
        with self._lock:
            try:
                self._c.execute("BEGIN IMMEDIATE")
                self._c.execute("INSERT INTO state(key, value) VALUES (?, ?) "
                                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, bytes(value)))
                if self._before_commit is not None:
                    self._before_commit()
                self._c.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                raise (JournalFull if _is_full(exc) else JournalError)(
                    f"cannot store state {key!r}: {exc}", path=self.path, cause=exc) from exc
            self.seq_marks.observe([(key, bytes(value))])
