"""The catalog: municipalities, locations, device models, kit templates."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from pydantic import Field, StringConstraints

from ...access import Permission
from ...inventory import LOCATION_KINDS, ROLES
from .._body import MUNICIPALITY_QUERY, Body, Code, Municipality, narrowed, visible
from .._problems import api_router
from .._context import FLEETWIDE, MUNICIPALITY, Ctx, need
from .._pagination import Page, PageParams

router = api_router("catalog")
LocationCode = Annotated[str, Path(min_length=1, max_length=64, description="e.g. WH-OSL or INST-OSL-1/101")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


@router.get("/municipalities", response_model=Page, summary="Municipalities (kommunenummer and name)",
            openapi_extra=FLEETWIDE)
def list_municipalities(ctx: Ctx = need(None), page: PageParams = Depends()) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return page.page(s.inventory.municipalities())


class NewMunicipality(Body):
    id: Municipality = Field(examples=["0301"])
    name: Name = Field(examples=["Oslo"])


@router.post("/municipalities", status_code=201, summary="Add a municipality", openapi_extra=FLEETWIDE)
def create_municipality(body: NewMunicipality, ctx: Ctx = need(Permission.CATALOG_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.inventory.add_municipality(ctx.actor, body.id, body.name)
    return {"id": body.id, "name": body.name}


@router.get("/locations", response_model=Page, summary="Warehouses, vans, homes, institutions, rooms, repair vendors",
            openapi_extra=MUNICIPALITY)
def list_locations(ctx: Ctx = need(Permission.STOCK_READ), page: PageParams = Depends(),
                   kind: Literal[LOCATION_KINDS] | None = Query(None),  # type: ignore[valid-type]
                   municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    actor = narrowed(ctx.actor, Permission.STOCK_READ, municipality)
    with ctx.tx(write=False) as s:
        return page.page(s.inventory.locations(actor, kind=kind, municipality=municipality))


def _location_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"code": row["code"], "kind": row["kind"], "name": row["name"], "municipality": row["municipality_id"],
            "active": bool(row.get("active", True))}


@router.get("/locations/{code:path}", summary="One location", openapi_extra=MUNICIPALITY)
def get_location(code: LocationCode, ctx: Ctx = need(Permission.STOCK_READ)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        row = s.inventory.get_location(code)
        ctx.actor.require(Permission.STOCK_READ, row["municipality_id"])
        return _location_view(row)


class NewLocation(Body):
    code: Code = Field(examples=["HOME-OSL-0042"])
    kind: Literal[LOCATION_KINDS]  # type: ignore[valid-type]
    name: Name | None = None
    municipality: Municipality | None = None
    parent: Code | None = Field(None, description="institution code (rooms)")


@router.post("/locations", status_code=201, summary="Add a location (homes are named by code only)",
             openapi_extra=MUNICIPALITY)
def create_location(body: NewLocation, ctx: Ctx = need(Permission.CATALOG_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        return _location_view(s.inventory.add_location(ctx.actor, body.code, body.kind, body.name,
                                                       municipality=body.municipality, parent=body.parent))


@router.get("/models", response_model=Page, summary="Device models", openapi_extra=FLEETWIDE)
def list_models(ctx: Ctx = need(None), page: PageParams = Depends()) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return page.page(s.inventory.models())


@router.get("/models/{code}", summary="One device model", openapi_extra=FLEETWIDE)
def get_model(code: Annotated[str, Path(max_length=64)], ctx: Ctx = need(None)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return s.inventory.get_model(code)


class NewModel(Body):
    code: Code = Field(examples=["WT-BTN-2"])
    name: Name = Field(examples=["Safety alarm button"])
    role: Literal[ROLES]  # type: ignore[valid-type]
    radio: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(examples=["ble"])
    firmware_family: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(examples=["wt-sensor"])


@router.post("/models", status_code=201, summary="Add a device model", openapi_extra=FLEETWIDE)
def create_model(body: NewModel, ctx: Ctx = need(Permission.CATALOG_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.inventory.add_model(ctx.actor, body.code, body.name, body.role, body.radio, body.firmware_family)
        return s.inventory.get_model(body.code)


@router.get("/kit-templates", response_model=Page, summary="Kit templates and their parts", openapi_extra=FLEETWIDE)
def list_kit_templates(ctx: Ctx = need(None), page: PageParams = Depends()) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return page.page(s.inventory.kit_templates())


class NewKitTemplate(Body):
    code: Code = Field(examples=["safety-alarm"])
    name: Name
    parts: dict[Literal[ROLES], Annotated[int, Field(ge=1, le=50)]] = Field(  # type: ignore[valid-type]
        examples=[{"gateway": 1, "button": 1, "fall": 1}])


@router.post("/kit-templates", status_code=201, summary="Define a kit template", openapi_extra=FLEETWIDE)
def create_kit_template(body: NewKitTemplate, ctx: Ctx = need(Permission.CATALOG_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.inventory.add_kit_template(ctx.actor, body.code, body.name, dict(body.parts))
    return {"code": body.code, "name": body.name, "parts": dict(body.parts)}


__all__ = ["router", "visible"]
