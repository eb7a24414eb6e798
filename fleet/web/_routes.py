"""The technician web app's routes under ``/web`` (not part of the API contract).

Every page reads and changes data through the fleet services as the logged-in actor (the
API's authorisation and audit); every form post passes the CSRF check first; codes and serials
are identifiers matched against the database, never paths (there are no files to reach).
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from ..access import Actor, LoginThrottled, Permission, login
from ..api._context import _Access, _counted, app_state, client_address
from ..api.routers.events import SSE_HEADERS, commissioning_state, load_state, sse_stream
from ..clock import FixedClock
from ..errors import CommissioningError, NotAuthenticated, NotFound, ValidationError
from ..store import sql_transactions
from . import _forms, _live, _session as sess, _views
from ._html import ASSETS, View, asset
from ._web import DOWNLOAD_CSP, Services, Web, WebRoute, current, not_found, posted, read_form, redirect, respond, translator

router = APIRouter(prefix="/web", include_in_schema=False, route_class=WebRoute)
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")
SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _code(code: str) -> str:
    if not CODE.match(code):
        raise NotFound(f"no installation {code[:40]!r}", installation=code[:40])
    return code


def _sensors(inst: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in inst["devices"] if d["role"] != "gateway"]


# -- log in and out ------------------------------------------------------------------------
@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return redirect(request, "/web/jobs")


def _login_page(request: Request, *, status: int = 200, user: str = "", error: str | None = None,
                next_url: str = "/web/jobs") -> Response:
    state = app_state(request)
    pre = request.cookies.get(sess.PRE_COOKIE) or ""
    if not (20 <= len(pre) <= 100):
        pre = sess.new_pre_token()
    t = translator(request)
    html = _views.login_page(View(t, None, pre, "/web/login"), user=user, error=error, next_url=next_url)
    resp = respond(request, state, HTMLResponse(html, status_code=status))
    sess.set_cookie(resp, request, state.settings, sess.PRE_COOKIE, pre, max_age=3600)
    return resp


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request, next_url=sess.safe_next(request.query_params.get("next")))


@router.post("/login")
async def login_post(request: Request) -> Response:
    state = app_state(request)
    form = await read_form(request)
    user, password = _forms.first(form, "user")[:64], (form.get("password") or [""])[0][:1024]
    next_url = sess.safe_next(_forms.first(form, "next"))
    t = translator(request)
    try:
        sess.check_form(request, state.settings, form, request.cookies.get(sess.PRE_COOKIE))
    except sess.CsrfRefused:
        if sess.cross_site_reason(request, state.settings):
            raise
        # this site's own login page, but out of date (its cookie expired): a fresh one, nobody logged in
        return _login_page(request, status=403, user=user, error=t("login.expired"), next_url=next_url)
    if not user or not password:
        return _login_page(request, status=422, user=user, error=t("login.missing"), next_url=next_url)
    sink: list[str] = []

    def work() -> tuple[str, float]:
        with state.stores.using() as store:
            return login(sql_transactions(store, lambda tx: _counted(_Access, tx, sink)),
                         FixedClock(state.clock.time()), user, password, ttl_s=state.settings.session_ttl_s,
                         source=client_address(request, state.settings), policy=state.settings.login_policy)
    try:
        token, _ = await anyio.to_thread.run_sync(work)
    except LoginThrottled as exc:
        state.metrics.login_failures.labels("throttled").inc()
        resp = _login_page(request, status=429, user=user, next_url=next_url,
                           error=t("login.throttled", s=int(exc.retry_after_s)))
        resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp
    except NotAuthenticated:
        state.metrics.login_failures.labels("password").inc()
        return _login_page(request, status=401, user=user, error=t("login.failed"), next_url=next_url)
    finally:
        for entity in sink:
            state.metrics.audit_writes.labels(entity).inc()
    resp = redirect(request, next_url)
    sess.set_cookie(resp, request, state.settings, sess.SESSION_COOKIE, token, max_age=int(state.settings.session_ttl_s))
    sess.clear_cookie(resp, request, state.settings, sess.PRE_COOKIE)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    web, _ = await posted(request)

    def end(s: Services, actor: Actor) -> None:
        s.access.revoke(web.token)
        s.audit("auth.logout", "user", actor.name)
    await web.run(end)
    resp = redirect(request, "/web/login")
    sess.clear_cookie(resp, request, web.state.settings, sess.SESSION_COOKIE)
    return resp


# -- jobs and the installation -------------------------------------------------------------
@router.get("/jobs")
async def jobs(request: Request) -> Response:
    web = await current(request)
    rows = await web.run(lambda s, a: s.installations.list_installations(a, status="commissioning", limit=200),
                         write=False)
    return web.page(_views.jobs_page(web.view, rows, today=web.state.clock.time()))


@router.get("/installations")
async def lookup(request: Request) -> Response:
    web = await current(request)
    code = (request.query_params.get("code") or "").strip().upper()
    if CODE.match(code):
        return redirect(request, f"/web/installations/{code}")
    rows = await web.run(lambda s, a: s.installations.list_installations(a, status="commissioning", limit=200),
                         write=False)
    html = _views.jobs_page(web.view_at("/web/jobs"), rows, today=web.state.clock.time(),
                            code_error=web.t("jobs.lookup.error"), code=code[:40])
    return web.page(html, 422)


def _show(s: Services, actor: Actor, code: str) -> dict[str, Any]:
    return s.installations.show(actor, code)          # personal fields: an audited read


@router.get("/installations/{code}")
async def installation(request: Request, code: str) -> Response:
    web = await current(request)
    inst = await web.run(_show, _code(code))
    to = request.query_params.get("to") or ""
    return web.page(_views.overview_page(web.view, inst, request.query_params.get("saved"),
                                         returned_to=to if CODE.match(to.replace("/", "-")) else None))


# -- checklist -----------------------------------------------------------------------------
def _device(inst: dict[str, Any], serial: str) -> dict[str, Any]:
    for d in _sensors(inst):
        if d["serial"] == serial:
            return d
    raise NotFound(f"{serial[:64]} is not a device of {inst['code']} that answers the checklist")


@router.get("/installations/{code}/checklist/{serial}")
async def checklist_form(request: Request, code: str, serial: str) -> Response:
    web = await current(request)
    inst = await web.run(_show, _code(code))
    if inst["status"] != "commissioning" or "checklist" not in inst:
        return redirect(request, f"/web/installations/{code}")
    device = _device(inst, serial)
    values = _forms.checklist_values((inst.get("checklist") or {}).get(serial, {}))
    others = [d for d in _sensors(inst) if d["serial"] != serial]
    return web.page(_forms.checklist_page(web.view, inst, device, values, others=others))


@router.post("/installations/{code}/checklist/{serial}")
async def checklist_post(request: Request, code: str, serial: str) -> Response:
    web, form = await posted(request)
    code = _code(code)
    answers, errors = _forms.parse_checklist(web.view, form)
    apply_all = _forms.first(form, "apply_all") == "yes"
    version = _forms.first(form, "version")

    def save(s: Services, actor: Actor) -> dict[str, Any] | None:
        inst = s.installations.show(actor, code, audit_read=False)
        targets = [_device(inst, serial)] + ([d for d in _sensors(inst) if d["serial"] != serial] if apply_all else [])
        if errors or not answers:
            return inst
        v: int | None = int(version) if version.isdigit() else None
        for d in targets:
            v = s.installations.set_checklist(actor, code, d["serial"], answers, expected_version=v)
        return None
    try:
        inst = await web.run(save)
    except ValidationError as exc:
        key = str(exc.details.get("field") or "")
        name = f"{key}.window" if key == "technical_settings" else key
        errors.append((name if name in form or name.endswith(".window") else None, exc.message))
        inst = await web.run(lambda s, a: s.installations.show(a, code, audit_read=False))
    if inst is None:
        return redirect(request, f"/web/installations/{code}?saved=checklist")
    if not errors:       # nothing filled in: nothing to save
        return redirect(request, f"/web/installations/{code}")
    values = {k: (vals or [""])[0] for k, vals in form.items() if k not in ("csrf", "version")}
    device = _device(inst, serial)
    others = [d for d in _sensors(inst) if d["serial"] != serial]
    html = _forms.checklist_page(web.view, inst, device, values, errors=errors, others=others, apply_all=apply_all)
    return web.page(html, 422)


# -- consent -------------------------------------------------------------------------------
@router.get("/installations/{code}/consent")
async def consent_form(request: Request, code: str) -> Response:
    web = await current(request)
    inst = await web.run(_show, _code(code))
    if inst["status"] != "commissioning" or "consent" not in inst:
        return redirect(request, f"/web/installations/{code}")
    today = web.t.iso_day(web.state.clock.time())
    return web.page(_forms.consent_page(web.view, inst, _forms.consent_values(inst), today=today))


@router.post("/installations/{code}/consent")
async def consent_post(request: Request, code: str) -> Response:
    web, form = await posted(request)
    code = _code(code)
    values = {k: _forms.first(form, k) for k in ("kind", "date", "ref")}
    version = _forms.first(form, "version")
    try:
        await web.run(lambda s, a: s.installations.set_consent(
            a, code, values["kind"], values["date"], values["ref"] or None,
            expected_version=int(version) if version.isdigit() else None))
    except ValidationError as exc:
        field = {"consent_kind": "kind", "consent_ref": "ref", "consent_date": "date"}.get(
            str(exc.details.get("field")))
        inst = await web.run(lambda s, a: s.installations.show(a, code, audit_read=False))
        html = _forms.consent_page(web.view, inst, values, today=web.t.iso_day(web.state.clock.time()),
                                   errors=[(field, exc.message)])
        return web.page(html, 422)
    return redirect(request, f"/web/installations/{code}?saved=consent")


# -- commissioning -------------------------------------------------------------------------
@router.post("/installations/{code}/commissioning/start")
async def commissioning_start(request: Request, code: str) -> Response:
    web, _ = await posted(request)
    code = _code(code)

    def start(s: Services, actor: Actor) -> dict[str, Any]:
        st = commissioning_state(s, actor, code)
        actor.require(Permission.INSTALL_WRITE, st["municipality"])
        if not [b for b in st["blockers"] if b["kind"] != "test_alarm"]:
            s.audit("installation.commissioning_start", "installation", code, municipality=st["municipality"],
                    detail={"devices": st["total"]})
        return st
    st = await web.run(start)
    before = [b for b in st["blockers"] if b["kind"] != "test_alarm"]
    if before:
        html = _live.commissioning_page(web.view_at(f"/web/installations/{code}/commissioning"), st,
                                        error=web.t("commission.not_ready"))
        return web.page(html, 409)
    return redirect(request, f"/web/installations/{code}/commissioning")


@router.get("/installations/{code}/commissioning")
async def commissioning(request: Request, code: str) -> Response:
    web = await current(request)
    st = await web.run(lambda s, a: commissioning_state(s, a, _code(code)), write=False)
    return web.page(_live.commissioning_page(web.view, st))


@router.get("/installations/{code}/events")
async def events(request: Request, code: str) -> Response:
    web = await current(request)
    code = _code(code)
    first = await anyio.to_thread.run_sync(load_state, web.state, web.token, code)
    view = web.view_at(f"/web/installations/{code}/commissioning")
    stream = sse_stream(web.state, web.token, code, first, render=lambda st: _live.event_payload(view, st))
    return respond(request, web.state, StreamingResponse(stream, media_type="text/event-stream",
                                                         headers=SSE_HEADERS))


@router.post("/installations/{code}/complete")
async def complete(request: Request, code: str) -> Response:
    web, _ = await posted(request)
    code = _code(code)
    try:
        await web.run(lambda s, a: s.installations.complete(a, code, expected_version=None))
    except CommissioningError:
        st = await web.run(lambda s, a: commissioning_state(s, a, code), write=False)
        html = _live.commissioning_page(web.view_at(f"/web/installations/{code}/commissioning"), st,
                                        error=web.t("complete.refused"))
        return web.page(html, 409)
    return redirect(request, f"/web/installations/{code}?saved=completed")


# -- handover report -----------------------------------------------------------------------
def _report_data(s: Services, actor: Actor, code: str) -> dict[str, Any]:
    from ..monitoring._queries import firmware_versions

    inst = s.installations.show(actor, code)
    fw = firmware_versions(s.tx, [d["hw_id"] for d in inst["devices"] if d["hw_id"]])
    for d in inst["devices"]:
        d["fw_version"] = fw.get(d["hw_id"]) if d["hw_id"] else None
    return inst


@router.get("/installations/{code}/report")
async def report(request: Request, code: str) -> Response:
    web = await current(request)
    inst = await web.run(_report_data, _code(code))
    download = request.query_params.get("download") == "1"
    html = _live.report_page(web.view, inst, now=web.state.clock.time(), standalone=download)
    if not download:
        return web.page(html)
    resp = HTMLResponse(html, headers={"Content-Disposition": f'attachment; filename="handover-{inst["code"]}.html"'})
    return respond(request, web.state, resp, csp=DOWNLOAD_CSP)


# -- deinstall and return ------------------------------------------------------------------
def _deinstall_data(s: Services, actor: Actor, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    inst = s.installations.show(actor, code, personal=False)
    mun = inst["municipality"]
    places = [*s.inventory.locations(actor, kind="van", municipality=mun),
              *s.inventory.locations(actor, kind="warehouse", municipality=mun)]
    return inst, places


@router.get("/installations/{code}/deinstall")
async def deinstall_form(request: Request, code: str) -> Response:
    web = await current(request)
    inst, places = await web.run(_deinstall_data, _code(code), write=False)
    if inst["status"] not in ("commissioning", "active"):
        return redirect(request, f"/web/installations/{code}")
    return web.page(_forms.deinstall_page(web.view, inst, places, {}))


@router.post("/installations/{code}/deinstall")
async def deinstall_post(request: Request, code: str) -> Response:
    web, form = await posted(request)
    code = _code(code)
    version = _forms.first(form, "version")

    def work(s: Services, actor: Actor) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
        inst, places = _deinstall_data(s, actor, code)
        values, errors = _forms.parse_deinstall(web.view, form, places)
        if errors:
            return inst, places, errors
        s.installations.deinstall(actor, code, to_location=values["to"], retention_s=values["retention_days"] * 86400,
                                  expected_version=int(version) if version.isdigit() else None)
        return inst, places, None
    inst, places, errors = await web.run(work)
    if errors:
        values = {k: _forms.first(form, k) for k in ("to", "retention_days", "confirm")}
        return web.page(_forms.deinstall_page(web.view, inst, places, values, errors=errors), 422)
    return redirect(request, f"/web/installations/{code}?saved=deinstalled&to={quote(_forms.first(form, 'to'))}")


# -- static files: a fixed table, nothing else ---------------------------------------------
@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    if name not in ASSETS:
        return not_found(request)
    return Response(asset(name), media_type=ASSETS[name],
                    headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})


@router.get("/{rest:path}")
async def unknown(request: Request, rest: str) -> Response:
    return not_found(request)


__all__ = ["router", "Web"]
