"""Units of work: a transaction that hands out a domain repository instead of a raw Tx.

A service runs over one repository inside one transaction (``Service(repo, clock)``). A
flow that needs several transactions — a login whose failure must still be audited, a
delivery-note import that explains a clash after the rollback — takes a
:class:`Transactions` instead: ``with transactions() as repo: ...``.

* :func:`sql_transactions` opens a fleet.store transaction and wraps its Tx in the SQL
  adapter of the domain package;
* :class:`MemoryTransactions` is the fake for unit tests: one in-memory repository whose
  state is restored when the block raises, as a rolled-back transaction would be.
"""
from __future__ import annotations

import copy
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Generic, Iterator, Protocol, TypeVar

from ._api import Store, Tx

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Transactions(Protocol[R_co]):
    def __call__(self, *, write: bool = True) -> AbstractContextManager[R_co]:
        """Begin a transaction; the block gets the repository; commit on exit, roll back on error."""


def sql_transactions(store: Store, repo: Callable[[Tx], R]) -> Transactions[R]:
    """Transactions on ``store``, each wrapped in ``repo(tx)`` (a package's SQL adapter)."""

    @contextmanager
    def begin(*, write: bool = True) -> Iterator[R]:
        with store.transaction(write=write) as tx:
            yield repo(tx)

    return begin


class MemoryTransactions(Generic[R]):
    """All-or-nothing blocks over one in-memory repository (its attributes are snapshotted)."""

    def __init__(self, repo: R) -> None:
        self.repo = repo

    @contextmanager
    def __call__(self, *, write: bool = True) -> Iterator[R]:
        snapshot = copy.deepcopy(vars(self.repo))
        try:
            yield self.repo
        except BaseException:
            vars(self.repo).clear()
            vars(self.repo).update(snapshot)
            raise


__all__ = ["MemoryTransactions", "Transactions", "sql_transactions"]
