"""The technician web app in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by selenium; nothing is downloaded at run time), against a real ``fleet serve`` process
on a free loopback port over a seeded SQLite database.

- A whole installation walked through the pages on a phone-sized screen: log in, today's jobs,
  the installation, the checklist, consent, start commissioning, test alarms reported through
  the API arrive on the page live (server-sent events; the page is not reloaded), "mark as
  installed" is enabled only then, the handover report (and a PDF printed from it), the language
  switch, deinstall and return. Every page: touch targets >= 44 px and computed text/background
  contrast >= 4.5:1.
- The basic flow with JavaScript switched off (the commissioning page refreshes itself).
- A cross-site form post from another origin (the browser sends the cookie) is refused with 403.
- The API's event stream over a real socket.

Screenshots (and the printed PDF) are saved under ``test-artifacts/web/<test>/`` at the top of
the checkout (ignored by git; ``WT_TEST_ARTIFACTS`` moves it). Outside CI the browser tests skip
when chromium, chromedriver or selenium is missing; in CI (``CI`` set) they fail.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fleet.tests.test_api_support import A, PASSWORD, auth, build_world
from fleet.tests.test_web import ANSWERS, contrast, new_job

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--window-size=412,915", "--lang=nb-NO"]
TOUCH_JS = """
const bad = [];
for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')) {
  let target = el;
  if (el.matches('input[type=radio], input[type=checkbox]')) {
    target = document.querySelector('label[for="' + el.id + '"]') || el;
  }
  if (el.classList.contains('skip')) continue;               // off-screen until focused
  const st = getComputedStyle(target), r = target.getBoundingClientRect();
  if (st.display === 'none' || st.visibility === 'hidden' || r.width === 0 || r.height === 0) continue;
  if (r.height < 44 || r.width < 44) {
    bad.push([el.tagName, el.id || el.getAttribute('href') || el.textContent.trim().slice(0, 30),
              Math.round(r.width), Math.round(r.height)]);
  }
}
return bad;
"""
COLOURS_JS = """
function rgba(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.length === 3 ? m.concat([1]) : m; }
function bg(el) {
  while (el) { const c = rgba(getComputedStyle(el).backgroundColor); if (c[3] > 0) return c; el = el.parentElement; }
  return [255, 255, 255, 1];
}
const out = [];
for (const el of document.querySelectorAll(arguments[0])) {
  const r = el.getBoundingClientRect();
  if (!el.textContent.trim() || r.width === 0 || getComputedStyle(el).visibility === 'hidden') continue;
  out.push([el.tagName + '.' + el.className, rgba(getComputedStyle(el).color), bg(el)]);
}
return out;
"""
TEXT = "h1, h2, h3, p, li, label, legend, a, button, .tag, th, td, dt, dd, .hint, .muted, .ok, .wait, .field-error"


def _hex(rgb: list[float]) -> str:
    return "#" + "".join(f"{int(round(c)):02x}" for c in rgb[:3])


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        msg = f"browser tests need {', '.join(missing)} (scripts/bootstrap.sh installs chromium and chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`fleet serve` on a free loopback port over a seeded SQLite database (the demo data, 3 homes)."""
    import httpx

    from fleet.clock import SystemClock

    tmp = tmp_path_factory.mktemp("web-browser")
    world = build_world(f"sqlite:///{tmp / 'fleet.db'}", tmp, SystemClock())
    port = _free_port()
    log = open(tmp / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "--db", world.url, "serve", "--listen", f"127.0.0.1:{port}",
                             "--kek-file", str(world.kek_file), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp / "serve.log").read_text()
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "fleet serve did not become ready"
        time.sleep(0.2)
    api = httpx.Client(base_url=url, timeout=10)
    yield url, api
    api.close()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def _token(api, user: str) -> str:
    r = api.post("/api/v1/login", json={"user": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["token"]


class Phone:
    """A phone-sized headless Chromium with helpers: screenshots, the accessibility checks, forms."""

    def __init__(self, base: str, profile: Path, shots: Path, *, javascript: bool = True) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in CHROME_ARGS + [f"--user-data-dir={profile}"]:
            opts.add_argument(a)
        prefs: dict[str, Any] = {"intl.accept_languages": "nb-NO,nb,en"}
        if not javascript:
            prefs["profile.managed_default_content_settings.javascript"] = 2
        opts.add_experimental_option("prefs", prefs)
        from selenium.common.exceptions import WebDriverException

        try:
            self.d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        except WebDriverException:       # a busy machine can miss chromium's first start-up deadline: once more
            time.sleep(1)
            self.d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        self.d.set_page_load_timeout(30)
        self.base, self.shots, self.n = base, shots, 0
        shots.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self.d.quit()

    def go(self, path: str) -> None:
        self.d.get(self.base + path)

    def path(self) -> str:
        return self.d.current_url[len(self.base):]

    def css(self, sel: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, sel)

    def all(self, sel: str):
        from selenium.webdriver.common.by import By

        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def link(self, text: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.PARTIAL_LINK_TEXT, text)

    def wait(self, cond, timeout: float = 20.0, what: str = "") -> Any:
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # a page that reloads itself (the no-script commissioning page's meta refresh) can replace
        # an element between finding it and asking it: look again at the next poll
        return WebDriverWait(self.d, timeout, poll_frequency=0.1,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                             ).until(lambda d: cond(), what)

    def shot(self, name: str) -> Path:
        """A full-page screenshot (PNG) in the artifacts directory."""
        import base64

        self.n += 1
        m = self.d.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = m.get("cssContentSize") or m["contentSize"]
        data = self.d.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        path = self.shots / f"{self.n:02d}-{name}.png"
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def check_page(self, name: str) -> None:
        """Screenshot, then: every control a 44 px target, every text >= 4.5:1 against its background."""
        self.shot(name)
        small = self.d.execute_script(TOUCH_JS)
        assert small == [], f"{name}: touch targets under 44 px: {small}"
        pairs = self.d.execute_script(COLOURS_JS, TEXT)
        assert len(pairs) >= 5, name
        low = [(what, _hex(fg), _hex(bg), round(contrast(_hex(fg), _hex(bg)), 2)) for what, fg, bg in pairs
               if contrast(_hex(fg), _hex(bg)) < 4.5]
        assert low == [], f"{name}: contrast under 4.5:1: {low}"

    def fill(self, name: str, value: str) -> None:
        el = self.css(f'[name="{name}"]')
        el.clear()
        el.send_keys(value)

    def choose(self, name: str, value: str) -> None:
        """Tick a radio button or checkbox by its label (as a finger would)."""
        el = self.css(f'input[name="{name}"][value="{value}"]')
        self.css(f'label[for="{el.get_attribute("id")}"]').click()
        assert el.is_selected()

    def submit(self, label: str) -> None:
        from selenium.webdriver.common.by import By

        self.d.find_element(By.XPATH, f'//button[normalize-space()="{label}"]').click()


@pytest.fixture
def phone_factory(tmp_path, request):
    _need_browser()
    art = Path(os.environ.get("WT_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "web" / request.node.name
    shutil.rmtree(art, ignore_errors=True)
    made: list[Phone] = []

    def make(base: str, *, javascript: bool = True) -> Phone:
        p = Phone(base, tmp_path / f"profile-{len(made)}", art, javascript=javascript)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _log_in(phone: Phone, user: str = "tech.osl") -> None:
    phone.go("/web/jobs")
    phone.wait(lambda: phone.path().startswith("/web/login"))
    assert phone.css("html").get_attribute("lang") == "nb" and phone.css("h1").text == "Logg inn"
    phone.check_page("login")
    phone.fill("user", user)
    phone.fill("password", PASSWORD)
    phone.submit("Logg inn")
    phone.wait(lambda: phone.path() == "/web/jobs", what="the jobs page after login")


def _answer_checklist(phone: Phone, *, apply_all: bool) -> None:
    for name, value in ANSWERS.items():
        if name == "care_plan_updated":
            phone.choose(name, value)
        else:
            phone.fill(name, value)
    if apply_all:
        phone.choose("apply_all", "yes")


@pytest.mark.slow
def test_a_whole_installation_walked_through_the_pages_with_live_test_alarms(server, phone_factory):
    base, api = server
    job = new_job(api, "INST-OSL-1/104")
    code = job["code"]
    sensors = [d for d in job["devices"] if d["role"] != "gateway"]
    phone = phone_factory(base)
    _log_in(phone)
    # today's jobs -> the installation
    phone.check_page("jobs")
    phone.css(f'a[href="/web/installations/{code}"]').click()
    phone.wait(lambda: phone.css("h1").text == f"Installasjon {code}")
    phone.check_page("installation")
    # the checklist of the first device, copied to the others
    phone.css(f'a[href="/web/installations/{code}/checklist/{sensors[0]["serial"]}"]').click()
    phone.wait(lambda: "Sjekkliste" in phone.css("h1").text)
    _answer_checklist(phone, apply_all=True)
    phone.check_page("checklist")
    phone.submit("Lagre")
    phone.wait(lambda: "saved=checklist" in phone.path())
    assert "Sjekklisten er lagret." in phone.css(".notice").text
    # consent
    phone.link("Registrer samtykke").click()
    phone.wait(lambda: phone.path().endswith("/consent"))
    phone.choose("kind", "capacity_assessment")
    phone.fill("ref", "SAK-2026/2201")
    phone.check_page("consent")
    phone.submit("Lagre")
    phone.wait(lambda: "saved=consent" in phone.path())
    # start commissioning: "installed" is not possible yet, and the page says why
    phone.submit("Start idriftsetting")
    phone.wait(lambda: phone.path() == f"/web/installations/{code}/commissioning")
    complete = phone.css("#complete")
    assert not complete.is_enabled()
    assert phone.css("#live-blockers").text.count("Ingen testalarm fra") == len(sensors)
    phone.wait(lambda: phone.css("#live-note").is_displayed(), what="the event stream connected")
    phone.d.execute_script("window.__samePage = 'yes';")
    phone.check_page("commissioning-waiting")
    # the commissioning tool reports the test alarms to the API; the page follows without a reload
    tech = _token(api, "tech.osl")
    for i, d in enumerate(sensors):
        r = api.post(f"/api/v1/installations/{code}/test-alarms", headers=auth(tech),
                     json={"device_id": d["hw_id"], "event_id": f"{d['hw_id']}-t1", "latency_ms": 250 + i})
        assert r.status_code == 201, r.text
        phone.wait(lambda: phone.css(f'li[data-serial="{d["serial"]}"]').get_attribute("data-seen") == "yes",
                   what=f"the test alarm of {d['serial']} on the page")
        assert phone.d.execute_script("return window.__samePage") == "yes"      # pushed, not reloaded
        if i < len(sensors) - 1:
            assert not phone.css("#complete").is_enabled()
            phone.check_page(f"commissioning-{i + 1}-of-{len(sensors)}")
    phone.wait(lambda: phone.css("#complete").is_enabled(), what="the complete button enabled")
    assert "Testalarmen fra hver enhet er mottatt" in phone.css("#live-blockers").text
    assert phone.css("#p-seen").text.endswith(f"{len(sensors)} av {len(sensors)}")
    phone.check_page("commissioning-ready")
    phone.css("#complete").click()
    phone.wait(lambda: "saved=completed" in phone.path())
    assert "installert" in phone.css(".tag-status").text
    assert api.get(f"/api/v1/installations/{code}", headers=auth(tech)).json()["status"] == "active"
    phone.check_page("installed")
    # the handover report: on screen, printed to PDF by the browser
    phone.link("Åpne overleveringsrapporten").click()
    phone.wait(lambda: phone.path() == f"/web/installations/{code}/report")
    text = phone.css("main").text
    assert f"Overleveringsrapport – installasjon {code}" in text and "SAK-2026/2201" in text
    assert "IKKE MOTTATT" not in text and "tidsvindu 20:30-06:00" in text
    assert phone.css("button[data-print]").is_displayed()            # the script offers printing
    phone.check_page("report")
    import base64

    pdf = base64.b64decode(phone.d.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})["data"])
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    (phone.shots / "handover-report.pdf").write_bytes(pdf)
    # English, by the switch
    phone.go(f"/web/installations/{code}")
    phone.link("English").click()
    phone.wait(lambda: phone.css("h1").text == f"Installation {code}" and phone.css("html").get_attribute("lang") == "en")
    phone.check_page("installation-english")
    # later: deinstall and return
    phone.link("Deinstall and return").click()
    phone.wait(lambda: phone.path().endswith("/deinstall"))
    from selenium.webdriver.support.ui import Select

    Select(phone.css('select[name="to"]')).select_by_value("VAN-OSL-2")
    phone.choose("confirm", "yes")
    phone.check_page("deinstall")
    phone.submit("Deinstall")
    phone.wait(lambda: "saved=deinstalled" in phone.path())
    assert "The devices were returned to VAN-OSL-2." in phone.css("main").text
    phone.check_page("deinstalled")
    admin = auth(_token(api, "admin"))
    assert api.get(f"/api/v1/installations/{code}", headers=admin).json()["status"] == "deinstalled"
    assert {api.get(f"/api/v1/items/{d['serial']}", headers=admin).json()["state"] for d in job["devices"]} == {"returned"}


@pytest.mark.slow
def test_the_basic_flow_works_without_javascript(server, phone_factory):
    base, api = server
    job = new_job(api, "INST-OSL-1/106")
    code = job["code"]
    sensors = [d for d in job["devices"] if d["role"] != "gateway"]
    phone = phone_factory(base, javascript=False)
    _log_in(phone)
    phone.css(f'a[href="/web/installations/{code}"]').click()
    phone.wait(lambda: phone.css("h1").text == f"Installasjon {code}")
    for d in sensors:
        phone.go(f"/web/installations/{code}/checklist/{d['serial']}")
        _answer_checklist(phone, apply_all=False)
        phone.submit("Lagre")
        phone.wait(lambda: "saved=checklist" in phone.path())
    phone.submit("Start idriftsetting")
    phone.wait(lambda: phone.path().endswith("/commissioning"))
    assert not phone.css("#complete").is_enabled() and not phone.css("#live-note").is_displayed()
    phone.shot("commissioning-no-js")
    tech = _token(api, "tech.osl")
    for d in sensors:
        assert api.post(f"/api/v1/installations/{code}/test-alarms", headers=auth(tech),
                        json={"device_id": d["hw_id"], "event_id": f"{d['hw_id']}-nojs"}).status_code == 201
    # no script: the page refreshes itself (<noscript><meta refresh>) and then offers the button
    phone.wait(lambda: phone.css("#complete").is_enabled(), timeout=25, what="the page refreshed itself")
    phone.shot("commissioning-no-js-ready")
    phone.css("#complete").click()
    phone.wait(lambda: "saved=completed" in phone.path())
    phone.link("Åpne overleveringsrapporten").click()
    phone.wait(lambda: phone.path().endswith("/report"))
    assert not phone.css("button[data-print]").is_displayed()        # no script, no print button
    phone.shot("report-no-js")


class _Attacker(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_a_cross_site_form_post_in_the_browser_is_refused(server, phone_factory):
    """Another origin on the same host (so the browser does send the SameSite cookie) posts a
    deinstall form to the fleet: 403, and the installation is untouched."""
    base, api = server
    job = new_job(api, "INST-OSL-1/107")
    code = job["code"]
    phone = phone_factory(base)
    _log_in(phone)
    _Attacker.page = (
        f'<!doctype html><html><body><form id="f" method="post" action="{base}/web/installations/{code}/deinstall">'
        '<input name="to" value="VAN-OSL-2"><input name="retention_days" value="0"><input name="confirm" value="yes">'
        '<input name="csrf" value="guessed"></form><script>document.getElementById("f").submit()</script>'
        "</body></html>").encode()
    evil = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        phone.d.get(f"http://127.0.0.1:{evil.server_address[1]}/prize")
        phone.wait(lambda: phone.d.current_url.startswith(base + "/web/installations/"), what="the forged post sent")
        assert "ble ikke sendt fra flåtesystemets egen side" in phone.css("main").text
        assert phone.css("h1").text == "Ikke tillatt"
        phone.shot("cross-site-post-refused")
    finally:
        evil.shutdown()
        evil.server_close()
    admin = auth(_token(api, "admin"))
    assert api.get(f"/api/v1/installations/{code}", headers=admin).json()["status"] == "commissioning"


def test_the_api_event_stream_over_a_real_socket(server):
    """GET /api/v1/installations/{code}/commissioning/events: the state at once, a new event when a
    test alarm arrives, 404 for another municipality, and the stream ends when the session does."""
    base, api = server
    job = new_job(api, "INST-OSL-1/108")
    code = job["code"]
    sensor = next(d for d in job["devices"] if d["role"] != "gateway")
    tech = _token(api, "tech.osl")
    assert api.get(f"/api/v1/installations/{code}/commissioning/events",
                   headers=auth(_token(api, "tech.bgo"))).status_code == 404
    events: list[tuple[str, dict[str, Any]]] = []
    with api.stream("GET", f"/api/v1/installations/{code}/commissioning/events", headers=auth(tech),
                    timeout=20) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if len(events) == 1:
                    first = events[0][1]
                    assert first["seen"] == 0 and first["can_complete"] is False and first["municipality"] == A
                    assert {"kind": "test_alarm", "serial": sensor["serial"], "role": sensor["role"]} in first["blockers"]
                    assert api.post(f"/api/v1/installations/{code}/test-alarms", headers=auth(tech),
                                    json={"device_id": sensor["hw_id"], "event_id": "sse-1"}).status_code == 201
                elif len(events) == 2:
                    st = events[1][1]
                    dev = next(d for d in st["devices"] if d["serial"] == sensor["serial"])
                    assert st["seen"] == 1 and dev["test_alarm"]["event_id"] == "sse-1" and dev["paired"] is True
                    assert api.post("/api/v1/logout", headers=auth(tech)).status_code == 204
                else:
                    break
    assert [n for n, _ in events] == ["status", "status", "end"] and events[2][1] == {"reason": "unauthenticated"}
