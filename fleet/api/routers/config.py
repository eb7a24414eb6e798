"""Gateway configuration: templates (municipality < group < gateway < device), effective config,
push, drift, diff. Secrets are never returned: a read shows "set"/"not set" and a fingerprint.
"""
from __future__ import annotations

from typing import Annotated, Any, Callable

from fastapi import Depends, Path, Query
from pydantic import Field

from ...access import Permission
from ...config import Scope, content_hash, diff, redact, validate
from ...errors import NotFound
from .._body import MUNICIPALITY_QUERY, Body, Municipality, narrowed, require_row, visible
from .._problems import api_router
from .._context import FLEETWIDE, MUNICIPALITY, Ctx, Services, need
from .._pagination import Page, PageParams
from .._problems import ServiceUnavailable

router = api_router("configuration")
GatewayId = Annotated[str, Path(pattern=r"^[a-z0-9-]{3,64}$", description="e.g. gw-0001")]
ScopeId = Annotated[str, Path(min_length=1, max_length=64)]
Key = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\[\]-]{1,128}$", description="dotted key, e.g. rules.bed.max_out_min")]


def _template_view(s: Services, row: dict[str, Any]) -> dict[str, Any]:
    return {"scope": row["scope"], "scope_id": row["scope_id"], "body": row["body"], "updated_at": row["updated_at"],
            "updated_by": row["updated_by"]}


def _shown(s: Services, config: dict[str, Any]) -> dict[str, Any]:
    return redact(config, keyring=s.state.secrets)


@router.get("/config/templates", response_model=Page, summary="Templates in your municipalities (secrets redacted)",
            openapi_extra=MUNICIPALITY)
def list_templates(ctx: Ctx = need(Permission.CONFIG_READ), page: PageParams = Depends(),
                   municipality: str | None = MUNICIPALITY_QUERY, scope: Scope | None = Query(None)) -> dict[str, Any]:
    actor = narrowed(ctx.actor, Permission.CONFIG_READ, municipality)
    with ctx.tx(write=False) as s:
        rows = []
        for r in s.config_store.templates():
            if scope is not None and r["scope"] != scope.value:
                continue
            m = s.config_store.template_municipality(Scope(r["scope"]), r["scope_id"])
            if visible(actor, Permission.CONFIG_READ, m, unowned=actor.municipalities is None):
                rows.append({**_template_view(s, r), "municipality": m})
    return page.page(rows)


def _template_scope(s: Services, scope: Scope, scope_id: str, permission: Permission) -> str | None:
    m = s.config_store.template_municipality(scope, scope_id)
    require_row(s.actor, permission, m, fleet_wide_only=True)
    return m


@router.get("/config/templates/{scope}/{scope_id}", summary="One template (secrets redacted)",
            openapi_extra=MUNICIPALITY)
