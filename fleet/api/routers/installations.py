"""Installations: create, read (personal data audited), checklist, routing, consent, commissioning
(plan, test alarms seen at the platform, completion), handover report, move, deinstall.

The radio/MQTT part of commissioning (find the gateway on the home network, pair, test mode)
runs on the technician's side (``fleet install commission``); it reports each test alarm here.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import Field, StringConstraints

from ...access import Permission
from ...installations import QUESTIONS, render_html, render_markdown
from ...installations._commission import readiness_problems
from ...monitoring._queries import firmware_versions
from .._body import MUNICIPALITY_QUERY, Body, Code
from .._problems import api_router
from .._context import FLEETWIDE, MUNICIPALITY, Ctx, need
from .._pagination import Page, PageParams

router = api_router("installations")
InstCode = Annotated[str, Path(min_length=1, max_length=32, description="e.g. I-000031")]
Version = Field(None, description="the version you loaded; a newer one gives 409 (reload and apply again)")


@router.get("/installations", response_model=Page, summary="Installations (no personal data)",
            openapi_extra=MUNICIPALITY)
def list_installations(ctx: Ctx = need(Permission.INSTALL_READ), page: PageParams = Depends(),
                       municipality: str | None = MUNICIPALITY_QUERY,
                       status: Literal["commissioning", "active", "deinstalled", "purged"] | None = Query(None)
                       ) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return page.page_of(lambda n: s.installations.list_installations(ctx.actor, municipality=municipality,
                                                                         status=status, limit=n))


class NewInstallation(Body):
    resident_ref: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="pseudonymous resident reference, never a name or national id", examples=["R-7F3K9Q"])
    location: Code = Field(examples=["HOME-OSL-0042"])
    kit: Code = Field(examples=["K-000017"])
    consent_kind: Literal["consent", "capacity_assessment"]
    consent_date: date = Field(examples=["2026-11-20"])
    consent_ref: Annotated[str, StringConstraints(max_length=64)] | None = None
    routing: dict[str, Any] | None = Field(None, examples=[{"response_centre": "arc-oslo", "staff_group": "zone-3",
                                                            "relatives": [], "escalation_s": [120, 300]}])


@router.post("/installations", status_code=201, summary="Start an installation of an assembled kit",
             openapi_extra=MUNICIPALITY)
def create_installation(body: NewInstallation, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        return s.installations.create(ctx.actor, resident_ref=body.resident_ref, location=body.location,
                                      kit=body.kit, consent_kind=body.consent_kind,
                                      consent_date=body.consent_date.isoformat(), consent_ref=body.consent_ref,
                                      routing=body.routing)


@router.get("/installations/{code}", summary="One installation with checklist, consent and routing (read audited)",
            openapi_extra=MUNICIPALITY)
def get_installation(code: InstCode, ctx: Ctx = need(Permission.INSTALL_READ)) -> dict[str, Any]:
    with ctx.tx() as s:        # a write transaction: the read of personal data is audited
        return s.installations.show(ctx.actor, code)


@router.get("/installations/{code}/handover", summary="Handover report (Markdown or print-friendly HTML; audited)",
            openapi_extra=MUNICIPALITY, response_class=PlainTextResponse,
            responses={200: {"content": {"text/markdown": {}, "text/html": {}}}})
def get_handover(code: InstCode, ctx: Ctx = need(Permission.INSTALL_READ),
                 format: Literal["md", "html"] = Query("md")) -> Any:
    with ctx.tx() as s:
        inst = s.installations.show(ctx.actor, code)
        fw = firmware_versions(s.tx, [d["hw_id"] for d in inst["devices"] if d["hw_id"]])
    for d in inst["devices"]:        # the version each device runs, as its gateway last reported it
        d["fw_version"] = fw.get(d["hw_id"]) if d["hw_id"] else None
    if format == "html":
        return HTMLResponse(render_html(inst))
    return PlainTextResponse(render_markdown(inst), media_type="text/markdown; charset=utf-8")


@router.get("/installation-questions", summary="The checklist questions every device answers",
            openapi_extra=FLEETWIDE)
def questions(ctx: Ctx = need(None)) -> list[dict[str, str]]:
    return [{"key": q.key, "kind": q.kind, "question": q.text} for q in QUESTIONS]


class Checklist(Body):
    answers: dict[str, Any] = Field(examples=[{"alarm_recipient": "response centre", "responder": "night team"}])
    version: int | None = Version


@router.put("/installations/{code}/checklist/{serial}", summary="Answer checklist questions for one device",
            openapi_extra=MUNICIPALITY)
def put_checklist(code: InstCode, serial: Annotated[str, Path(max_length=64)], body: Checklist,
                  ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        v = s.installations.set_checklist(ctx.actor, code, serial, body.answers, expected_version=body.version)
    return {"code": code, "version": v}


class Routing(Body):
    routing: dict[str, Any]
    version: int | None = Version


@router.put("/installations/{code}/routing", summary="Replace the alarm routing chain", openapi_extra=MUNICIPALITY)
def put_routing(code: InstCode, body: Routing, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        v = s.installations.set_routing(ctx.actor, code, body.routing, expected_version=body.version)
    return {"code": code, "version": v}


class Consent(Body):
    kind: Literal["consent", "capacity_assessment"]
    date: date
    ref: Annotated[str, StringConstraints(max_length=64)] | None = None
    version: int | None = Version


@router.put("/installations/{code}/consent", summary="Record consent or a capacity assessment",
            openapi_extra=MUNICIPALITY)
def put_consent(code: InstCode, body: Consent, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        v = s.installations.set_consent(ctx.actor, code, body.kind, body.date.isoformat(), body.ref,
                                        expected_version=body.version)
    return {"code": code, "version": v}


@router.get("/installations/{code}/commissioning",
            summary="What commissioning needs: gateway, devices, missing test alarms, what is not ready (checklist, consent)",
            openapi_extra=MUNICIPALITY)
def get_commissioning(code: InstCode, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        gateway_id, devices = s.installations.commissioning_plan(ctx.actor, code)
        missing = s.installations.missing_test_alarms(code)
        inst = s.installations.show(ctx.actor, code, audit_read=False)    # completeness only: nothing is shown
    return {"code": code, "gateway_id": gateway_id, "devices": devices,
            "missing_test_alarms": [d["serial"] for d in missing], "problems": readiness_problems(inst)}


@router.post("/installations/{code}/config/push",
             summary="Push the configuration of the installation's gateway (a step of commissioning)",
             openapi_extra=MUNICIPALITY)
def push_installation_config(code: InstCode, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    """What the technician may push: the configuration of the gateway of an installation they are
    commissioning (``config.write`` is not needed; the push is audited as ``config.push``)."""
    from .config import push_gateway_config

    with ctx.tx(write=False) as s:
        gateway_id, _ = s.installations.commissioning_plan(ctx.actor, code)

    def check(s: Any) -> str | None:
        s.installations.commissioning_plan(ctx.actor, code)      # scope, and still commissioning
        return s.installations.show(ctx.actor, code, personal=False, audit_read=False)["municipality"]

    return push_gateway_config(ctx, gateway_id, check, detail={"during": "commissioning", "installation": code})


class Command(Body):
    cmd: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="ping, pair or test_mode (nothing else is signed here)", examples=["test_mode"])
    args: dict[str, Any] = Field(default_factory=dict, examples=[{"devices": ["a4c138000042"], "enabled": True}],
                                 description='ping: {}; pair: {"device", "role"?, "serial"?} with a device of the '
                                 'installation; test_mode: {"devices": [...], "enabled", "duration_s"?: 1..3600}')


@router.post("/installations/{code}/commands", status_code=201,
             summary="Sign a commissioning command (ping, pair, test_mode) for the installation's gateway; the "
                     "technician's tool publishes it", openapi_extra=MUNICIPALITY)
def post_command(code: InstCode, body: Command, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    """The fleet's control key stays on the server: this returns the ``wt.signed/1`` message
    (``payload``, text) to publish as it is to the gateway's command topic (``Topics(gateway_id).cmd``, contracts/topics.py); the gateway
    answers ``cmd_id`` on ``…/cmd/result``. Only while the installation is commissioning (409
    otherwise), only ``ping``, ``pair`` and ``test_mode`` with the installation's own devices
    (422 naming what is allowed). The sequence is the store's, as for config pushes; audited as
    ``installation.command``."""
    from ...control import TxSeq

    with ctx.tx() as s:
        def sign(gateway_id: str, cmd_id: str, cmd: str, args: dict[str, Any]) -> bytes:   # after the checks
            return s.control_signer(TxSeq(s.tx)).cmd(gateway_id, cmd_id, cmd, args)

        return s.installations.sign_command(ctx.actor, code, body.cmd, body.args, sign=sign)


class TestAlarm(Body):
    device_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")] = Field(examples=["a4c138000042"])
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    seen_at: float | None = Field(None, description="epoch seconds at the platform (default: now)")
    latency_ms: float | None = Field(None, ge=0, le=3_600_000)
    placement: int | None = Field(
        None, ge=0, le=2, description="a fall sensor's test fall: the detector the device runs, from the alarm's "
        "data.placement (0 wrist, 1 chest/pendant, 2 waist/pocket); absent for other alarms and older firmware")


@router.post("/installations/{code}/test-alarms", status_code=201,
             summary="Record a test alarm seen at the platform during commissioning (a fall sensor's placement is "
                     "checked against the checklist)", openapi_extra=MUNICIPALITY)
def post_test_alarm(code: InstCode, body: TestAlarm, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    """``placement``: for a fall sensor, whether the detector its test fall reports is the one the
    checklist chose (``status`` confirmed, mismatch — with ``message``: what to check and do —,
    not_reported, not_answered); null for other devices. A mismatch is recorded and blocks the
    completion until a later test fall matches."""
    with ctx.tx() as s:
        s.installations.commissioning_plan(ctx.actor, code)      # scope check
        first = s.installations.record_test_alarm(code, device_id=body.device_id, event_id=body.event_id,
                                                  seen_at=body.seen_at if body.seen_at is not None else ctx.now(),
                                                  latency_ms=body.latency_ms, placement=body.placement)
        checks = s.installations.placement_checks(code)
        check = next((c for c in checks if c["hw_id"] == body.device_id), None)
        detail: dict[str, Any] = {"device": body.device_id, "first": first}
        if check is not None:
            detail.update(placement=check["reported"], placement_expected=check["expected"],
                          placement_status=check["status"])
        s.audit("installation.test_alarm", "installation", code, detail=detail)
        missing = [d["serial"] for d in s.installations.missing_test_alarms(code)]
    return {"code": code, "recorded": first, "missing_test_alarms": missing, "placement": check,
            "placement_mismatch": [c["serial"] for c in checks if c["status"] == "mismatch"]}


class VersionOnly(Body):
    version: int | None = Version


@router.post("/installations/{code}/complete",
             summary="Mark done (refused until every device's test alarm was seen, each fall sensor's test fall "
                     "reports the placement the checklist chose, and the checklist is complete)",
             openapi_extra=MUNICIPALITY)
def complete(code: InstCode, body: VersionOnly, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        v = s.installations.complete(ctx.actor, code, expected_version=body.version)
    return {"code": code, "status": "active", "version": v}


class MoveInstallation(Body):
    to: Code = Field(examples=["INST-OSL-1/104"])
    version: int | None = Version


@router.post("/installations/{code}/move", summary="The resident moves; the devices go along",
             openapi_extra=MUNICIPALITY)
def move(code: InstCode, body: MoveInstallation, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        v = s.installations.move_room(ctx.actor, code, body.to, expected_version=body.version)
    return {"code": code, "location": body.to, "version": v}


class Deinstall(Body):
    to: Code = Field(description="van or warehouse the items go back to", examples=["VAN-OSL-2"])
    retention_days: float = Field(30.0, ge=0, le=3650)
    version: int | None = Version


@router.post("/installations/{code}/deinstall",
             summary="End the service: items returned, personal data scheduled for deletion", openapi_extra=MUNICIPALITY)
def deinstall(code: InstCode, body: Deinstall, ctx: Ctx = need(Permission.INSTALL_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.installations.show(ctx.actor, code, personal=False)     # scope check before anything moves
        v = s.installations.deinstall(ctx.actor, code, to_location=body.to, expected_version=body.version,
                                      retention_s=body.retention_days * 86400)
    return {"code": code, "status": "deinstalled", "version": v}
