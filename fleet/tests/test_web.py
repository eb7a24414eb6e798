"""The technician web app in process (httpx against the ASGI app, SQLite): catalogues, contrast,
the basic flow without JavaScript, the session cookie, CSRF, path tricks on report downloads,
and the API's authorisation (a technician of another municipality sees 404).

The same flow in a real headless Chromium, with the live updates, is in test_web_browser.py.
"""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from fleet.tests.test_api_support import A, PASSWORD, app_for, auth, build_world, client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
WEB = Path(__file__).resolve().parents[1] / "web"


# -- catalogues ----------------------------------------------------------------------------
def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_both_catalogues_have_the_same_keys_and_placeholders():
    from fleet.web._i18n import catalogue

    nb, en = catalogue("nb"), catalogue("en")
    assert set(nb) == set(en), f"only nb: {set(nb) - set(en)}; only en: {set(en) - set(nb)}"
    for key in nb:
        assert _placeholders(nb[key]) == _placeholders(en[key]), key
        assert nb[key].strip() and en[key].strip(), key


def test_every_key_the_code_uses_is_in_the_catalogues():
    from fleet.installations import CHECKLIST_KEYS
    from fleet.web._i18n import catalogue
    from fleet.web._views import SAVED

    used = set()
    for p in WEB.glob("*.py"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.]+)["']""", p.read_text()))
    used |= {f"q.{k}" for k in CHECKLIST_KEYS} | {f"q.{k}.hint" for k in CHECKLIST_KEYS}
    used |= {f"saved.{k}" for k in SAVED} | {f"consent.kind.{k}" for k in ("consent", "capacity_assessment")}
    used |= {f"role.{role}" for *_, role, _, _ in __import__("fleet.demo", fromlist=["MODELS"]).MODELS}
    used |= {f"status.{s}" for s in ("commissioning", "active", "deinstalled", "purged")}
    assert len(used) > 100
    for lang in ("nb", "en"):
        assert used - set(catalogue(lang)) == set(), lang


def test_the_checklist_asks_the_national_guidance_questions():
    """Every question of fleet/installations/_checklist.py has a label and a hint in both languages,
    and the catalogue asks no question the checklist does not know."""
    from fleet.installations import CHECKLIST_KEYS
    from fleet.web._i18n import catalogue

    for lang in ("nb", "en"):
        asked = {k.split(".")[1] for k in catalogue(lang) if k.startswith("q.")}
        assert asked == set(CHECKLIST_KEYS), lang
    assert catalogue("nb")["q.alarm_recipient"] == "Hvem mottar alarmen?"


def test_accept_language_and_the_switch():
    from fleet.web._i18n import negotiate, pick

    assert negotiate("nb-NO,nb;q=0.9,en;q=0.8") == "nb"
    assert negotiate("en-GB,en;q=0.9,nb;q=0.5") == "en"
    assert negotiate("de-DE, no;q=0.7, en;q=0.3") == "nb"
    assert negotiate("nn") == "nb"
    assert negotiate("fr, de") is None and negotiate(None) is None and negotiate(";;;,q=x") is None
    assert negotiate("en;q=0, nb;q=0.1") == "nb"
    assert pick("en", "nb", "nb") == "en" and pick(None, "en", "nb") == "en" and pick("xx", None, "fr") == "nb"


# -- contrast ------------------------------------------------------------------------------
def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    rgb = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_colour_pairs_of_the_stylesheet_have_contrast_of_4_5():
    css = (WEB / "static" / "app.css").read_text()
    var = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", css))
    pairs = [("text", "bg"), ("muted", "bg"), ("text", "panel"), ("primary", "bg"), ("ok", "bg"), ("ok", "ok-bg"),
             ("wait", "bg"), ("wait", "wait-bg"), ("status", "status-bg"), ("danger", "bg"), ("text", "status-bg"),
             ("text", "ok-bg")]
    for fg, bg in pairs:
        assert contrast(var[fg], var[bg]) >= 4.5, (fg, bg, contrast(var[fg], var[bg]))
    for bg in ("brand", "primary", "danger"):           # white text on the header and buttons
        assert contrast("#ffffff", var[bg]) >= 4.5, bg
    assert contrast("#4a4a4a", "#e0e0e0") >= 4.5       # a disabled button stays readable
    assert "min-height: var(--target)" in css and "--target: 48px" in css


