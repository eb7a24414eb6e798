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

Beside it, each used by :class:`SqliteJournal`: ``_open`` (schema, connection settings,
integrity check, quarantine of an unreadable file), ``_disk_full`` (the ballast file and
the degraded write of a batch on a full disk), ``_counter`` (the gateway event counter,
reserved in blocks in ``<path>.hwm``), ``_hwm`` (``<path>.seqs``: device sequence marks),
``_maintenance`` and ``_checkpoint`` (housekeeping, above).

Thread safety: one connection guarded by a lock; normally only the writer thread calls in.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from gateway.domain.model import Event
from gateway.domain.ports import Clock, JournalDepth, SystemClock

from gateway.domain.journal_codec import decode_event, encode_event
from gateway.domain.journal_types import ACK_STATUSES, AppendOutcome, AppendResult, Recovery
from gateway.adapters.journal._checkpoint import Checkpointer
from gateway.adapters.journal._counter import ReservedCounter
from gateway.adapters.journal._disk_full import DiskFull
from gateway.adapters.journal._errors import JournalClosed, JournalError, JournalFull, write_error
from gateway.adapters.journal._hwm import SeqMarks
from gateway.adapters.journal._maintenance import Maintenance
from gateway.adapters.journal._open import open_journal
from gateway.adapters.journal._retention import RetentionPolicy

log = logging.getLogger(__name__)


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
      high-water-mark file ``<path>.hwm`` (``counter``: ``_counter`` module).
    - ``reserve_bytes`` (1 MiB): a ballast file ``<path>.reserve`` kept beside the
      journal. On a full disk it is deleted first, so shedding telemetry (which itself
      needs WAL space) and storing alarms can still proceed; it is re-created later
      (``disk_full``: ``_disk_full`` module).
    - ``before_commit``: test/bench seam called inside every write transaction just
      before COMMIT (sleep to emulate slow storage, raise ``OSError(ENOSPC)`` to emulate
      a full disk). ``None`` in production.
    - ``clock``: injected clock (``SystemClock()``).
    - ``retention``: :class:`RetentionPolicy` (retention of delivered telemetry and
      acknowledged alarms, size budget, checkpoint and vacuum pacing; defaults 24 h /
      30 days / 256 MiB). Applied by :meth:`maintain_step`, which the writer thread calls.

    A file that SQLite cannot read at start-up is quarantined (renamed
    ``<path>.corrupt-<UTC timestamp>``), a fresh journal is created and ``recovery``
    describes what happened, so the daemon raises a ``journal_recovered`` technical alarm
    (``_open`` module).
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
        self._before_commit = before_commit
        self._clock = clock or SystemClock()
        self.retention = retention or RetentionPolicy()
        self._lock = threading.RLock()
        self._counts = _Counts()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None     # None once closed
        self.recovery: Recovery | None
        self._conn, self.recovery = open_journal(self.path, synchronous=synchronous, retention=self.retention,
                                                 clock=self._clock)
        self.reserve_path = self.path.with_name(self.path.name + ".reserve")
        self.disk_full = DiskFull(self, self.reserve_path, reserve_bytes)
        self.disk_full.ensure_reserve()
        self.counter = ReservedCounter(self.hwm_path, counter_block)
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
        retries the alarms alone (``_disk_full`` module); what still cannot be stored comes
        back ``FAILED``.
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
                    raise write_error(f"journal write failed: {exc}", path=self.path, cause=exc) from exc
                return self.disk_full.apply_degraded(appends, delivered, acks, states, exc)

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
        self.disk_full.after_commit()
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
        """Next gateway counter (:class:`ReservedCounter`): reserved in blocks in
        ``<path>.hwm`` first, never handed out twice, also after a restart or quarantine.
        Raises :class:`JournalError` if the file cannot be written and the block is used up."""
        return self.counter.next()

    @property
    def counter_block(self) -> int:
        return self.counter.block

    def counters_left(self) -> int:
        """Gateway counter values reserved (in ``<path>.hwm``) and not yet handed out."""
        return self.counter.left()

    def reserve_counters_ahead(self) -> int:
        """Reserve the next block if fewer than half a block are left (the journal writer
        calls it off the event loop). Returns the values left; raises :class:`JournalError`."""
        return self.counter.reserve_ahead()

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
                raise write_error(f"cannot store state {key!r}: {exc}", path=self.path, cause=exc) from exc
            self.seq_marks.observe([(key, bytes(value))])
