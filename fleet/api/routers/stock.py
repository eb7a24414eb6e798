"""Stock levels per location and model, reorder warnings and reorder points."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query
from pydantic import Field

from ...access import Permission
from .._body import MUNICIPALITY_QUERY, Body
from .._problems import api_router
from .._context import MUNICIPALITY, Ctx, need
from .._pagination import Page, PageParams

router = api_router("stock and items")


@router.get("/stock", response_model=Page, summary="Counts per warehouse/van and model, with reorder warnings",
            openapi_extra=MUNICIPALITY)
def stock_levels(ctx: Ctx = need(Permission.STOCK_READ), page: PageParams = Depends(),
                 location: str | None = Query(None, max_length=64), model: str | None = Query(None, max_length=64),
                 municipality: str | None = MUNICIPALITY_QUERY,
                 below_reorder_point: bool = Query(False, description="only rows below their reorder point")
                 ) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        rows = s.inventory.stock_levels(ctx.actor, location=location, model=model, municipality=municipality)
    return page.page([r for r in rows if r["warning"]] if below_reorder_point else rows)


class ReorderPoint(Body):
    min_qty: int = Field(ge=0, le=1_000_000, examples=[10])


@router.put("/stock/reorder-points/{location}/{model}", summary="Set the reorder point of a model at a location",
            openapi_extra=MUNICIPALITY)
def set_reorder_point(location: Annotated[str, Path(max_length=64)], model: Annotated[str, Path(max_length=64)],
                      body: ReorderPoint, ctx: Ctx = need(Permission.CATALOG_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.inventory.set_reorder_point(ctx.actor, location, model, body.min_qty)
    return {"location": location, "model": model, "min_qty": body.min_qty}
