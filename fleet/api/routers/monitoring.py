"""Monitoring: offline gateways, silent devices, low batteries, failed updates (written by the
ingest workers, ``fleet monitor ingest``)."""
from __future__ import annotations

from typing import Any

from fastapi import Depends, Query

from ...access import Permission
from ...monitoring import _queries as q
from .._body import MUNICIPALITY_QUERY, narrowed
from .._problems import api_router
from .._context import FLEETWIDE, MUNICIPALITY, Ctx, need
from .._pagination import PageParams

router = api_router("monitoring")


@router.get("/monitoring/offline-gateways", summary="Gateways offline or not seen for ?minutes, oldest first",
            openapi_extra=MUNICIPALITY)
def offline(ctx: Ctx = need(Permission.MONITOR_READ), page: PageParams = Depends(),
            minutes: float = Query(15.0, gt=0, le=525_600), municipality: str | None = MUNICIPALITY_QUERY
            ) -> dict[str, Any]:
    now = ctx.now()
    with ctx.read() as s:            # count and page: two SELECTs, no audit
        total, rows = q.list_offline(s.tx, ctx.actor, now=now, minutes=minutes, municipality=municipality,
                                     limit=page.fetch)
    for r in rows:
        r["online"] = bool(r["online"])
        r["minutes_ago"] = None if r["last_seen"] is None else round((now - r["last_seen"]) / 60, 1)
    return {**page.page(rows), "total": total}


@router.get("/monitoring/silent-devices", summary="Devices flagged silent or not heard for ?minutes",
            openapi_extra=MUNICIPALITY)
def silent(ctx: Ctx = need(Permission.MONITOR_READ), page: PageParams = Depends(),
           minutes: float = Query(60.0, gt=0, le=525_600), municipality: str | None = MUNICIPALITY_QUERY
           ) -> dict[str, Any]:
    narrowed(ctx.actor, Permission.MONITOR_READ, municipality)
    with ctx.tx(write=False) as s:
        rows = q.silent_devices(s.tx, now=ctx.now(), minutes=minutes, scope=ctx.actor.municipalities,
                                municipality=municipality, limit=page.fetch)
    for r in rows:
        r["silent"] = bool(r["silent"]) if r.get("silent") is not None else None
    return page.page(rows)


@router.get("/monitoring/low-batteries", summary="Devices with battery below ?below percent",
            openapi_extra=MUNICIPALITY)
def low_battery(ctx: Ctx = need(Permission.MONITOR_READ), page: PageParams = Depends(),
                below: int = Query(20, ge=1, le=100), municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    narrowed(ctx.actor, Permission.MONITOR_READ, municipality)
    with ctx.tx(write=False) as s:
        return page.page(q.low_battery(s.tx, threshold_pct=below, scope=ctx.actor.municipalities,
                                       municipality=municipality, limit=page.fetch))


@router.get("/monitoring/failed-updates", summary="Failed updates (rollout units and gateway error reports)",
            openapi_extra=MUNICIPALITY)
def failed_updates(ctx: Ctx = need(Permission.MONITOR_READ), page: PageParams = Depends(),
                   days: float = Query(7.0, gt=0, le=3650), municipality: str | None = MUNICIPALITY_QUERY
                   ) -> dict[str, Any]:
    narrowed(ctx.actor, Permission.MONITOR_READ, municipality)
    with ctx.tx(write=False) as s:
        return page.page(q.failed_updates(s.tx, since=ctx.now() - days * 86400, scope=ctx.actor.municipalities,
                                          municipality=municipality, limit=page.fetch))


@router.get("/monitoring/ingest", summary="Ingest workers (alive, counters) and quarantined messages per reason",
            openapi_extra=FLEETWIDE)
def ingest_status(ctx: Ctx = need(Permission.MONITOR_READ),
                  hours: float = Query(24.0, gt=0, le=8760, description="'recent' means within this many hours")
                  ) -> dict[str, Any]:
    """The totals per reason cover every gateway, so only a reader of all municipalities gets them."""
    now = ctx.now()
    with ctx.tx(write=False) as s:
        workers = q.ingest_workers(s.tx)
        totals = q.quarantine_totals(s.tx, since=now - hours * 3600) if ctx.actor.municipalities is None else []
    for w in workers:
        for k in ("received", "written", "quarantined", "batches", "write_errors"):
            w[k] = int(w[k] or 0)
        w["state"] = ("stopped" if w["stopped_at"] is not None else
                      "running" if now - float(w["seen_at"]) < 120 else "silent")
    for t in totals:
        for k in ("total", "recent", "sources"):
            t[k] = int(t[k] or 0)
    return {"workers": workers, "quarantine": totals, "recent_hours": hours}


@router.get("/monitoring/quarantine", summary="Messages the ingest refused: reason, topic, size, first bytes",
            openapi_extra=MUNICIPALITY)
def quarantine(ctx: Ctx = need(Permission.MONITOR_READ), page: PageParams = Depends(),
               reason: str | None = Query(None, max_length=32, description="e.g. nul, oversized, not_owner"),
               gateway: str | None = Query(None, max_length=64, description="only this sending gateway"),
               days: float | None = Query(None, gt=0, le=3650, description="only rows with a message in the last days"),
               municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    actor = narrowed(ctx.actor, Permission.MONITOR_READ, municipality)
    with ctx.tx(write=False) as s:
        rows = q.quarantine_rows(s.tx, scope=actor.municipalities, reason=reason, source=gateway,
                                 since=ctx.now() - days * 86400 if days else None, limit=page.fetch)
    for r in rows:
        r["count"], r["size"] = int(r["count"]), int(r["size"])
    return page.page(rows)
