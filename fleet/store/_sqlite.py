"""SQLite adapter (stdlib sqlite3): WAL, foreign keys, busy timeout, explicit BEGIN."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import IntegrityViolation, StoreBusy, StoreError
from ._dialect import SQLITE
from ._readonly import refuse, refuse_unless_select

BUSY_TIMEOUT_MS = 10_000


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row)}


def _translate(exc: sqlite3.Error, sql: str) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityViolation(f"the database refused the write: {exc}", constraint=str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return StoreBusy(f"database is locked (another writer held it for {BUSY_TIMEOUT_MS} ms); retry")
    return StoreError(f"SQLite error: {exc}", sql=sql.strip()[:200])


class SqliteTx:
    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        self._conn = conn
        self.read_only = read_only

    def _run(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        if self.read_only:
            refuse_unless_select(sql)
        try:
            return self._conn.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise _translate(exc, sql) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._run(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if self.read_only:
            refuse("executemany")
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _translate(exc, sql) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._run(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        return self._run(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._run(sql, params).fetchone()
        return None if row is None else next(iter(row.values()))

    def iter(self, sql: str, params: Sequence[Any] = (), *, batch: int = 1000) -> Iterator[dict[str, Any]]:
        cur = self._run(sql, params)
        while rows := cur.fetchmany(batch):
            yield from rows

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        before = self._conn.total_changes
        self.executemany(sql, rows)
        return self._conn.total_changes - before

    def reserve_ids(self, table: str, n: int) -> int:
        # write transactions hold the database write lock (BEGIN IMMEDIATE) already;
        # AUTOINCREMENT's sqlite_sequence follows explicit ids.
        return int(self.scalar(f"SELECT coalesce(max(id), 0) + 1 FROM {table}") or 1)

    def script(self, sql: str) -> None:
        if self.read_only:
            refuse("run a script")
        # executescript() would COMMIT first; split into complete statements instead so
        # a migration stays inside its transaction (triggers' BEGIN..END included).
        buf = ""
        for line in sql.splitlines(keepends=True):
            buf += line
            if sqlite3.complete_statement(buf):
                if buf.strip():
                    self._run(buf, ())
                buf = ""
        if buf.strip() and not all(l.strip().startswith("--") or not l.strip() for l in buf.splitlines()):
            self._run(buf, ())


class SqliteStore:
    dialect = SQLITE

    def __init__(self, path: str, url: str) -> None:
        self.url = url
        self.path = path
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}; check the path and permissions") from exc
        self._conn.row_factory = _dict_row
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={BUSY_TIMEOUT_MS}"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._depth = 0

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SqliteTx]:
        if self._depth:  # nested: join the outer transaction
            self._depth += 1
            try:
                yield SqliteTx(self._conn)
            finally:
                self._depth -= 1
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise _translate(exc, "BEGIN") from exc
        self._depth = 1
        try:
            yield SqliteTx(self._conn)
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise _translate(exc, "COMMIT") from exc

    @contextmanager
    def reading(self) -> Iterator[SqliteTx]:
        # a deferred read transaction (in process: no round trips to save), or the open one
        with self.transaction(write=False) as tx:
            tx.read_only = True
            yield tx

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