# -- a world and a browser-like client -------------------------------------------------------
@pytest.fixture(scope="module")
def web_world(tmp_path_factory):
    from fleet.tests.conftest import FakeClock

    tmp = tmp_path_factory.mktemp("web")
    return build_world(f"sqlite:///{tmp / 'fleet.db'}", tmp, FakeClock())


@pytest.fixture(scope="module")
def app(web_world):
    return app_for(web_world)


class Phone:
    """A browser without JavaScript: cookies, forms with their csrf field, the site's Origin."""

    def __init__(self, app, lang: str = "nb") -> None:
        self.c = client(app)
        self.c.headers["accept-language"] = lang
        self.origin = "http://testserver"

    def get(self, url: str, **kw: Any):
        return self.c.get(url, follow_redirects=False, **kw)

    def csrf(self, html: str) -> str:
        return re.search(r'name="csrf" value="([^"]*)"', html).group(1)

    def post(self, url: str, data: dict[str, Any], *, page: str | None = None, origin: str | None = "same",
             **kw: Any):
        data = dict(data)
        if page is not None:
            data.setdefault("csrf", self.csrf(page))
        headers = dict(kw.pop("headers", {}))
        if origin == "same":
            headers["origin"] = self.origin
        elif origin:
            headers["origin"] = origin
        return self.c.post(url, data=data, headers=headers, follow_redirects=False, **kw)

    def login(self, user: str, password: str = PASSWORD) -> "Phone":
        page = self.get("/web/login").text
        r = self.post("/web/login", {"user": user, "password": password, "next": "/web/jobs"}, page=page)
        assert r.status_code == 303 and r.headers["location"] == "/web/jobs", r.text[:500]
        return self


def _admin(api) -> dict[str, str]:
    return auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])


def new_job(api, location: str) -> dict[str, Any]:
    """A planned installation in municipality A (as the office would create it), from a spare kit."""
    admin = _admin(api)
    kits = [k for k in api.get("/api/v1/kits", headers=admin, params={"municipality": A, "state": "assembled"}).json()[
        "items"] if {i["state"] for i in api.get(f"/api/v1/kits/{k['code']}", headers=admin).json()["items"]} == {"in_kit"}]
    if not kits:
        serials = []
        for model in ("WT-GW-1", "WT-BTN-2", "WT-FALL-1"):
            items = api.get("/api/v1/items", headers=admin, params={"location": "WH-OSL", "model": model,
                                                                     "state": "in_stock"}).json()["items"]
            serials.append(items[0]["serial"])
        r = api.post("/api/v1/kits", headers=admin, json={"template": "safety-alarm", "serials": serials})
        assert r.status_code == 201, r.text
        kits = [r.json()]
    r = api.post("/api/v1/installations", headers=admin, json={
        "resident_ref": "R-W" + uuid.uuid4().hex[:6].upper(), "location": location, "kit": kits[0]["code"],
        "consent_kind": "consent", "consent_date": "2026-11-20",
        "routing": {"response_centre": "arc-osl", "staff_group": "home-care-osl-zone-1",
                    "relatives": [{"relation": "son"}], "escalation_s": [120, 300]}})
    assert r.status_code == 201, r.text
    return r.json()


ANSWERS = {"alarm_recipient": "municipal response centre", "responder": "home care night team",
           "technical_settings.window": "20:30-06:00", "technical_settings.delay_min": "30",
           "relatives_agreement": "son is called if home care does not answer",
           "charging_routine": "home care charges it on Mondays", "supervision_checks_count": "2",
           "supervision_check_times": "23:00, 03:00", "care_plan_updated": "yes"}


