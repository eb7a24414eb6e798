"""List responses: ``{"items": [...], "next_cursor": "..."}`` with ``?limit=&cursor=``.

The cursor is opaque to clients (today an encoded offset; a list can move to a keyset
cursor without changing the contract). ``next_cursor`` is null on the last page.
"""
from __future__ import annotations

import base64
from typing import Any, Callable, Sequence

from fastapi import Query
from pydantic import BaseModel, Field

from ..errors import ValidationError

MAX_LIMIT = 500


class Page(BaseModel):
    items: list[dict[str, Any]] = Field(description="the rows of this page")
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last page")


class PageParams:
    def __init__(self, limit: int = Query(100, ge=1, le=MAX_LIMIT, description="rows per page (1-500)"),
                 cursor: str | None = Query(None, max_length=64, description="next_cursor of the previous page")):
        self.limit = limit
        self.offset = decode_cursor(cursor)

    @property
    def fetch(self) -> int:
        """Rows to ask a service for: everything up to the end of this page, plus one to see if more follow."""
        return self.offset + self.limit + 1

    def page(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        window = list(rows[self.offset:self.offset + self.limit])
        more = len(rows) > self.offset + self.limit
        return {"items": window, "next_cursor": encode_cursor(self.offset + self.limit) if more else None}

    def page_of(self, fetch: Callable[[int], Sequence[dict[str, Any]]]) -> dict[str, Any]:
        return self.page(fetch(self.fetch))


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, n = text.partition(":")
        offset = int(n)
        if kind != "o" or offset < 0:
            raise ValueError(text)
        return offset
    except ValueError:
        raise ValidationError("cursor is not one this server issued; use next_cursor of the previous page as is",
                              field="cursor") from None
