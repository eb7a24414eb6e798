"""PostgreSQL adapter (psycopg 3): dict rows, COPY for bulk loads, errors translated."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg import errors as pgerr
from psycopg.rows import dict_row

from ..errors import IntegrityViolation, StoreBusy, StoreError
from ._dialect import POSTGRESQL
from ._readonly import refuse, refuse_unless_select


def _translate(exc: psycopg.Error, sql: str) -> StoreError:
    if isinstance(exc, pgerr.IntegrityError):
        diag = getattr(exc, "diag", None)
        name = getattr(diag, "constraint_name", None) or ""
        return IntegrityViolation(f"the database refused the write: {exc}".strip(), constraint=name)
    if isinstance(exc, (pgerr.SerializationFailure, pgerr.DeadlockDetected, pgerr.LockNotAvailable)):
        return StoreBusy(f"transaction conflicted with another one; retry ({exc})")
    return StoreError(f"PostgreSQL error: {exc}", sql=sql.strip()[:200])


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(v: Any) -> str:
    """One value in COPY text format."""
    if v is None:
        return "\\N"
    if v is True:
        return "t"
    if v is False:
        return "f"
    if isinstance(v, str):
        return v.translate(_COPY_ESCAPES) if ("\\" in v or "\t" in v or "\n" in v or "\r" in v) else v
    if isinstance(v, float):
        return repr(v)
    return str(v)


class PostgresTx:
    dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection[Any], *, read_only: bool = False) -> None:
        self._conn: Any = conn
        self.read_only = read_only

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        if self.read_only:
            refuse_unless_select(sql)
        try:
            return self._conn.execute(POSTGRESQL.sql(sql), tuple(params) if params else None)
        except psycopg.Error as exc:
            raise _translate(exc, sql) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._run(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if self.read_only:
            refuse("executemany")
        try:
            with self._conn.cursor() as cur:
                cur.executemany(POSTGRESQL.sql(sql), [tuple(r) for r in rows])
        except psycopg.Error as exc:
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
        """COPY in text format; rows are formatted here in batches (much faster than write_row)."""
        if self.read_only:
            refuse("bulk insert")
        n = 0
        try:
            with self._conn.cursor() as cur:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    buf: list[str] = []
                    for row in rows:
                        buf.append("\t".join(map(_copy_text, row)))
                        n += 1
                        if len(buf) >= 5000:
                            copy.write(("\n".join(buf) + "\n").encode())
                            buf.clear()
                    if buf:
                        copy.write(("\n".join(buf) + "\n").encode())
        except psycopg.Error as exc:
            raise _translate(exc, f"COPY {table}") from exc
        return n

    def reserve_ids(self, table: str, n: int) -> int:
        self._run(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE", ())
        seq = self.scalar("SELECT pg_get_serial_sequence(?, 'id')", (table,))
        start = int(self.scalar(f"SELECT coalesce(max(id), 0) FROM {table}") or 0)
        current = int(self.scalar(f"SELECT last_value FROM {seq}") or 0)
        first = max(start, current) + 1
        self._run("SELECT setval(?, ?)", (seq, first + n - 1 if n else first))
        return first

    def script(self, sql: str) -> None:
        if self.read_only:
            refuse("run a script")
        try:
            self._conn.execute(sql)  # no parameters: several statements are allowed
        except psycopg.Error as exc:
            raise _translate(exc, sql) from exc


class PostgresStore:
    dialect = POSTGRESQL

    def __init__(self, dsn: str, url: str | None = None) -> None:
        self.url = url or dsn
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL ({exc}); check --db / FLEET_DB and that the server runs"
            ) from exc
        self._depth = 0

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[PostgresTx]:
        try:
            with self._conn.transaction():
                yield PostgresTx(self._conn)
        except psycopg.Error as exc:
            raise _translate(exc, "COMMIT") from exc

    @contextmanager
    def reading(self) -> Iterator[PostgresTx]:
        # autocommit (no BEGIN/COMMIT round trips) unless a transaction is open: then it joins it
        yield PostgresTx(self._conn, read_only=True)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