def report_test_alarm(api, token: str, code: str, hw_id: str, seen_at: float | None = None) -> None:
    body: dict[str, Any] = {"device_id": hw_id, "event_id": f"{hw_id}-test-1", "latency_ms": 412}
    if seen_at is not None:
        body["seen_at"] = seen_at
    r = api.post(f"/api/v1/installations/{code}/test-alarms", headers=auth(token), json=body)
    assert r.status_code == 201, r.text


# -- the basic flow, no JavaScript -----------------------------------------------------------
def test_a_whole_installation_through_the_pages_without_javascript(app):
    walk(app, "HOME-OSL-0002")


@pytest.mark.postgres
def test_the_same_walk_on_postgresql(pg_dsn, tmp_path, clock):
    walk(app_for(build_world(pg_dsn, tmp_path, clock)), "HOME-OSL-0002")


def walk(app, location: str) -> None:
    """Job -> checklist -> consent -> commissioning -> test alarms -> installed -> report -> deinstall."""
    api = client(app)
    job = new_job(api, location)
    code = job["code"]
    sensors = [d for d in job["devices"] if d["role"] != "gateway"]
    phone = Phone(app).login("tech.osl")
    jobs = phone.get("/web/jobs")
    assert jobs.status_code == 200 and f'href="/web/installations/{code}"' in jobs.text
    assert "Dagens oppdrag" in jobs.text and jobs.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in jobs.headers["content-security-policy"]
    page = phone.get(f"/web/installations/{code}")
    assert page.status_code == 200 and job["resident_ref"] in page.text
    # checklist: one device, answers copied to the others
    form = phone.get(f"/web/installations/{code}/checklist/{sensors[0]['serial']}")
    assert form.status_code == 200 and "Hvem mottar alarmen?" in form.text
    assert all(f'for="{i}"' in form.text for i in re.findall(r'<input id="([^"]+)" name="(?!csrf)', form.text))
    r = phone.post(form.request.url.path, {**ANSWERS, "apply_all": "yes", "version": job["version"]}, page=form.text)
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=checklist"), r.text[:300]
    # consent: a capacity assessment with its case number
    form = phone.get(f"/web/installations/{code}/consent")
    r = phone.post(form.request.url.path, {"kind": "capacity_assessment", "date": "2026-11-21", "ref": "SAK-2026/1042"},
                   page=form.text)
    assert r.status_code == 303, r.text[:500]
    admin = _admin(api)
    stored = api.get(f"/api/v1/installations/{code}", headers=admin).json()
    assert stored["consent"] == {"kind": "capacity_assessment", "ref": "SAK-2026/1042", "date": "2026-11-21"}
    assert all(stored["checklist"][d["serial"]]["technical_settings"] == {"window": "20:30-06:00", "delay_min": 30}
               and stored["checklist"][d["serial"]]["care_plan_updated"] is True for d in sensors)
    # commissioning: the page says why "installed" is not possible, and the button is disabled
    overview = phone.get(f"/web/installations/{code}").text
    r = phone.post(f"/web/installations/{code}/commissioning/start", {}, page=overview)
    assert r.status_code == 303 and r.headers["location"] == f"/web/installations/{code}/commissioning"
    live = phone.get(r.headers["location"]).text
    assert re.search(r'<button type="submit" class="btn" id="complete" disabled', live)
    assert live.count("Ingen testalarm fra") == len(sensors)
    assert '<noscript><meta http-equiv="refresh" content="10"></noscript>' in live
    r = phone.post(f"/web/installations/{code}/complete", {}, page=live)
    assert r.status_code == 409 and "Ikke installert ennå" in r.text
    assert api.get(f"/api/v1/installations/{code}", headers=admin).json()["status"] == "commissioning"
    # the commissioning tool reports the test alarms; the page (reloaded, no JS) shows them
    tech = api.post("/api/v1/login", json={"user": "tech.osl", "password": PASSWORD}).json()["token"]
    seen_at = 1_795_400_000.0          # 2026-11-23 02:13:20 UTC = 03:13:20 in Oslo (CET)
    report_test_alarm(api, tech, code, sensors[0]["hw_id"], seen_at)
    live = phone.get(f"/web/installations/{code}/commissioning").text
    assert "03:13:20" in live and live.count("Ingen testalarm fra") == len(sensors) - 1 and ' disabled' in live
    for d in sensors[1:]:
        report_test_alarm(api, tech, code, d["hw_id"])
    live = phone.get(f"/web/installations/{code}/commissioning").text
    assert re.search(r'id="complete" aria-describedby', live) and "Testalarmen fra hver enhet" in live
    r = phone.post(f"/web/installations/{code}/complete", {}, page=live)
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=completed")
    assert api.get(f"/api/v1/installations/{code}", headers=admin).json()["status"] == "active"
    assert "data-events" not in phone.get(f"/web/installations/{code}/commissioning").text   # nothing left to follow
    # the handover report, in the reader's language, with Oslo times
    rep = phone.get(f"/web/installations/{code}/report")
    assert rep.status_code == 200 and "Overleveringsrapport" in rep.text and "23.11.2026 kl. 03:13" in rep.text
    assert "SAK-2026/1042" in rep.text and "IKKE MOTTATT" not in rep.text and "tidsvindu 20:30-06:00" in rep.text
    en = phone.get(f"/web/installations/{code}/report?lang=en")
    assert "Handover report" in en.text and "2026-11-23 03:13" in en.text
    assert "fleet_lang=en" in en.headers["set-cookie"]
    assert "Today&#x27;s jobs" in phone.get("/web/jobs").text       # the choice is remembered
    phone.get("/web/jobs?lang=nb")
    dl = phone.get(f"/web/installations/{code}/report?download=1")
    assert dl.headers["content-disposition"] == f'attachment; filename="handover-{code}.html"'
    assert "<style>" in dl.text and "<script" not in dl.text
    # deinstall and return
    form = phone.get(f"/web/installations/{code}/deinstall")
    assert 'value="VAN-OSL-2"' in form.text and 'value="WH-OSL"' in form.text and 'value="VAN-BGO-1"' not in form.text
    r = phone.post(form.request.url.path, {"to": "VAN-OSL-2", "retention_days": "30", "version": "x"}, page=form.text)
    assert r.status_code == 422 and "Bekreft at alle enhetene er tatt ned" in r.text     # confirmation missing
    stored = api.get(f"/api/v1/installations/{code}", headers=admin).json()
    r = phone.post(form.request.url.path, {"to": "VAN-OSL-2", "retention_days": "30", "confirm": "yes",
                                           "version": stored["version"]}, page=form.text)
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=deinstalled&to=VAN-OSL-2")
    assert api.get(f"/api/v1/installations/{code}", headers=admin).json()["status"] == "deinstalled"
    for d in job["devices"]:
        item = api.get(f"/api/v1/items/{d['serial']}", headers=admin).json()
        assert (item["state"], item["location"]) == ("returned", "VAN-OSL-2"), item
    done = phone.get(r.headers["location"]).text
    assert "Avinstallert" in done and "Enhetene er returnert til VAN-OSL-2." in done
    # every read of personal data and every change was audited, as the technician
    audit = api.get("/api/v1/audit", headers=admin, params={"limit": 200}).json()["items"]
    mine = {a["action"] for a in audit if a["actor"] == "tech.osl" and a.get("entity_id") == code}
    assert {"installation.read", "installation.checklist", "installation.consent", "installation.commissioning_start",
            "installation.test_alarm", "installation.complete", "installation.deinstall"} <= mine


