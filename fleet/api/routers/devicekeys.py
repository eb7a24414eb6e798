"""Device keys (fleet/devicekeys): generated at pairing, never typed, never read back.

* ``POST /devices/{id}/keys`` (``install.write``): a new key version, ``pending``; the key is in
  this answer and nowhere else, ever — for `fleet device provision` to write into the sensor.
* ``POST /devices/{id}/keys/{version}/activate``: the sensor holds it (read back by the tool);
  it replaces the active key and goes to the gateway with the next configuration push, sealed
  to the gateway's own key. ``…/discard``: a provisioning that did not finish.
* ``GET /devices/{id}/keys``: versions, states and key ids; never a key.
* ``POST /device-keys/migrate`` (an admin of all municipalities): keys typed into templates
  before keys had a life cycle move into the key store (and out of the templates).
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from ...access import Permission
from ...config import Scope
from ...devicekeys import DeviceKeyService
from ...devicekeys._sql import SqlDeviceKeyRepo
from .._body import require_row
from .._context import FLEETWIDE, MUNICIPALITY, Ctx, Services, need
from .._problems import api_router

router = api_router("device keys")
DeviceId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="12 hex digits, e.g. a4c1380a1b2c")]
Version = Annotated[int, Path(ge=1, le=1_000_000)]


def _svc(s: Services) -> DeviceKeyService:
    return DeviceKeyService(SqlDeviceKeyRepo(s.tx), s.clock, s.state.secrets)


def _device(s: Services, device_id: str, permission: Permission) -> str | None:
    m = s.config_store.template_municipality(Scope.DEVICE, device_id)
    require_row(s.actor, permission, m, fleet_wide_only=True)
    return m


def _gateway_of(s: Services, device_id: str) -> str | None:
    from ...devicekeys._sql import gateway_of

    return gateway_of(s.tx, device_id)


@router.post("/devices/{device_id}/keys", status_code=201, openapi_extra=MUNICIPALITY,
             summary="Generate a new key for a device (pending; the key is shown in this answer only)")
def generate(device_id: DeviceId, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        m = _device(s, device_id, Permission.INSTALL_WRITE)
        dk, key = _svc(s).generate(device_id, by=ctx.actor.name)
        s.audit("device_key.generate", "device", device_id, municipality=m,
                detail={"version": dk.version, "key_id": dk.key_id})
    return {**dk.view(), "key": key.hex()}


@router.post("/devices/{device_id}/keys/{version}/activate", openapi_extra=MUNICIPALITY,
             summary="The device holds this key now: it replaces the active key (pushed sealed to the gateway)")
def activate(device_id: DeviceId, version: Version, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        m = _device(s, device_id, Permission.INSTALL_WRITE)
        dk = _svc(s).activate(device_id, version, by=ctx.actor.name)
        s.audit("device_key.activate", "device", device_id, municipality=m,
                detail={"version": dk.version, "key_id": dk.key_id})
        gw = _gateway_of(s, device_id)
    return {**dk.view(), "gateway_id": gw}


@router.post("/devices/{device_id}/keys/{version}/discard", openapi_extra=MUNICIPALITY,
             summary="Drop a pending key that never reached the device")
def discard(device_id: DeviceId, version: Version, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        m = _device(s, device_id, Permission.INSTALL_WRITE)
        dk = _svc(s).discard(device_id, version, by=ctx.actor.name)
        s.audit("device_key.discard", "device", device_id, municipality=m, detail={"version": dk.version})
    return dk.view()


@router.get("/devices/{device_id}/keys", openapi_extra=MUNICIPALITY,
            summary="A device's key versions, states and key ids (never a key)")
def versions(device_id: DeviceId, ctx: Ctx = need(Permission.INSTALL_READ)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        _device(s, device_id, Permission.INSTALL_READ)
        return {"items": [k.view() for k in _svc(s).versions(device_id)], "next_cursor": None}


@router.post("/device-keys/migrate", openapi_extra=FLEETWIDE,
             summary="Move device keys typed into config templates into the key store (and out of the templates)")
def migrate(ctx: Ctx = need(Permission.CONFIG_WRITE)) -> dict[str, Any]:
    require_row(ctx.actor, Permission.USER_ADMIN, None, fleet_wide_only=True)
    moved = []
    with ctx.tx() as s:
        svc, store = _svc(s), s.config_store
        for row in store.templates():
            scope, sid = Scope(row["scope"]), row["scope_id"]
            body = dict(store.get_template(scope, sid) or {})
            found = {sid: body.pop("key")} if scope is Scope.DEVICE and body.get("key") else {}
            if scope is not Scope.DEVICE and isinstance(body.get("devices"), dict):
                devices = {d: dict(b) for d, b in body["devices"].items()}
                for d, b in devices.items():
                    if isinstance(b, dict) and b.get("key"):
                        found[d] = b.pop("key")
                body["devices"] = devices
            if not found:
                continue
            for dev, hexkey in found.items():
                dk = svc.import_key(dev, bytes.fromhex(hexkey), by=ctx.actor.name)
                moved.append({"device_id": dev, "version": dk.version, "key_id": dk.key_id, "from": f"{scope.value}:{sid}"})
            store.put_template(scope, sid, body, at=s.clock.time(), by=ctx.actor.name)
        s.audit("device_key.migrate", "device", None, detail={"moved": len(moved)})
    return {"moved": moved, "note": "these keys were typed by hand (and pushed in clear before): re-key the devices "
                                    "with `fleet device provision` when you can"}
