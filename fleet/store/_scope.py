"""Limiting a query to a user's municipalities (the SQL side of ``Actor.municipalities``)."""
from __future__ import annotations

from typing import Collection


def in_scope(column: str, municipalities: Collection[str] | None) -> tuple[str, list[str]]:
    """A WHERE fragment and its parameters: ``column`` is one of ``municipalities``.

    ``None`` means every municipality (``1=1``); an empty scope matches nothing (``1=0``).
    """
    if municipalities is None:
        return "1=1", []
    if not municipalities:
        return "1=0", []
    ms = sorted(municipalities)
    return f"{column} IN ({', '.join('?' * len(ms))})", ms