def test_a_checklist_with_a_bad_answer_keeps_the_input_and_names_the_field(app):
    api = client(app)
    job = new_job(api, "HOME-OSL-0003")
    serial = next(d["serial"] for d in job["devices"] if d["role"] != "gateway")
    phone = Phone(app, lang="en").login("tech.osl")
    form = phone.get(f"/web/installations/{job['code']}/checklist/{serial}")
    r = phone.post(form.request.url.path, {**ANSWERS, "technical_settings.window": "8pm to 6am",
                                           "responder": "the night team"}, page=form.text)
    assert r.status_code == 422 and "Write the time window as HH:MM-HH:MM" in r.text
    assert 'value="8pm to 6am"' in r.text and "the night team" in r.text and 'aria-invalid="true"' in r.text
    r = phone.post(form.request.url.path, {**ANSWERS, "supervision_check_times": "25:00"}, page=form.text)
    assert r.status_code == 422 and "is not a time" in r.text and 'href="#f-supervision-check-times"' in r.text
    admin = _admin(api)
    assert api.get(f"/api/v1/installations/{job['code']}", headers=admin).json()["checklist"] == {}


# -- session cookie ------------------------------------------------------------------------
def _cookie(resp, name: str) -> str:
    return next(c for c in resp.headers.get_list("set-cookie") if c.startswith(name + "="))


