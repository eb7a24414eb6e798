"""Opening the journal file: schema, connection settings, integrity check, quarantine.

:func:`open_journal` opens (or creates) ``<path>`` on the writer connection:
``auto_vacuum = INCREMENTAL`` (a new file only), WAL mode (an error if unavailable), the
``synchronous`` level (``_store`` module doc), ``PRAGMA quick_check``, the schema below
(``CREATE … IF NOT EXISTS``), the WAL and page-cache limits of the
:class:`RetentionPolicy` and, for a small journal created before incremental vacuum, a
one-off conversion (``_retention`` module doc).

A file SQLite cannot read (not a database, failed ``quick_check``, no WAL) is quarantined:
``<path>`` and its ``-wal`` / ``-shm`` are renamed ``<path>.corrupt-<UTC timestamp>``
(plus ``-<n>`` if that exists), a fresh journal is created and the :class:`Recovery` says
so, for the daemon's ``journal_recovered`` technical alarm. The files beside the journal
(``.hwm``, ``.seqs``) are not moved: gateway counters and device sequence marks continue
above what was used before.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from gateway.adapters.journal._errors import JournalError
from gateway.adapters.journal._retention import RetentionPolicy
from gateway.domain.journal_types import Recovery
from gateway.domain.ports import Clock

log = logging.getLogger(__name__)

SCHEMA = """
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


def open_journal(path: Path, *, synchronous: str, retention: RetentionPolicy,
                 clock: Clock) -> tuple[sqlite3.Connection, Recovery | None]:
    """The writer connection to ``path``, and a :class:`Recovery` if an unreadable file was
    quarantined first (module doc). Raises :class:`JournalError` if even a fresh journal
    cannot be created."""
    try:
        return _connect(path, synchronous, retention), None
    except sqlite3.DatabaseError as exc:
        recovery = _quarantine(path, str(exc), clock)
        try:
            return _connect(path, synchronous, retention), recovery
        except sqlite3.Error as exc2:
            raise JournalError(f"cannot create a fresh journal at {path}: {exc2}", path=path, cause=exc2) from exc2


def _connect(path: Path, synchronous: str, retention: RetentionPolicy) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")    # takes effect on a new file only
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"journal_mode is {mode}, WAL unavailable")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check}")
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA wal_autocheckpoint={int(retention.wal_autocheckpoint_pages)}")
        conn.execute(f"PRAGMA journal_size_limit={int(retention.wal_limit_bytes)}")
        conn.execute(f"PRAGMA cache_size=-{int(retention.cache_kib)}")
        _migrate_auto_vacuum(conn, path, retention)
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def _migrate_auto_vacuum(conn: sqlite3.Connection, path: Path, retention: RetentionPolicy) -> None:
    """A journal created before auto_vacuum = INCREMENTAL: convert it with one VACUUM at
    open if it is small (``retention.migrate_max_bytes``), else leave it (module doc of
    _retention: freed pages are still reused; only shrinking the file is not possible)."""
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 0:
        return
    size = int(conn.execute("PRAGMA page_count").fetchone()[0]) * int(conn.execute("PRAGMA page_size").fetchone()[0])
    if size > retention.migrate_max_bytes:
        log.info("journal %s (%.1f MB) was created without incremental vacuum; left as it is (freed pages "
                 "are reused, the file does not shrink)", path, size / 1e6)
        return
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
        log.info("journal %s (%.1f MB) converted to incremental vacuum", path, size / 1e6)
    except sqlite3.OperationalError as exc:   # e.g. no room for the copy: keep the file as it is
        log.warning("journal %s not converted to incremental vacuum: %s", path, exc)


def _quarantine(path: Path, reason: str, clock: Clock) -> Recovery:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.time()))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    log.error("journal %s unreadable (%s); moved to %s and starting a fresh journal", path, reason, target)
    return Recovery(quarantined_to=target, reason=reason, at=clock.time())
