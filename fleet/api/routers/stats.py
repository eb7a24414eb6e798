"""Benefit statistics per municipality and period, and the municipalities' baselines."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import Field

from ...access import Permission
from ...errors import ValidationError
from ...monitoring import _queries as q
from ...monitoring._stats import compute, split_periods
from .._body import MUNICIPALITY_QUERY, Body
from .._problems import api_router
from .._context import MUNICIPALITY, Ctx, need

router = api_router("statistics")


def _day(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()


@router.get("/statistics/benefits", summary="Alarms, ack times, false alarms, uptime, night checks replaced",
            openapi_extra=MUNICIPALITY)
def benefits(ctx: Ctx = need(Permission.STATS_READ), start: date = Query(..., alias="from", description="YYYY-MM-DD (UTC)"),
             end: date = Query(..., alias="to", description="YYYY-MM-DD (UTC, exclusive)"),
             by: Literal["day", "week", "month", "all"] = Query("month"),
             municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    t0, t1 = _day(start), _day(end)
    if t1 <= t0:
        raise ValidationError(f"to {end} must be after from {start}", field="to")
    if by == "day" and t1 - t0 > 3 * 366 * 86400:
        raise ValidationError("at most three years by day; choose by=week or by=month", field="by")
    ctx.actor.require(Permission.STATS_READ, municipality)
    with ctx.tx(write=False) as s:
        inputs = q.stats_inputs(s.tx, start=t0, end=t1, scope=ctx.actor.municipalities, municipality=municipality)
    return {"items": [st.summary() for st in compute(split_periods(t0, t1, by), **inputs)]}


class Baseline(Body):
    night_checks_per_night: float = Field(ge=0, le=100, description="physical checks one home needed per night before")


@router.put("/statistics/baselines/{municipality}", summary="Set a municipality's zero-point (night checks)",
            openapi_extra=MUNICIPALITY)
def put_baseline(municipality: Annotated[str, Path(pattern=r"^[0-9]{4}$")], body: Baseline,
                 ctx: Ctx = need(Permission.CONFIG_WRITE)) -> dict[str, Any]:
    ctx.actor.require(Permission.CONFIG_WRITE, municipality)
    with ctx.tx() as s:
        q.set_baseline(s.tx, municipality, body.night_checks_per_night, at=ctx.now(), by=ctx.actor.name)
        s.audit("stats.baseline", "municipality", municipality, municipality=municipality,
                detail={"night_checks_per_night": body.night_checks_per_night})
    return {"municipality": municipality, "night_checks_per_night": body.night_checks_per_night}