def test_the_session_cookie_is_httponly_strict_and_secure_behind_tls(web_world):
    phone = Phone(app_for(web_world))
    page = phone.get("/web/login").text
    r = phone.post("/web/login", {"user": "tech.osl", "password": PASSWORD}, page=page)
    cookie = _cookie(r, "fleet_session").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/web" in cookie and "secure" not in cookie
    assert "max-age=1800" in cookie
    # behind a TLS-terminating proxy the service trusts: Secure
    proxied = Phone(app_for(web_world, trusted_proxies=("testclient",)))
    proxied.c.headers["x-forwarded-proto"] = "https"
    page = proxied.get("/web/login")
    pre = _cookie(page, "fleet_csrf")
    assert "; secure" in pre.lower()
    proxied.c.cookies.set("fleet_csrf", pre.split(";")[0].split("=", 1)[1], path="/web")   # (httpx keeps Secure ones for https)
    r = proxied.post("/web/login", {"user": "tech.osl", "password": PASSWORD}, page=page.text)
    assert "; secure" in _cookie(r, "fleet_session").lower()
    # the same header from an untrusted peer changes nothing
    plain = Phone(app_for(web_world))
    plain.c.headers["x-forwarded-proto"] = "https"
    assert "secure" not in _cookie(plain.get("/web/login"), "fleet_csrf").lower()


def test_login_refusals_logout_and_expiry(app, web_world):
    phone = Phone(app)
    page = phone.get("/web/login").text
    r = phone.post("/web/login", {"user": "tech.osl", "password": "wrong"}, page=page)
    assert r.status_code == 401 and "Feil brukernavn eller passord" in r.text and "fleet_session" not in r.headers.get(
        "set-cookie", "")
    r = phone.post("/web/login", {"user": "tech.osl", "password": PASSWORD, "csrf": "guessed"})
    assert r.status_code == 403 and "fleet_session" not in r.headers.get("set-cookie", "")   # login CSRF
    assert "Innloggingssiden var utdatert" in r.text          # same site: a fresh login page, nobody logged in
    r = phone.post("/web/login", {"user": "tech.osl", "password": PASSWORD}, page=page, origin="https://evil.example")
    assert r.status_code == 403 and "fleet_session" not in r.headers.get("set-cookie", "")
    assert "ble ikke sendt fra flåtesystemets egen side" in r.text
    # no session: the login page, and back to where you were after logging in
    anon = Phone(app)
    r = anon.get("/web/installations/I-000001")
    assert r.status_code == 303 and r.headers["location"] == "/web/login?next=/web/installations/I-000001"
    page = anon.get(r.headers["location"]).text
    assert 'name="next" value="/web/installations/I-000001"' in page
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        r = anon.post("/web/login", {"user": "tech.osl", "password": PASSWORD, "next": evil},
                      page=anon.get("/web/login").text)
        assert r.headers["location"] == "/web/jobs", evil
    # logout ends the session on the server (the old cookie no longer works)
    phone.login("tech.osl")
    token = phone.c.cookies.get("fleet_session")
    jobs = phone.get("/web/jobs").text
    r = phone.post("/web/logout", {}, page=jobs)
    assert r.status_code == 303 and r.headers["location"] == "/web/login"
    again = Phone(app)
    again.c.cookies.set("fleet_session", token, path="/web")
    assert again.get("/web/jobs").status_code == 303
    # 30 minutes later the session is gone
    phone.login("tech.osl")
    assert phone.get("/web/jobs").status_code == 200
    web_world.clock.advance(31 * 60)
    r = phone.get("/web/jobs")
    assert r.status_code == 303 and r.headers["location"].startswith("/web/login")


