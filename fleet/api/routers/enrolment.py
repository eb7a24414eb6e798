"""Gateway enrolment: one-time codes for technicians, redeemed by `gateway enrol` on the gateway.

* ``POST /gateways/{id}/enrolment-codes`` (``install.write`` in the gateway's municipality): a
  code, shown once (stored as SHA-256), valid 30 minutes, for that gateway only.
* ``POST /enrolment/redeem`` (public: the code is the credential): the gateway's public X25519
  key and a certificate signing request in; its client certificate, broker password and trust
  anchors out. Refused codes (unknown, expired, used, another gateway's) answer 401 with the
  reason and are audited like the successes.
* ``GET /gateways/{id}/enrolment``: the identity (fingerprints, certificate; no secret);
  ``POST /gateways/{id}/enrolment/revoke``; ``GET /enrolment/broker-passwd`` (an admin of all
  municipalities): the Mosquitto password-file lines of the enrolled gateways.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import PlainTextResponse
from pydantic import Field, StringConstraints

from ...access import Permission, audit, system_actor
from ...clock import FixedClock
from ...enrolment import CodeRefused, EnrolmentService, EnrolmentSettings
from ...enrolment._sql import SqlEnrolmentRepo
from .._body import Body, require_row
from .._context import FLEETWIDE, MUNICIPALITY, PUBLIC, AppState, Ctx, Services, app_state, client_address, need
from .._problems import ServiceUnavailable, api_router

router = api_router("enrolment")
GatewayId = Annotated[str, Path(pattern=r"^[a-z0-9-]{3,64}$", description="e.g. gw-0001")]


def _settings(state: AppState) -> EnrolmentSettings:
    path = state.settings.enrolment_file
    if not path:
        raise ServiceUnavailable("this fleet service is not set up for gateway enrolment; start it with "
                                 "FLEET_ENROLMENT=<settings file> (broker, gateway CA: docs/fleet-service.md)")
    st = EnrolmentSettings.load(path)
    if not st.control_key:        # the fleet's own control key (fleet/control): its public half is the anchor
        import dataclasses
        import os

        from ...control import ENV_KEY_FILE

        if os.environ.get(ENV_KEY_FILE):
            st = dataclasses.replace(st, control_key=os.environ[ENV_KEY_FILE])
    return st


def _service(s: Services) -> EnrolmentService:
    return EnrolmentService(SqlEnrolmentRepo(s.tx), s.clock, _settings(s.state))


def _gateway(s: Services, gateway_id: str, permission: Permission) -> str | None:
    m = s.config_store.municipality_of(gateway_id)
    require_row(s.actor, permission, m, fleet_wide_only=True)
    return m


class CodeRequest(Body):
    ttl_s: float | None = Field(None, ge=60, le=86400, description="seconds the code is valid (default 1800)")


@router.post("/gateways/{gateway_id}/enrolment-codes", status_code=201, openapi_extra=MUNICIPALITY,
             summary="A one-time enrolment code for a gateway (shown once; give it to `gateway enrol`)")
def create_code(gateway_id: GatewayId, body: CodeRequest, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        m = _gateway(s, gateway_id, Permission.INSTALL_WRITE)
        svc = _service(s)
        code, rec = svc.create_code(gateway_id, municipality=m, by=ctx.actor.name, ttl_s=body.ttl_s)
        s.audit("enrolment.code", "gateway", gateway_id, municipality=m, detail={"expires_at": rec.expires_at})
        st = svc.settings
    url = st.public_url if st and st.public_url else "https://<fleet>"
    pin = f" --pin {st.tls_pin}" if st and st.tls_pin else ""
    return {"gateway_id": gateway_id, "code": code, "expires_at": rec.expires_at,
            "fleet_url": st.public_url if st else None, "tls_pin": st.tls_pin if st and st.tls_pin else None,
            "enrol_command": f"gateway enrol --fleet {url} --code {code}{pin}"}


class Redeem(Body):
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(examples=["K7QF-3MZP-XW2D-9RTA"])
    gateway_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{3,64}$")]
    x25519_public: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="base64 of the gateway's raw 32-byte X25519 public key (device keys are sealed to it)")
    csr_pem: Annotated[str, StringConstraints(min_length=1, max_length=8192)] = Field(
        description="PEM certificate signing request of the gateway's TLS key (made on the gateway)")


@router.post("/enrolment/redeem", openapi_extra=PUBLIC,
             summary="A gateway redeems its enrolment code: its certificate, broker login and trust anchors",
             responses={401: {"description": "the code is unknown, expired, already used or for another gateway"}})
def redeem(body: Redeem, request: Request) -> dict[str, Any]:
    state = app_state(request)
    settings = _settings(state)
    peer = client_address(request, state.settings)
    clock = FixedClock(state.clock.time())
    actor = system_actor(f"enrolment:{body.gateway_id}")
    try:
        with state.stores.using() as store, store.transaction() as tx:
            repo = SqlEnrolmentRepo(tx)
            bundle, ident, replaced = EnrolmentService(repo, clock, settings).redeem(
                body.code, body.gateway_id, body.x25519_public, body.csr_pem, peer=peer)
            from ...access._sql import SqlAuditLog

            audit(SqlAuditLog(tx), actor, "enrolment.redeem", "gateway", body.gateway_id, at=clock.time(),
                  detail={"peer": peer, "replaced": replaced, "cert_serial": ident.cert_serial,
                          "x25519": ident.view()["x25519_fingerprint"]})
    except CodeRefused as exc:
        from ...access._sql import SqlAuditLog

        with state.stores.using() as store, store.transaction() as tx:     # the refusal is recorded too
            audit(SqlAuditLog(tx), actor, "enrolment.refused", "gateway", body.gateway_id, at=clock.time(),
                  detail={"peer": peer, "reason": exc.reason})
        state.metrics.audit_writes.labels("gateway").inc()
        raise
    state.metrics.audit_writes.labels("gateway").inc()
    return bundle


@router.get("/gateways/{gateway_id}/enrolment", openapi_extra=MUNICIPALITY,
            summary="A gateway's enrolled identity: key fingerprints and certificate (no secret)")
def get_enrolment(gateway_id: GatewayId, ctx: Ctx = need(Permission.INSTALL_READ)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        _gateway(s, gateway_id, Permission.INSTALL_READ)
        return EnrolmentService(SqlEnrolmentRepo(s.tx), s.clock).identity(gateway_id).view()


@router.post("/gateways/{gateway_id}/enrolment/revoke", openapi_extra=MUNICIPALITY,
             summary="Revoke a gateway's identity: no device keys are sent to it, its broker login is dropped")
def revoke(gateway_id: GatewayId, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        m = _gateway(s, gateway_id, Permission.INSTALL_WRITE)
        ident = EnrolmentService(SqlEnrolmentRepo(s.tx), s.clock).revoke(gateway_id)
        s.audit("enrolment.revoke", "gateway", gateway_id, municipality=m, detail={"cert_serial": ident.cert_serial})
    return ident.view()


@router.get("/enrolment/broker-passwd", openapi_extra=FLEETWIDE, response_class=PlainTextResponse,
            summary="Mosquitto password-file lines of the enrolled gateways (hashes; install on the broker)")
def broker_passwd(ctx: Ctx = need(Permission.USER_ADMIN)) -> PlainTextResponse:
    require_row(ctx.actor, Permission.USER_ADMIN, None, fleet_wide_only=True)
    with ctx.tx(write=False) as s:
        text = EnrolmentService(SqlEnrolmentRepo(s.tx), s.clock).passwd_file()
    return PlainTextResponse(text)
