"""Kits: assemble from in-stock items, look up, dismantle."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from pydantic import Field

from ...access import Permission
from .._body import MUNICIPALITY_QUERY, Body, Code, narrowed, visible
from .._problems import api_router
from .._context import MUNICIPALITY, Ctx, Services, need
from .._pagination import Page, PageParams

router = api_router("kits")
KitCode = Annotated[str, Path(min_length=1, max_length=64, description="e.g. K-000017")]


def _kit(s: Services, code: str, permission: Permission) -> dict[str, Any]:
    kit = s.inventory.get_kit(code)
    s.actor.require(permission, s.inventory.location_municipality(kit["location_id"]))
    return kit


@router.get("/kits", response_model=Page, summary="Kits in your municipalities", openapi_extra=MUNICIPALITY)
def list_kits(ctx: Ctx = need(Permission.STOCK_READ), page: PageParams = Depends(),
              state: Literal["assembled", "installed", "dismantled"] | None = Query(None),
              municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    actor = narrowed(ctx.actor, Permission.STOCK_READ, municipality)
    with ctx.tx(write=False) as s:
        munis: dict[str | None, str | None] = {}

        def muni(loc: str | None) -> str | None:
            if loc not in munis:
                munis[loc] = s.inventory.get_location(loc)["municipality_id"] if loc else None
            return munis[loc]

        rows = [k for k in s.inventory.kits(state=state)
                if visible(actor, Permission.STOCK_READ, muni(k["location"]), unowned=actor.municipalities is None)]
    return page.page(rows)


@router.get("/kits/{code}", summary="A kit and its items", openapi_extra=MUNICIPALITY)
def get_kit(code: KitCode, ctx: Ctx = need(Permission.STOCK_READ)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return _kit(s, code, Permission.STOCK_READ)


class NewKit(Body):
    template: Code = Field(examples=["safety-alarm"])
    serials: list[Code] = Field(min_length=1, max_length=50, examples=[["SN-OSL-GW-00001", "SN-OSL-BTN-00001"]])
    code: Code | None = Field(None, description="default K-NNNNNN")


@router.post("/kits", status_code=201, summary="Assemble a kit from in-stock items", openapi_extra=MUNICIPALITY)
def assemble_kit(body: NewKit, ctx: Ctx = need(Permission.STOCK_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        for serial in body.serials:       # every part must be the caller's before anything is said about it
            s.inventory.device_show(ctx.actor, serial)
        return s.inventory.assemble_kit(ctx.actor, body.template, body.serials, code=body.code)


@router.post("/kits/{code}/dismantle", summary="Put an assembled kit's items back in stock",
             openapi_extra=MUNICIPALITY)
def dismantle_kit(code: KitCode, ctx: Ctx = need(Permission.STOCK_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        _kit(s, code, Permission.STOCK_WRITE)
        return s.inventory.dismantle_kit(ctx.actor, code)
