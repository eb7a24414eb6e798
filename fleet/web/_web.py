"""Plumbing of the web app: who is asking (session cookie -> Actor, through the API's own
authentication), the language, form parsing with the CSRF check, responses with security
headers, and errors as pages.

Authorisation is the API's: the actor comes from :func:`fleet.api._context.authenticate` and
every read or change goes through the same services, which check role × municipality on the
row. A fleet error becomes a page with the status the API would answer (via
:func:`fleet.api._problems.fleet_error_response`), so an installation of a foreign municipality
is a 404 page here exactly as it is a 404 problem there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..access import Actor
from ..api._context import AppState, Ctx, Services, app_state, authenticate
from ..api._problems import MEDIA_TYPE, fleet_error_response, problem_response
from ..errors import FleetError, NotAuthenticated
from . import _session as sess
from ._html import View
from ._i18n import Translator, pick
from ._views import error_page

T = TypeVar("T")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
DOWNLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
MAX_FORM_FIELDS = 200


class NeedLogin(Exception):
    """No (valid) session: the browser goes to the login page."""


def translator(request: Request) -> Translator:
    return Translator(pick(request.query_params.get("lang"), request.cookies.get(sess.LANG_COOKIE),
                           request.headers.get("accept-language")))


@dataclass
class Web:
    """One request of a logged-in user."""

    request: Request
    state: AppState
    t: Translator
    token: str
    actor: Actor

    @property
    def view(self) -> View:
        return View(self.t, self.actor.name, sess.csrf_for_session(self.token), self.request.url.path)

    def view_at(self, here: str) -> View:
        return View(self.t, self.actor.name, sess.csrf_for_session(self.token), here)

    async def run(self, fn: Callable[..., T], *args: Any, write: bool = True) -> T:
        """``fn(services, actor, *args)`` in one transaction, on a worker thread."""
        def work() -> T:
            with Ctx(self.state, self.actor, self.request.url.path).tx(write=write) as s:
                return fn(s, self.actor, *args)
        return await run_in_threadpool(work)

    def page(self, html: str, status: int = 200) -> Response:
        return respond(self.request, self.state, HTMLResponse(html, status_code=status))


async def current(request: Request) -> Web:
    """The logged-in user of this request, or :class:`NeedLogin`."""
    state = app_state(request)
    token = sess.session_token(request)
    if token is None:
        raise NeedLogin()
    try:
        actor = await run_in_threadpool(authenticate, state,
                                        HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))
    except NotAuthenticated:
        raise NeedLogin() from None
    return Web(request, state, translator(request), token, actor)


async def read_form(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (the body limit of the service applies)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    try:
        return parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True,
                        max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return {}


async def posted(request: Request) -> tuple[Web, dict[str, list[str]]]:
    """A form post of a logged-in user: same site, right token — or :class:`~._session.CsrfRefused`.

    The origin is checked before the session, so a cross-site post is refused even when the
    browser sent no cookie."""
    state = app_state(request)
    form = await read_form(request)
    reason = sess.cross_site_reason(request, state.settings)
    if reason:
        raise sess.CsrfRefused(reason)
    token = sess.session_token(request)
    if token is None:
        raise NeedLogin()
    sess.check_form(request, state.settings, form, sess.csrf_for_session(token))
    return await current(request), form


def respond(request: Request, state: AppState, response: Response, *, csp: str = CSP) -> Response:
    h = response.headers
    h.setdefault("Content-Security-Policy", csp)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cache-Control", "no-store")
    h.setdefault("Vary", "Accept-Language, Cookie")
    lang = request.query_params.get("lang")
    if lang in ("nb", "en"):
        sess.set_cookie(response, request, state.settings, sess.LANG_COOKIE, lang, max_age=365 * 86400)
    return response


def redirect(request: Request, url: str) -> Response:
    return respond(request, app_state(request), RedirectResponse(url, status_code=303))


def _wants_problem(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return ("application/problem+json" in accept or "application/json" in accept) and "text/html" not in accept


def _anonymous_view(request: Request) -> View:
    """An error page's view: its language switch leads to a page that can be fetched."""
    return View(translator(request), None, "", request.url.path if request.method == "GET" else "/web/jobs")


def _page_after_login(request: Request) -> str:
    """Where to come back to after logging in again: this page, or for an action its installation."""
    path = request.url.path
    if request.method == "GET":
        return path + (f"?{request.url.query}" if request.url.query else "")
    for tail in ("/complete", "/commissioning/start"):
        if path.endswith(tail):
            return path[: -len(tail)]
    return path


def to_login(request: Request) -> Response:
    if request.url.path.endswith("/events"):
        return respond(request, app_state(request), Response(status_code=401))
    resp = redirect(request, "/web/login?next=" + quote(sess.safe_next(_page_after_login(request)), safe="/"))
    sess.clear_cookie(resp, request, app_state(request).settings, sess.SESSION_COOKIE)
    return resp


def refused(request: Request, reason: str) -> Response:
    """403 for a cross-site or token-less form post: a problem detail, or a page."""
    state = app_state(request)
    if _wants_problem(request):
        return respond(request, state, problem_response(
            403, "cross-site request refused", reason, instance=request.url.path, code="csrf",
            errors=[{"field": "csrf", "problem": reason, "fix": "send the form from this site's own page (reload it)"}]))
    v = _anonymous_view(request)
    html = error_page(v, 403, v.t("csrf.refused"), back="/web/jobs", hint="")
    return respond(request, state, HTMLResponse(html, status_code=403))


def fleet_error_page(request: Request, exc: FleetError) -> Response:
    """The status and words the API would answer, as a page (or as the problem detail)."""
    problem: JSONResponse = fleet_error_response(request, exc)
    if _wants_problem(request):
        return respond(request, app_state(request), problem)
    body = json.loads(bytes(problem.body))
    v = _anonymous_view(request)
    code = request.path_params.get("code")
    back = f"/web/installations/{code}" if code and problem.status_code not in (403, 404) else "/web/jobs"
    html = error_page(v, problem.status_code, body["detail"], back=back)
    resp = HTMLResponse(html, status_code=problem.status_code)
    if problem.headers.get("retry-after"):
        resp.headers["Retry-After"] = problem.headers["retry-after"]
    return respond(request, app_state(request), resp)


def not_found(request: Request) -> Response:
    v = _anonymous_view(request)
    return respond(request, app_state(request),
                   HTMLResponse(error_page(v, 404, v.t("error.no_such_page")), status_code=404))


class WebRoute(APIRoute):
    """Errors of a web route become pages: no session -> the login page; a cross-site post ->
    403; a fleet error -> the API's status as a page."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NeedLogin:
                return to_login(request)
            except sess.CsrfRefused as exc:
                return refused(request, exc.reason)
            except NotAuthenticated:
                return to_login(request)
            except FleetError as exc:
                return fleet_error_page(request, exc)

        return route


__all__ = ["MEDIA_TYPE", "NeedLogin", "Services", "Web", "WebRoute", "current", "posted", "read_form", "redirect",
           "refused", "respond", "to_login", "translator"]
