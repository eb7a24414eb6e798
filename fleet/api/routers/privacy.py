"""Deletion of personal data after deinstallation, and its proof."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import Field, StringConstraints

from ...access import Permission
from .._body import Body, require_row
from .._problems import api_router
from .._context import MUNICIPALITY, Ctx, need

router = api_router("privacy")


class Purge(Body):
    code: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        None, description="one installation; null = every deinstalled installation past its retention")
    now: bool = Field(False, description="with code: purge now regardless of retention")


@router.post("/privacy/purges", summary="Delete personal data of deinstalled installations", openapi_extra=MUNICIPALITY)
def purge(body: Purge, ctx: Ctx = need(Permission.PRIVACY_PURGE)) -> dict[str, Any]:
    with ctx.tx() as s:
        if body.code:
            row = s.installations.show(ctx.actor, body.code, personal=False, audit_read=False)
            require_row(ctx.actor, Permission.PRIVACY_PURGE, row["municipality"])
        else:   # the sweep crosses municipalities: only for an actor of all of them
            require_row(ctx.actor, Permission.PRIVACY_PURGE, None, fleet_wide_only=True)
        done = s.installations.purge(ctx.actor, code=body.code, force=body.now)
    return {"purged": done}


class Verify(Body):
    resident_ref: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="the former resident reference: every text column of every table is searched")


@router.post("/installations/{code}/privacy-verification",
             summary="Prove that no personal data of an installation remains", openapi_extra=MUNICIPALITY)
def verify(code: Annotated[str, Path(max_length=32)], body: Verify,
           ctx: Ctx = need(Permission.PRIVACY_PURGE)) -> dict[str, Any]:
    with ctx.tx() as s:
        row = s.installations.show(ctx.actor, code, personal=False, audit_read=False)
        require_row(ctx.actor, Permission.PRIVACY_PURGE, row["municipality"])
        result = s.installations.verify_purged(ctx.actor, code, resident_ref=body.resident_ref)
        s.audit("privacy.verify", "installation", code, municipality=row["municipality"],
                personal=body.resident_ref is not None, detail={"ok": result["ok"]})
    return result