# -- CSRF ----------------------------------------------------------------------------------
def test_cross_site_form_posts_are_refused_with_403(app):
    api = client(app)
    job = new_job(api, "INST-OSL-1/105")
    code = job["code"]
    serial = next(d["serial"] for d in job["devices"] if d["role"] != "gateway")
    phone = Phone(app).login("tech.osl")
    form = phone.get(f"/web/installations/{code}/checklist/{serial}")
    url = form.request.url.path
    token = phone.csrf(form.text)
    attempts = [
        ({"origin": "https://evil.example"}, token),                 # right token, foreign origin
        ({"origin": "null"}, token),
        ({"origin": None, "referer": "https://evil.example/page"}, token),
        ({"origin": None, "sec-fetch-site": "cross-site"}, token),
        ({"origin": "same"}, ""),                                     # same site, no token
        ({"origin": "same"}, "0" * 64),                               # same site, forged token
    ]
    for headers, csrf in attempts:
        origin = headers.pop("origin")
        r = phone.post(url, {**ANSWERS, "csrf": csrf}, origin=origin, headers=headers)
        assert r.status_code == 403, (headers, origin, r.status_code)
        assert "ble ikke sendt fra flåtesystemets egen side" in r.text
    # asked as an API client would: a problem detail
    r = phone.post(url, {**ANSWERS, "csrf": token}, origin="https://evil.example",
                   headers={"accept": "application/problem+json"})
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:fleet:problem:csrf" and r.json()["errors"][0]["field"] == "csrf"
    # refused before the session is even looked at: no cookie, foreign origin -> 403, not a login redirect
    anon = Phone(app)
    assert anon.post(f"/web/installations/{code}/deinstall", {"to": "VAN-OSL-2", "confirm": "yes"},
                     origin="https://evil.example").status_code == 403
    # a token of another session does not work either
    other = Phone(app).login("tech.osl")
    r = phone.post(url, {**ANSWERS, "csrf": other.csrf(other.get(url).text)})
    assert r.status_code == 403
    assert api.get(f"/api/v1/installations/{code}", headers=_admin(api)).json()["checklist"] == {}
    # and the real form from the real page goes through
    assert phone.post(url, ANSWERS, page=form.text).status_code == 303


# -- path tricks on report downloads ----------------------------------------------------------
TRICKS = ["/web/installations/../../../../etc/passwd/report", "/web/installations/..%2F..%2F..%2Fetc%2Fpasswd/report",
          "/web/installations/%2e%2e%2f%2e%2e%2fetc%2fpasswd/report", "/web/installations/..%252F..%252Fetc/report",
          "/web/installations/I-000001%2F..%2F..%2Fsecret/report?download=1",
          "/web/installations/....//....//etc/passwd/report", "/web/installations/..\\..\\etc\\passwd/report",
          "/web/installations/%00/report", "/web/installations/I-000001%00.html/report?download=1",
          "/web/static/../../api/_app.py", "/web/static/..%2F_routes.py", "/web/static/%2e%2e/_session.py",
          "/web/static/app.css/../../../pyproject.toml", "/web/static//etc/passwd", "/web/static/i18n%2Fnb.json",
          "/web/installations/I-000001/report/../../../../../etc/passwd"]


