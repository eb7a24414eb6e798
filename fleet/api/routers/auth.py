"""Login, logout, who am I, password change, and long-lived API tokens for services."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from pydantic import Field, StringConstraints

from ...access import API_TOKEN_PREFIX, LoginThrottled, Permission, login
from ...clock import FixedClock
from ...errors import NotAuthenticated
from ...store import sql_transactions
from .._body import Body
from .._problems import api_router
from .._context import OWN, PUBLIC, Ctx, _Access, _counted, app_state, bearer, client_address, need
from .._pagination import Page, PageParams

router = api_router("authentication")


class LoginBody(Body):
    user: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(examples=["tech.osl"])
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(examples=["correct horse battery"])


class LoginResult(Body):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    token_type: str = "bearer"
    expires_at: float = Field(description="epoch seconds")
    expires_in: int = Field(description="seconds the token is valid (30 minutes by default)")


@router.post("/login", summary="Log in with a password; returns a short-lived bearer token", response_model=LoginResult,
             openapi_extra=PUBLIC,
             responses={401: {"description": "wrong user name or password (the same answer for an unknown user)"},
                        429: {"description": "too many failed logins for this user name or address; see Retry-After"}})
def post_login(body: LoginBody, request: Request) -> dict[str, Any]:
    state = app_state(request)
    sink: list[str] = []
    try:
        with state.stores.using() as store:
            token, expires = login(sql_transactions(store, lambda tx: _counted(_Access, tx, sink)),
                                   FixedClock(state.clock.time()), body.user, body.password,
                                   ttl_s=state.settings.session_ttl_s,
                                   source=client_address(request, state.settings), policy=state.settings.login_policy)
    except LoginThrottled:
        state.metrics.login_failures.labels("throttled").inc()
        raise
    except NotAuthenticated:
        state.metrics.login_failures.labels("password").inc()
        raise
    finally:
        for entity in sink:
            state.metrics.audit_writes.labels(entity).inc()
    return {"token": token, "token_type": "bearer", "expires_at": expires,
            "expires_in": int(round(expires - state.clock.time()))}


@router.post("/logout", status_code=204, summary="End this login session (the token stops working)",
             openapi_extra=OWN)
def post_logout(request: Request, ctx: Ctx = need(None), creds: Any = Depends(bearer)) -> Response:
    token = creds.credentials.strip()
    if not token.startswith(API_TOKEN_PREFIX):      # an API token is revoked with DELETE /tokens/{id}
        with ctx.tx() as s:
            s.access.revoke(token)
            s.audit("auth.logout", "user", ctx.actor.name)
    return Response(status_code=204)


class Me(Body):
    user: str
    role: str
    municipalities: list[str] | None = Field(description="null = every municipality")
    permissions: list[str]


@router.get("/me", response_model=Me, summary="Who the token belongs to: role, municipalities, permissions",
            openapi_extra=OWN)
def get_me(ctx: Ctx = need(None)) -> dict[str, Any]:
    a = ctx.actor
    return {"user": a.name, "role": a.role.value,
            "municipalities": None if a.municipalities is None else sorted(a.municipalities),
            "permissions": sorted(p.value for p in a.granted)}


class PasswordChange(Body):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    new_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        description="at least 8 characters, not the user name")


@router.put("/me/password", status_code=204, summary="Change your own password", openapi_extra=OWN)
def put_my_password(body: PasswordChange, ctx: Ctx = need(None)) -> Response:
    with ctx.tx() as s:
        s.access.change_password(ctx.actor, body.current_password, body.new_password)
    return Response(status_code=204)


class TokenBody(Body):
    user: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        examples=["svc.response-centre"], description="the (service) user the token acts as")
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(examples=["alarm-centre sync"])
    permissions: list[Permission] | None = Field(None, description="a subset of the user's role; null = the whole role",
                                                 examples=[["monitor.read"]])
    municipalities: list[Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]] | None = Field(
        None, description="a subset of the user's scope; null = the user's whole scope", examples=[["0301"]])
    expires_at: float | None = Field(None, description="epoch seconds; null = until revoked")


@router.post("/tokens", status_code=201, summary="Create a long-lived, scoped API token (shown once)",
             openapi_extra=OWN)
def post_token(body: TokenBody, ctx: Ctx = need(Permission.USER_ADMIN)) -> dict[str, Any]:
    with ctx.tx() as s:
        token, view = s.access.create_api_token(
            ctx.actor, body.user, body.name, permissions=None if body.permissions is None else
            [p.value for p in body.permissions], municipalities=body.municipalities, expires_at=body.expires_at)
    return {**view, "token": token}


@router.get("/tokens", response_model=Page, summary="API tokens (admins: all; others: their own); never the secret",
            openapi_extra=OWN)
def get_tokens(ctx: Ctx = need(None), page: PageParams = Depends()) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return page.page(s.access.api_tokens(ctx.actor))


@router.delete("/tokens/{token_id}", summary="Revoke an API token", openapi_extra=OWN)
def delete_token(token_id: int, ctx: Ctx = need(None)) -> dict[str, Any]:
    with ctx.tx() as s:
        return s.access.revoke_api_token(ctx.actor, token_id)
