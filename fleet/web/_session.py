"""The web app's session and its protection against cross-site requests.

- **Session cookie** ``fleet_session``: the login token the API hands out (``flt_…``, 30 minutes,
  stored hashed on the server — so the cookie is a server-side session id, valid on every
  worker). ``HttpOnly``, ``SameSite=Strict``, ``Path=/web``, ``Secure`` when the request came
  over TLS (directly, or from a trusted proxy saying ``X-Forwarded-Proto: https``). An API token
  (``flk_…``) is never accepted from a cookie.
- **CSRF**, every form post, in this order: (1) the request must come from this site —
  ``Sec-Fetch-Site: cross-site``, or an ``Origin`` (else ``Referer``) naming another host, is
  refused before anything else, even without a session; (2) the form's ``csrf`` field must
  equal the synchronizer token: HMAC-SHA256 of the session token (so it is bound to the
  session, needs no server-side state, and cannot be computed by a page that cannot read the
  HttpOnly cookie). Before login, the token is a random value double-submitted in the
  ``fleet_csrf`` cookie. A refusal is a 403 page (or problem detail).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from ..access._service import SESSION_PREFIX
from ..api._settings import ApiSettings

SESSION_COOKIE = "fleet_session"
PRE_COOKIE = "fleet_csrf"         # login form only (no session yet): double-submit
LANG_COOKIE = "fleet_lang"
COOKIE_PATH = "/web"
_CSRF_INFO = b"fleet-web-csrf/1"


class CsrfRefused(Exception):
    """A form post that did not come from this site's own page (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def session_token(request: Request) -> str | None:
    tok = request.cookies.get(SESSION_COOKIE, "")
    if tok.startswith(SESSION_PREFIX) and 10 < len(tok) <= 200:
        return tok
    return None


def csrf_for_session(token: str) -> str:
    return hmac.new(token.encode(), _CSRF_INFO, hashlib.sha256).hexdigest()


def new_pre_token() -> str:
    return secrets.token_urlsafe(32)


def is_https(request: Request, settings: ApiSettings) -> bool:
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    return bool(peer and peer in settings.trusted_proxies
                and request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https")


def _own_hosts(request: Request, settings: ApiSettings) -> set[str]:
    hosts = {request.headers.get("host", "").strip().lower()}
    peer = request.client.host if request.client else None
    if peer and peer in settings.trusted_proxies and request.headers.get("x-forwarded-host"):
        hosts.add(request.headers["x-forwarded-host"].split(",")[0].strip().lower())
    return {h for h in hosts if h}


def _netloc(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc.lower().rsplit("@", 1)[-1]
    default = {"http": ":80", "https": ":443"}[parts.scheme]
    return host[: -len(default)] if host.endswith(default) else host


def cross_site_reason(request: Request, settings: ApiSettings) -> str | None:
    """Why this request is not from this site's own pages, or None."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return "the browser says the form was sent from another site (Sec-Fetch-Site: cross-site)"
    own = _own_hosts(request, settings)
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        got = _netloc(value)
        if got is None or got not in own:
            return f"the form was sent from {value[:100]!r}, not from this site ({header})"
        return None
    return None      # neither header (an old browser or a privacy proxy): the synchronizer token decides


def check_form(request: Request, settings: ApiSettings, form: dict[str, list[str]], expected: str | None) -> None:
    """Raise :class:`CsrfRefused` unless the post comes from this site with the right token."""
    reason = cross_site_reason(request, settings)
    if reason:
        raise CsrfRefused(reason)
    got = (form.get("csrf") or [""])[0]
    if not expected or not got or not hmac.compare_digest(got.encode(), expected.encode()):
        raise CsrfRefused("the form's security token is missing or out of date")


def set_cookie(response: Response, request: Request, settings: ApiSettings, name: str, value: str, *,
               max_age: int | None) -> None:
    kw: dict[str, Any] = {"httponly": True, "samesite": "strict", "path": COOKIE_PATH,
                          "secure": is_https(request, settings)}
    response.set_cookie(name, value, max_age=max_age, **kw)


def clear_cookie(response: Response, request: Request, settings: ApiSettings, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=is_https(request, settings))


def safe_next(target: str | None) -> str:
    """A post-login destination inside the web app only (no open redirect)."""
    if target and target.startswith("/web/") and not target.startswith("//") and "\\" not in target \
            and all(c.isprintable() and c not in " \r\n" for c in target) and len(target) < 300:
        return target
    return "/web/jobs"
