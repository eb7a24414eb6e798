"""Users: create, read, scope, admin password reset, deactivation (user.admin; auditors read)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Response
from pydantic import Field, StringConstraints

from ...access import Permission, Role, check_password_rule
from .._body import MUNICIPALITY_QUERY, Body, Municipality, narrowed
from .._problems import api_router
from .._context import MUNICIPALITY, Ctx, need
from .._pagination import Page, PageParams

router = api_router("users")
UserName = Annotated[str, Path(min_length=1, max_length=64, description="login name, e.g. tech.osl")]


class NewUser(Body):
    name: Annotated[str, StringConstraints(min_length=2, max_length=32)] = Field(examples=["kari.t"])
    role: Role
    municipalities: list[Municipality] | None = Field(description="null = all municipalities", examples=[["0301"]])
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        description="initial password: at least 8 characters, not the user name")


@router.get("/users", response_model=Page, summary="Users you administer (admins) or may audit (auditors)",
            openapi_extra={**MUNICIPALITY, "x-permission": "user.admin|audit.read"})
def list_users(ctx: Ctx = need(None), page: PageParams = Depends(),
               municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    perm = Permission.USER_ADMIN if ctx.actor.can(Permission.USER_ADMIN) else Permission.AUDIT_READ
    actor = narrowed(ctx.actor, perm, municipality)
    with ctx.tx(write=False) as s:
        rows = s.access.list_users(actor)
    if municipality:
        rows = [u for u in rows if municipality in u["municipalities"].split(",")]
    return page.page(rows)


@router.post("/users", status_code=201, summary="Create a user with a role and municipality scope",
             openapi_extra=MUNICIPALITY)
def create_user(body: NewUser, ctx: Ctx = need(Permission.USER_ADMIN)) -> dict[str, Any]:
    check_password_rule(body.name, body.password)
    with ctx.tx() as s:
        s.access.create_user(ctx.actor, body.name, body.role, municipalities=body.municipalities,
                             password=body.password)
        return s.access.user_view(ctx.actor, body.name)


@router.get("/users/{name}", summary="One user", openapi_extra={**MUNICIPALITY, "x-permission": "user.admin|audit.read"})
def get_user(name: UserName, ctx: Ctx = need(None)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return s.access.user_view(ctx.actor, name)


class ScopeChange(Body):
    add: list[Municipality] = Field(default_factory=list)
    remove: list[Municipality] = Field(default_factory=list)


@router.put("/users/{name}/scope", summary="Add or remove municipalities of a user", openapi_extra=MUNICIPALITY)
def put_scope(name: UserName, body: ScopeChange, ctx: Ctx = need(Permission.USER_ADMIN)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.access.set_scope(ctx.actor, name, add=body.add, remove=body.remove)
        return s.access.user_view(ctx.actor, name)


class PasswordReset(Body):
    new_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


@router.put("/users/{name}/password", status_code=204, summary="Admin reset of a forgotten password (ends sessions)",
            openapi_extra=MUNICIPALITY)
def put_password(name: UserName, body: PasswordReset, ctx: Ctx = need(Permission.USER_ADMIN)) -> Response:
    with ctx.tx() as s:
        s.access.reset_password(ctx.actor, name, body.new_password)
    return Response(status_code=204)


class Activation(Body):
    active: bool = Field(description="false deactivates: sessions end and API tokens are revoked")


@router.put("/users/{name}/active", summary="Deactivate or reactivate a user", openapi_extra=MUNICIPALITY)
def put_active(name: UserName, body: Activation, ctx: Ctx = need(Permission.USER_ADMIN)) -> dict[str, Any]:
    with ctx.tx() as s:
        return s.access.set_active(ctx.actor, name, body.active)
