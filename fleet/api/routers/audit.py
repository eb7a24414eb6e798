"""The audit log (auditors, admins): every change and every read of personal data, newest first."""
from __future__ import annotations

import base64
from typing import Any

from fastapi import Query

from ...access import Permission
from ...errors import ValidationError
from .._body import MUNICIPALITY_QUERY
from .._problems import api_router
from .._context import MUNICIPALITY, Ctx, need
from .._pagination import Page

router = api_router("audit")


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"b:{last_id}".encode()).decode().rstrip("=")


def _before(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        kind, _, n = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if kind != "b":
            raise ValueError(kind)
        return int(n)
    except ValueError:
        raise ValidationError("cursor is not one this server issued; use next_cursor as is", field="cursor") from None


@router.get("/audit", response_model=Page, summary="Audit records (a scoped reader sees its municipalities only)",
            openapi_extra=MUNICIPALITY)
def audit_log(ctx: Ctx = need(Permission.AUDIT_READ), limit: int = Query(100, ge=1, le=500),
              cursor: str | None = Query(None, max_length=64), entity: str | None = Query(None, max_length=64),
              entity_id: str | None = Query(None, max_length=128), actor: str | None = Query(None, max_length=64),
              since: float | None = Query(None, description="epoch seconds"),
              municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        rows = s.access.audit_entries(ctx.actor, entity=entity, entity_id=entity_id, actor=actor, since=since,
                                      limit=limit + 1, municipality=municipality, before_id=_before(cursor))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": _cursor(rows[-1]["id"]) if more else None}
