"""The control sequence in the fleet store (table ``control_seq``, migration 0310)."""
from __future__ import annotations

from typing import Any

from contracts.control import next_seq

_BUMP = ("INSERT INTO control_seq (gateway_id, seq) VALUES (?, ?) "
         "ON CONFLICT (gateway_id) DO UPDATE SET seq = CASE WHEN control_seq.seq + 1 > excluded.seq "
         "THEN control_seq.seq + 1 ELSE excluded.seq END RETURNING seq")


def bump_seq(tx: Any, gateway_id: str, now: float) -> int:
    """``seq = max(seq + 1, now in µs)`` for ``gateway_id`` in transaction ``tx``, returned.

    One statement: the row lock (PostgreSQL) or the single writer (SQLite) orders concurrent
    workers, so each gets a number above the one before."""
    row = tx.one(_BUMP, (gateway_id, next_seq(0, now)))
    return int(row["seq"])


class StoreSeq:
    """A :class:`~fleet.control.SeqSource` over a store: each number in its own short transaction
    (committed at once, so a caller's rollback never hands the same number out twice)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def next_seq(self, gateway_id: str, now: float) -> int:
        with self._store.transaction() as tx:
            return bump_seq(tx, gateway_id, now)


class TxSeq:
    """A :class:`~fleet.control.SeqSource` inside the caller's transaction (the API's push, which is
    audited in the same transaction). The wall-clock floor keeps a number a rolled-back
    transaction handed out from coming back."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def next_seq(self, gateway_id: str, now: float) -> int:
        return bump_seq(self._tx, gateway_id, now)
