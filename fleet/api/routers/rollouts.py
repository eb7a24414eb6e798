"""Staged rollouts: plan, status, units, pause/resume/abort/rollback. The runner that sends the
commands over MQTT is a worker process (``fleet rollout run``); a control request reaches it
through the database within a second, or applies at once when no runner is attached."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from pydantic import Field, StringConstraints

from ...access import Permission
from ...upgrades import RolloutError, RolloutEvent, RolloutPlan, Target, UnitState
from .._body import MUNICIPALITY_QUERY, Body, Municipality, narrowed, require_row, visible
from .._problems import api_router
from .._context import MUNICIPALITY, Ctx, Services, need
from .._pagination import Page, PageParams

router = api_router("releases and rollouts")
RolloutId = Annotated[str, Path(min_length=1, max_length=100)]
RUNNER_ALIVE_S = 10.0


class NewRollout(Body):
    release_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(examples=["gateway@0.2.0"])
    rollout_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@-]{1,100}$")] | None = None
    gateways: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{3,64}$")]] = Field(default_factory=list)
    municipality: Municipality | None = None
    group: Annotated[str, StringConstraints(max_length=64)] | None = None
    waves: list[Annotated[float, Field(gt=0, le=1)]] = Field([0.01, 0.1, 0.5, 1.0], min_length=1, max_length=20)
    error_threshold: float = Field(0.02, ge=0, le=1)
    success_threshold: float = Field(0.95, ge=0, le=1)
    max_in_flight: int = Field(200, ge=1, le=100_000)
    timeout_s: float = Field(1800.0, gt=0, le=7 * 86400)
    previous: Annotated[str, StringConstraints(max_length=64)] | None = None
    seed: int = 0


def _unit_municipalities(s: Services, rollout_id: str) -> set[str | None]:
    return {s.config_store.municipality_of(g) for g in {u["gateway_id"] for u in s.rollouts.unit_rows(rollout_id)}}


@router.post("/rollouts", status_code=201, summary="Plan a rollout (units split into canary + waves)",
             openapi_extra=MUNICIPALITY)
def create_rollout(body: NewRollout, ctx: Ctx = need(Permission.UPGRADE_WRITE)) -> dict[str, Any]:
    require_row(ctx.actor, Permission.UPGRADE_WRITE, body.municipality, fleet_wide_only=True)
    plan = RolloutPlan(waves=tuple(body.waves), error_threshold=body.error_threshold,
                       success_threshold=body.success_threshold, max_in_flight=body.max_in_flight,
                       unit_timeout_s=body.timeout_s)
    now = ctx.now()
    with ctx.tx() as s:
        rel = s.releases.get(body.release_id)
        if body.previous:
            s.releases.get(body.previous)
        target = Target(rel["target"])
        units = s.rollouts.candidate_units(target, gateways=body.gateways, municipality=body.municipality,
                                           group=body.group)
        for m in {s.config_store.municipality_of(u.gateway_id) for u in units}:
            require_row(ctx.actor, Permission.UPGRADE_WRITE, m, fleet_wide_only=True)
        rid = body.rollout_id or f"ro-{body.release_id.replace('@', '-')}-{int(now)}"
        eng = s.rollouts.create(rid, body.release_id, body.previous, plan, units, s.clock,
                                current=s.rollouts.current_units(target, rel["version"]), at=now, by=ctx.actor.name,
                                seed=body.seed)
        s.audit("rollout.create", "rollout", rid, municipality=body.municipality,
                detail={"release": body.release_id, "units": len(units)})
    return {"rollout_id": rid, **eng.progress()}


@router.get("/rollouts", response_model=Page, summary="Rollouts", openapi_extra=MUNICIPALITY)
def list_rollouts(ctx: Ctx = need(Permission.UPGRADE_READ), page: PageParams = Depends(),
                  municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    actor = narrowed(ctx.actor, Permission.UPGRADE_READ, municipality)
    with ctx.tx(write=False) as s:
        rows = s.rollouts.rollouts()
        if actor.municipalities is not None:
            rows = [r for r in rows if any(visible(actor, Permission.UPGRADE_READ, m, unowned=False)
                                           for m in _unit_municipalities(s, r["rollout_id"]))]
    return page.page(rows)


def _readable(s: Services, rollout_id: str) -> None:
    s.rollouts.row(rollout_id)
    if s.actor.municipalities is None:
        return
    if not any(visible(s.actor, Permission.UPGRADE_READ, m, unowned=False) for m in _unit_municipalities(s, rollout_id)):
        require_row(s.actor, Permission.UPGRADE_READ, None, fleet_wide_only=True)


@router.get("/rollouts/{rollout_id}", summary="Progress of a rollout per wave", openapi_extra=MUNICIPALITY)
def get_rollout(rollout_id: RolloutId, ctx: Ctx = need(Permission.UPGRADE_READ)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        _readable(s, rollout_id)
        row = s.rollouts.row(rollout_id)
        eng = s.rollouts.load(rollout_id, s.clock)
    p = eng.progress()
    p["release"] = row["release_id"]
    p["waves_detail"] = [{"wave": i + 1, "size": len(eng.wave_units(i)),
                          **{st.value: n for st, n in eng.counts(i).items()}} for i in range(eng.wave_count)]
    return p


@router.get("/rollouts/{rollout_id}/units", response_model=Page, summary="Units of a rollout (your municipalities)",
            openapi_extra=MUNICIPALITY)
def list_units(rollout_id: RolloutId, ctx: Ctx = need(Permission.UPGRADE_READ), page: PageParams = Depends(),
               state: UnitState | None = Query(None)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        _readable(s, rollout_id)
        rows = s.rollouts.unit_rows(rollout_id, state=state.value if state else None)
        if ctx.actor.municipalities is not None:
            munis: dict[str, str | None] = {}
            rows = [r for r in rows if visible(ctx.actor, Permission.UPGRADE_READ, munis.setdefault(
                r["gateway_id"], s.config_store.municipality_of(r["gateway_id"])), unowned=False)]
    return page.page(rows)


@router.post("/rollouts/{rollout_id}/{action}", summary="Pause, resume, abort or roll back a rollout",
             openapi_extra=MUNICIPALITY)
def control(rollout_id: RolloutId, action: Literal["pause", "resume", "abort", "rollback"],
            ctx: Ctx = need(Permission.UPGRADE_WRITE),
            retry_failed: bool = Query(False, description="with resume: failed units go back to the queue")
            ) -> dict[str, Any]:
    ev = RolloutEvent(action)
    now = ctx.now()
    if retry_failed and ev is not RolloutEvent.RESUME:
        raise RolloutError("retry_failed goes with resume only", rollout=rollout_id, field="retry_failed")
    with ctx.tx() as s:
        row = s.rollouts.row(rollout_id)
        for m in _unit_municipalities(s, rollout_id):    # every municipality the rollout touches
            require_row(ctx.actor, Permission.UPGRADE_WRITE, m, fleet_wide_only=True)
        if ev is RolloutEvent.ROLLBACK and not row["previous_id"]:
            raise RolloutError("this rollout has no previous release to roll back to; create it with previous",
                               rollout=rollout_id)
        runner = row["runner_seen_at"] is not None and now - float(row["runner_seen_at"]) < RUNNER_ALIVE_S
        if runner and retry_failed:
            raise RolloutError("a `fleet rollout run` is driving this rollout; pause it first, then resume with "
                               "retry_failed", rollout=rollout_id)
        retried = 0
        if runner:
            s.rollouts.request(rollout_id, ev)
            state = row["state"]
        else:
            eng = s.rollouts.load(rollout_id, s.clock)
            retried = eng.retry_failed() if retry_failed else 0
            eng.control(ev)
            s.rollouts.save(eng, at=now)
            state = eng.state.value
        s.audit(f"rollout.{ev.value}", "rollout", rollout_id,
                **({"detail": {"retry_failed": True}} if retry_failed else {}))
    return {"rollout_id": rollout_id, "requested": ev.value, "runner_attached": runner, "state": state,
            "retried": retried}