def get_template(scope: Scope, scope_id: ScopeId, ctx: Ctx = need(Permission.CONFIG_READ)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        m = _template_scope(s, scope, scope_id, Permission.CONFIG_READ)
        for r in s.config_store.templates():
            if r["scope"] == scope.value and r["scope_id"] == scope_id:
                return {**_template_view(s, r), "municipality": m}
    raise NotFound(f"no {scope.value} template {scope_id!r}; list them with GET /api/v1/config/templates")


class Value(Body):
    value: Any = Field(description="JSON value; validated against the gateway schema, nothing stored on error",
                       examples=[30, True, "20:30"])


def _set(ctx: Ctx, scope: Scope, scope_id: str, key: str, value: Any) -> dict[str, Any]:
    with ctx.tx() as s:
        m = _template_scope(s, scope, scope_id, Permission.CONFIG_WRITE)
        body = s.config.set_key(scope, scope_id, key, value, by=ctx.actor.name)
        s.audit("config.set", "config_template", f"{scope.value}:{scope_id}", municipality=m,
                detail={"key": key, "unset": value is None})
        return {"scope": scope.value, "scope_id": scope_id,
                "body": redact(body, device_scope=scope is Scope.DEVICE, keyring=s.state.secrets)}


@router.put("/config/templates/{scope}/{scope_id}/keys/{key}", summary="Set one key of a template",
            openapi_extra=MUNICIPALITY)
def put_key(scope: Scope, scope_id: ScopeId, key: Key, body: Value,
            ctx: Ctx = need(Permission.CONFIG_WRITE)) -> dict[str, Any]:
    return _set(ctx, scope, scope_id, key, body.value)


@router.delete("/config/templates/{scope}/{scope_id}/keys/{key}", summary="Remove one key from a template",
               openapi_extra=MUNICIPALITY)
def delete_key(scope: Scope, scope_id: ScopeId, key: Key, ctx: Ctx = need(Permission.CONFIG_WRITE)) -> dict[str, Any]:
    return _set(ctx, scope, scope_id, key, None)


class Assignment(Body):
    group: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = Field(None, examples=["oslo-night"])
    municipality: Municipality | None = None


def _gateway(s: Services, gateway_id: str, permission: Permission) -> str | None:
    m = s.config_store.municipality_of(gateway_id)
    require_row(s.actor, permission, m, fleet_wide_only=True)
    return m


@router.put("/gateways/{gateway_id}/config-assignment", summary="Put a gateway in a config group and/or municipality",
            openapi_extra=MUNICIPALITY)
def put_assignment(gateway_id: GatewayId, body: Assignment, ctx: Ctx = need(Permission.CONFIG_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        current = s.config_store.municipality_of(gateway_id)
        if current is not None or body.municipality is None:
            require_row(ctx.actor, Permission.CONFIG_WRITE, current, fleet_wide_only=True)
        if body.municipality is not None:
            ctx.actor.require(Permission.CONFIG_WRITE, body.municipality)
        s.config_store.assign(gateway_id, group_id=body.group, municipality_id=body.municipality)
        s.audit("config.assign", "gateway", gateway_id, municipality=body.municipality, detail={"group": body.group})
    return {"gateway": gateway_id, "group": body.group, "municipality": body.municipality or current}


@router.get("/gateways/{gateway_id}/config", summary="Effective config (rendered now, or a stored version)",
            openapi_extra=MUNICIPALITY)
def get_config(gateway_id: GatewayId, ctx: Ctx = need(Permission.CONFIG_READ),
               version: int | None = Query(None, ge=1)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        _gateway(s, gateway_id, Permission.CONFIG_READ)
        if version is not None:
            v = s.config_store.get_version(gateway_id, version)
            if v is None:
                raise NotFound(f"gateway {gateway_id} has no config version {version}; see its config status")
            return {"gateway": gateway_id, "version": v.version, "hash": v.hash, "config": _shown(s, dict(v.config))}
        conf = s.config.render(gateway_id)
        latest = s.config_store.latest_version(gateway_id)
        return {"gateway": gateway_id, "rendered": True, "hash": content_hash(conf),
                "latest_version": latest.version if latest else None,
                "layers": [{"scope": lay.scope.value, "id": lay.scope_id} for lay in s.config_store.layers_for(gateway_id)],
                "config": _shown(s, conf)}


@router.get("/gateways/{gateway_id}/config/check", summary="Validate the effective config against the gateway schema",
            openapi_extra=MUNICIPALITY)
def check_config(gateway_id: GatewayId, ctx: Ctx = need(Permission.CONFIG_READ)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        _gateway(s, gateway_id, Permission.CONFIG_READ)
        problems = validate(s.config.render(gateway_id))
    return {"gateway": gateway_id, "valid": not problems,
            "problems": [{"key": p.key, "problem": p.reason, "fix": p.fix} for p in problems]}


@router.get("/gateways/{gateway_id}/config/diff", summary="Applied -> desired, or between stored versions",
            openapi_extra=MUNICIPALITY)
def config_diff(gateway_id: GatewayId, ctx: Ctx = need(Permission.CONFIG_READ),
                from_version: int | None = Query(None, alias="from", ge=0),
                to_version: int | None = Query(None, alias="to", ge=0)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        _gateway(s, gateway_id, Permission.CONFIG_READ)
        a, b, _ = s.config.diff(gateway_id, from_version, to_version)
        old_new = _diff_sides(s, gateway_id, from_version, to_version)
    changes = [e.as_dict() for e in diff(_shown(s, old_new[0]), _shown(s, old_new[1]))]
    return {"gateway": gateway_id, "from": a, "to": b, "changes": changes}


def _diff_sides(s: Services, gw: str, from_v: int | None, to_v: int | None) -> tuple[dict, dict]:
    """The two configurations ``ConfigService.diff`` compares, so they can be redacted before diffing."""
    store = s.config_store
    if from_v is not None or to_v is not None:
        latest = store.latest_version(gw)
        a_v = from_v if from_v is not None else (latest.version - 1 if latest else 0)
        b_v = to_v if to_v is not None else (latest.version if latest else 0)
        va, vb = store.get_version(gw, a_v), store.get_version(gw, b_v)
        return dict(va.config) if va else {}, dict(vb.config) if vb else {}
    rep = store.applied(gw)
    old = store.get_version(gw, rep.version) if rep else None
    return (dict(old.config) if old else {}), s.config.render(gw)


@router.post("/gateways/{gateway_id}/config/push", summary="Version and publish the desired config (retained MQTT)",
             openapi_extra=MUNICIPALITY)
def push_config(gateway_id: GatewayId, ctx: Ctx = need(Permission.CONFIG_WRITE)) -> dict[str, Any]:
    return push_gateway_config(ctx, gateway_id, lambda s: _gateway(s, gateway_id, Permission.CONFIG_WRITE))


def push_gateway_config(ctx: Ctx, gateway_id: str, check: Callable[[Services], str | None], *,
                        detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """Version, publish (retained) and audit ``gateway_id``'s effective config through the service's
    broker; ``check(s)`` authorises it and returns the gateway's municipality (run before the broker
    is contacted and again in the writing transaction)."""
    settings = ctx.state.settings
    with ctx.tx(write=False) as s:
        check(s)
    if not settings.mqtt and not settings.mqtt_url:
        raise ServiceUnavailable("this server has no MQTT broker configured; start it with FLEET_MQTT=host:port")
    from ...mqtt import MqttClient, parse_url

    broker = settings.mqtt or parse_url(str(settings.mqtt_url))
    client = MqttClient.from_settings(broker, client_id=f"fleet-api-push-{ctx.actor.name}"[:64]).connect()
    try:
        with ctx.tx() as s:
            m = check(s)
            v = s.config.push(gateway_id, client)
            s.audit("config.push", "gateway", gateway_id, municipality=m,
                    detail={"version": v.version, "hash": v.hash, **(detail or {})})
    finally:
        client.close()
    return {"gateway": gateway_id, "version": v.version, "hash": v.hash}


@router.get("/config/status", response_model=Page, summary="Desired vs applied version per gateway (drift)",
            openapi_extra=MUNICIPALITY)
def config_status(ctx: Ctx = need(Permission.CONFIG_READ), page: PageParams = Depends(),
                  municipality: str | None = MUNICIPALITY_QUERY,
                  drift_only: bool = Query(False, description="only gateways not in sync")) -> dict[str, Any]:
    actor = narrowed(ctx.actor, Permission.CONFIG_READ, municipality)
    with ctx.tx(write=False) as s:
        rows = []
        for gw in s.config_store.gateway_ids():
            m = s.config_store.municipality_of(gw)
            if not visible(actor, Permission.CONFIG_READ, m, unowned=actor.municipalities is None):
                continue
            st = {**s.config.status(gw).as_dict(), "municipality": m, "group": s.config_store.group_of(gw)}
            if drift_only and st["drift"] == "in_sync":
                continue
            rows.append(st)
    return page.page(rows)


@router.post("/config/secrets/reseal", summary="Re-encrypt every stored secret with the current key (rotation)",
             openapi_extra=FLEETWIDE)
def reseal(ctx: Ctx = need(Permission.CONFIG_WRITE)) -> dict[str, Any]:
    require_row(ctx.actor, Permission.USER_ADMIN, None, fleet_wide_only=True)
    with ctx.tx() as s:
        n = s.config_store.reseal()
        s.audit("config.reseal", "config_template", None, detail={"rows": n, "key": s.state.secrets.current
                                                                  if s.state.secrets else None})
    return {"rows_resealed": n}
