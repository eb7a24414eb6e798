"""WAL checkpoints off the commit path: their own connection and thread.

A checkpoint copies the WAL's pages into the database file and fsyncs it — on an SD card
tens to hundreds of milliseconds, more when the card is busy (the soak measured 1.4 s on a
loaded test box). Run on the writer's connection (SQLite's automatic checkpoint, or a
``PRAGMA wal_checkpoint`` there), it holds up the next commit, i.e. the ACK of the next
alarm. Here it runs as ``PRAGMA wal_checkpoint(PASSIVE)`` on a separate connection in the
``journal-checkpoint`` thread: in WAL mode a passive checkpoint and a writer proceed side by
side, so commits never wait for it.

When (policy: gateway/adapters/journal/_retention.py): the journal asks for one every
``checkpoint_every_commits`` commits or ``checkpoint_every_rows`` changed rows (about the
4 MiB SQLite would wait for), and at the end of each maintenance pass. The writer
connection keeps an automatic checkpoint only as a backstop, at four times that size, in
case this thread cannot keep up.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


class Checkpointer:
    """Background passive checkpoints of one journal file (see module doc). The thread starts
    on the first :meth:`request`; :meth:`stop` ends it. :meth:`run_now` checkpoints on the
    calling thread (tests, tools). Counters: ``checkpoints``, ``longest_ms``, ``errors``,
    ``last_result`` (busy, WAL frames, frames checkpointed)."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()          # one checkpoint at a time (thread or run_now)
        self.checkpoints = 0
        self.longest_ms = 0.0
        self.errors = 0
        self.last_result: tuple[int, int, int] | None = None
        self.last_error: str | None = None

    def request(self) -> None:
        """Ask for a checkpoint soon (never blocks)."""
        if self._stopping:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="journal-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def run_now(self) -> tuple[int, int, int] | None:
        """One passive checkpoint on this thread; the pragma's (busy, log, checkpointed)."""
        with self._lock:
            t0 = time.perf_counter()
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                                 timeout=10)
                    self._conn.execute(f"PRAGMA synchronous={self._synchronous}")
                    self._conn.execute("PRAGMA cache_size=-64")   # copies through, caches nothing worth keeping
                row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                self.errors += 1
                self.last_error = str(exc)
                log.error("journal checkpoint of %s failed: %s", self.path, exc)
                return None
            ms = (time.perf_counter() - t0) * 1000.0
            self.checkpoints += 1
            self.longest_ms = max(self.longest_ms, ms)
            self.last_result = (int(row[0]), int(row[1]), int(row[2]))
            return self.last_result

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            self.run_now()
