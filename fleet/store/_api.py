"""The storage port: a Store hands out transactions; a Tx runs ``?``-style SQL.

Domain modules depend on these two types only. The adapters (``_sqlite``,
``_postgres``) are the only modules that import a database driver.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Iterable, Iterator, Protocol, Sequence

from ._dialect import Dialect

Row = dict[str, Any]
Params = Sequence[Any]


class Tx(Protocol):
    """One open transaction. Rows come back as plain dicts."""

    dialect: Dialect

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the affected row count."""

    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    def query(self, sql: str, params: Params = ()) -> list[Row]: ...

    def one(self, sql: str, params: Params = ()) -> Row | None:
        """First row or None."""

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """First column of the first row, or None."""

    def iter(self, sql: str, params: Params = (), *, batch: int = 1000) -> Iterator[Row]:
        """Stream a large result without loading it all."""

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Params]) -> int:
        """Fast load (COPY on PostgreSQL, executemany on SQLite); returns rows written."""

    def reserve_ids(self, table: str, n: int) -> int:
        """Reserve ``n`` consecutive ids of ``table.id`` for explicit-id bulk loads; return the first.

        Locks the table against concurrent inserts until the transaction ends.
        """

    def script(self, sql: str) -> None:
        """Run several ``;``-separated statements without parameters (migrations)."""


class Store(Protocol):
    """A connection to one fleet database. Not thread-safe: one Store per worker/thread."""

    url: str
    dialect: Dialect

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Tx]:
        """Commit on normal exit, roll back on exception.

        ``write=True`` takes the write lock up front on SQLite (``BEGIN IMMEDIATE``) so
        two writers queue instead of failing half-way with ``database is locked``.
        """

    def reading(self) -> AbstractContextManager[Tx]:
        """Reads only (SELECT), without the round trips of a transaction on PostgreSQL.

        PostgreSQL: the statements run in autocommit, each seeing what was committed when it
        started — what a READ COMMITTED transaction (PostgreSQL's default, and the store's)
        gives each statement anyway — so two reads need no BEGIN and COMMIT (half of a device
        show's round trips). SQLite: a deferred (read) transaction. Inside an open transaction
        it joins that transaction. On both, anything but a plain SELECT (a write, an audit row,
        ``FOR UPDATE``) raises :class:`~fleet.errors.StoreError`: use :meth:`transaction`.
        """

    def close(self) -> None: ...

    def __enter__(self) -> "Store": ...

    def __exit__(self, *exc: object) -> None: ...