@pytest.mark.parametrize("url", TRICKS)
def test_report_downloads_and_static_files_cannot_traverse_paths(app, url):
    phone = Phone(app).login("tech.osl")
    r = phone.get(url)
    assert r.status_code in (303, 400, 404), (url, r.status_code)
    if r.status_code == 303:          # a client-side normalised path: it lands on a page of the app
        assert r.headers["location"].startswith("/web/"), r.headers["location"]
    for secret in ("root:x:0", "def create_app", "[project]", "SESSION_COOKIE", '"app.name"'):
        assert secret not in r.text, (url, secret)


def test_static_files_are_a_fixed_table(app):
    phone = Phone(app)
    css = phone.get("/web/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert phone.get("/web/static/app.js").headers["x-content-type-options"] == "nosniff"
    assert phone.get("/web/static/nb.json").status_code == 404


# -- the API's authorisation -----------------------------------------------------------------
def test_a_technician_of_another_municipality_sees_404_and_nothing_of_it(app):
    api = client(app)
    admin = _admin(api)
    inst = api.get("/api/v1/installations/I-000001", headers=admin).json()
    serial = next(d["serial"] for d in inst["devices"] if d["role"] != "gateway")
    secrets = [inst["resident_ref"], inst["gateway_id"], serial, inst["location"]]
    phone = Phone(app).login("tech.bgo")
    base = "/web/installations/I-000001"
    for url in (base, f"{base}/checklist/{serial}", f"{base}/consent", f"{base}/commissioning", f"{base}/report",
                f"{base}/report?download=1", f"{base}/deinstall", f"{base}/events"):
        r = phone.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert not [s for s in secrets if s in r.text and s not in url], url      # (the path asked for is echoed)
        assert "Ikke funnet" in r.text
    page = phone.get("/web/jobs").text
    assert "I-000001" not in page
    for url, data in ((f"{base}/checklist/{serial}", ANSWERS), (f"{base}/consent", {"kind": "consent", "date": "2026-11-01"}),
                      (f"{base}/commissioning/start", {}), (f"{base}/complete", {}),
                      (f"{base}/deinstall", {"to": "VAN-OSL-2", "confirm": "yes", "retention_days": "0"})):
        r = phone.post(url, data, page=page)
        assert r.status_code == 404, (url, r.status_code, r.text[:300])
        assert not [s for s in secrets if s in r.text and s not in url], url
    after = api.get("/api/v1/installations/I-000001", headers=admin).json()
    assert after["status"] == "active" and after["version"] == inst["version"]
    # the API's stream answers the same
    tech_b = auth(api.post("/api/v1/login", json={"user": "tech.bgo", "password": PASSWORD}).json()["token"])
    r = api.get("/api/v1/installations/I-000001/commissioning/events", headers=tech_b)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert api.get("/api/v1/installations/I-000001/commissioning/events").status_code == 401


def test_a_role_without_install_write_cannot_complete(app):
    """An auditor reads the installation pages of its scope but gets 403 on changes."""
    phone = Phone(app).login("audrey")
    page = phone.get("/web/installations/I-000001")
    assert page.status_code == 200
    r = phone.post("/web/installations/I-000001/complete", {}, page=page.text)
    assert r.status_code in (403, 409)
    r = phone.post("/web/installations/I-000001/deinstall", {"to": "VAN-OSL-2", "confirm": "yes"}, page=page.text)
    assert r.status_code == 403


def test_the_web_app_is_not_part_of_the_api_contract(app):
    doc = client(app).get("/openapi.json").json()
    assert not [p for p in doc["paths"] if p.startswith("/web")]
    op = doc["paths"]["/api/v1/installations/{code}/commissioning/events"]["get"]
    assert op["x-scope"] == "municipality" and op["x-permission"] == "install.read"
    assert "text/event-stream" in json.dumps(op["responses"]["200"])
