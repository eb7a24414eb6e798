"""Storage layer: one schema on SQLite (embedded default) or PostgreSQL (scale).

    from fleet.store import open_store
    store = open_store("sqlite:///var/lib/fleet/fleet.db")   # or postgresql://...
    with store.transaction() as tx:                            # commit / rollback
        tx.execute("UPDATE item SET state = ? WHERE serial = ?", ("in_stock", "SN1"))
        row = tx.one("SELECT * FROM item WHERE serial = ?", ("SN1",))

See fleet/README.md for the contract other fleet modules build on.
"""
from __future__ import annotations

from ._api import Params, Row, Store, Tx
from ._dialect import POSTGRESQL, SQLITE, Dialect, DialectName
from ._factory import default_url, open_store, sqlite_path
from ._scope import in_scope
from ._uow import MemoryTransactions, Transactions, sql_transactions
from .migrate import applied, migrate, pending

__all__ = [
    "Dialect", "DialectName", "MemoryTransactions", "Params", "POSTGRESQL", "Row", "SQLITE", "Store",
    "Transactions", "Tx", "applied", "default_url", "in_scope", "migrate", "open_store", "pending", "sql_transactions",
    "sqlite_path",
]
