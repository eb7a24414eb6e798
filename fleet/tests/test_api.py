"""The fleet service in process (httpx against the ASGI app, SQLite): the contract, the flows a
technician and a warehouse run, problem details for bad input, health, readiness and metrics."""
from __future__ import annotations

import json

import pytest

from fleet.tests.test_api_support import A, PASSWORD, app_for, auth, client, world  # noqa: F401 - fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def api(world):  # noqa: F811
    return client(app_for(world))


@pytest.fixture
def admin(api):
    r = api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return auth(r.json()["token"])


def test_openapi_is_the_checked_in_contract():
    """docs/fleet-openapi.json is the contract; change it with `python -m fleet.api.openapi --write`."""
    from fleet.api.openapi import CONTRACT, differences, document, render

    doc = document()
    old = json.loads(CONTRACT.read_text())
    assert render(old) == render(doc), "API changed: " + ", ".join(differences(old, doc)) + \
        " -- run `python -m fleet.api.openapi --write` if intended"


def test_every_operation_is_documented_and_declares_its_permission_and_scope():
    from fleet.api.openapi import document

    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), f"{method} {path} has no summary"
            assert op.get("x-scope") in ("municipality", "fleet", "self", "public"), f"{method} {path}"
            if op["x-scope"] != "public":
                assert op.get("x-permission"), f"{method} {path}"
                assert path.startswith("/api/v1/")


def test_login_me_and_logout(api):
    r = api.post("/api/v1/login", json={"user": "tech.osl", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["expires_in"] == 1800          # 30-minute login tokens
    h = auth(r.json()["token"])
    me = api.get("/api/v1/me", headers=h).json()
    assert me == {"user": "tech.osl", "role": "technician", "municipalities": [A],
                  "permissions": sorted(me["permissions"])} and "install.write" in me["permissions"]
    assert api.post("/api/v1/logout", headers=h).status_code == 204
    r = api.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_login_token_expires_after_30_minutes(world, api):  # noqa: F811
    h = auth(api.post("/api/v1/login", json={"user": "sam", "password": PASSWORD}).json()["token"])
    world.clock.advance(29 * 60)
    assert api.get("/api/v1/me", headers=h).status_code == 200
    world.clock.advance(61)
    r = api.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_stock_flow_receive_move_transition_and_show(api, admin):
    log = auth(api.post("/api/v1/login", json={"user": "log.osl", "password": PASSWORD}).json()["token"])
    r = api.post("/api/v1/items", headers=log, json={"serial": "SN-API-0001", "model": "WT-BTN-2",
                                                     "hw_id": "a4c1380a0f01", "location": "WH-OSL"})
    assert r.status_code == 201 and r.json()["state"] == "in_stock" and r.json()["municipality"] == A
    r = api.post("/api/v1/items/SN-API-0001/move", headers=log, json={"to": "VAN-OSL-1", "reason": "restock"})
    assert r.status_code == 200 and r.json()["location"] == "VAN-OSL-1"
    r = api.post("/api/v1/items/SN-API-0001/transition", headers=log,
                 json={"state": "repair", "reason": "does not click", "to": "REPAIR-NORDIC"})
    assert r.status_code == 200 and r.json()["state"] == "repair"
    r = api.post("/api/v1/items/SN-API-0001/transition", headers=log, json={"state": "installed", "reason": "x"})
    assert r.status_code == 409 and r.json()["errors"][0]["fix"]
    show = api.get("/api/v1/items/a4c1380a0f01", headers=log).json()     # by device id too
    assert [h["to_state"] for h in show["history"]] == ["repair", "in_stock", "in_stock"]
    r = api.post("/api/v1/deliveries", headers=log, json={"location": "WH-OSL", "ref": "DN-API-1",
                                                          "csv": "serial,model\nSN-API-0002,WT-BTN-2\nSN-API-0003,WT-BTN-2\n"})
    assert r.status_code == 201 and r.json()["imported"] == 2
    stock = api.get("/api/v1/stock", headers=log, params={"location": "WH-OSL", "model": "WT-BTN-2"}).json()
    assert stock["items"][0]["in_stock"] >= 2


def test_lists_page_with_a_cursor(api, admin):
    seen, cursor = [], None
    while True:
        r = api.get("/api/v1/items", headers=admin, params={"limit": 50, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        seen += [i["serial"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    everything = api.get("/api/v1/items", headers=admin, params={"limit": 500}).json()["items"]
    assert seen == [i["serial"] for i in everything] and len(seen) > 100
    r = api.get("/api/v1/items", headers=admin, params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"


def test_installation_from_creation_to_verified_deletion(world, api):  # noqa: F811
    tech = auth(api.post("/api/v1/login", json={"user": "tech.osl", "password": PASSWORD}).json()["token"])
    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    kit = next(k["code"] for k in api.get("/api/v1/kits", headers=tech, params={"state": "assembled"}).json()["items"])
    r = api.post("/api/v1/installations", headers=tech, json={
        "resident_ref": "R-API42X", "location": "HOME-OSL-0003", "kit": kit, "consent_kind": "consent",
        "consent_date": "2026-11-20", "routing": {"response_centre": "arc-osl", "staff_group": "zone-1",
                                                  "relatives": [], "escalation_s": [120]}})
    assert r.status_code == 201, r.text
    inst = r.json()
    code, version = inst["code"], inst["version"]
    plan = api.get(f"/api/v1/installations/{code}/commissioning", headers=tech).json()
    sensors = plan["devices"]
    from fleet.tests.factories import ANSWERS

    for d in sensors:
        r = api.put(f"/api/v1/installations/{code}/checklist/{d['serial']}", headers=tech,
                    json={"answers": ANSWERS, "version": version})
        assert r.status_code == 200, r.text
        version = r.json()["version"]
    r = api.put(f"/api/v1/installations/{code}/checklist/{sensors[0]['serial']}", headers=tech,
                json={"answers": ANSWERS, "version": 1})
    assert r.status_code == 409 and "reload" in r.json()["detail"]                 # someone saved first
    r = api.post(f"/api/v1/installations/{code}/complete", headers=tech, json={})
    assert r.status_code == 409 and "no test alarm" in r.json()["detail"]          # not installed without them
    for d in sensors:
        r = api.post(f"/api/v1/installations/{code}/test-alarms", headers=tech,
                     json={"device_id": d["hw_id"], "event_id": f"{d['hw_id']}-00000001", "latency_ms": 240})
        assert r.status_code == 201
    assert r.json()["missing_test_alarms"] == []
    assert api.post(f"/api/v1/installations/{code}/complete", headers=tech, json={}).json()["status"] == "active"
    html = api.get(f"/api/v1/installations/{code}/handover", headers=tech, params={"format": "html"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html") and code in html.text
    shown = api.get(f"/api/v1/installations/{code}", headers=tech).json()
    assert shown["resident_ref"] == "R-API42X" and shown["status"] == "active"
    audit = api.get("/api/v1/audit", headers=admin, params={"entity": "installation", "entity_id": code}).json()
    reads = [a for a in audit["items"] if a["action"] == "installation.read"]
    assert len(reads) >= 2 and all(a["personal"] and a["actor"] == "tech.osl" for a in reads)   # show + handover
    r = api.post(f"/api/v1/installations/{code}/deinstall", headers=tech, json={"to": "VAN-OSL-2"})
    assert r.status_code == 200 and r.json()["status"] == "deinstalled"
    assert api.post("/api/v1/privacy/purges", headers=admin, json={"code": code, "now": True}).json() == \
        {"purged": [code]}
    v = api.post(f"/api/v1/installations/{code}/privacy-verification", headers=admin,
                 json={"resident_ref": "R-API42X"}).json()
    assert v["ok"] is True and v["problems"] == []


BAD_BODIES = [
    (b'{"serial": "SN-X", ', 400, "malformed_json", None),
    (b'[1, 2, 3]', 422, "invalid", "body"),
    (b'{"serial": 17, "model": "WT-BTN-2", "location": "WH-OSL"}', 422, "invalid", "serial"),
    (b'{"serial": "SN-X1", "modle": "WT-BTN-2", "location": "WH-OSL"}', 422, "invalid", "modle"),
    (b'{"serial": "SN-X1", "model": "WT-BTN-2", "location": "WH-OSL", "state": "installed"}', 422, "invalid", "state"),
    (b'{"serial": "SN-1\'; DROP TABLE item;--", "model": "WT-BTN-2", "location": "WH-OSL"}', 422, "invalid", "serial"),
    (b'{"serial": "SN-OSL-BTN-00000", "model": "WT-BTN-2", "location": "WH-OSL"}', 409, "integrity", "serial"),
]


@pytest.mark.parametrize("body,status,code,field", BAD_BODIES)
def test_bad_input_is_a_problem_detail_that_names_the_field_and_stores_nothing(api, admin, body, status, code, field):
    before = api.get("/api/v1/items", headers=admin, params={"limit": 500}).json()["items"]
    r = api.post("/api/v1/items", headers={**admin, "Content-Type": "application/json"}, content=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    p = r.json()
    assert set(p) == {"type", "title", "status", "detail", "instance", "errors"} and p["status"] == status
    assert p["type"] == f"urn:fleet:problem:{code}" and p["instance"] == "/api/v1/items"
    assert p["errors"] and all(e["fix"] for e in p["errors"])
    if field:
        assert field in [e["field"] for e in p["errors"]]
    assert "Traceback" not in r.text and "sqlite" not in r.text.lower()
    assert api.get("/api/v1/items", headers=admin, params={"limit": 500}).json()["items"] == before
    assert api.get("/healthz").status_code == 200                                   # still serving


def test_unknown_field_says_did_you_mean(api, admin):
    r = api.post("/api/v1/items", headers=admin, json={"serial": "SN-X1", "model": "WT-BTN-2", "locaton": "WH-OSL"})
    fixes = {e["field"]: e["fix"] for e in r.json()["errors"]}
    assert fixes["locaton"] == "did you mean location?" and fixes["location"] == "give location"


def test_sql_like_text_is_stored_verbatim(api, admin):
    name = "Robert'); DROP TABLE location;-- \" % _ \\"
    r = api.post("/api/v1/locations", headers=admin, json={"code": "WH-ODD", "kind": "warehouse", "name": name,
                                                           "municipality": A})
    assert r.status_code == 201 and r.json()["name"] == name
    assert api.get("/api/v1/locations/WH-ODD", headers=admin).json()["name"] == name
    assert api.get("/api/v1/locations", headers=admin, params={"municipality": A}).status_code == 200


def test_bodies_over_the_limit_are_refused_with_413(world, admin):  # noqa: F811
    api = client(app_for(world, max_body_bytes=4096))
    big = json.dumps({"serial": "SN-BIG", "model": "WT-BTN-2", "location": "WH-OSL", "x": "y" * 5000})
    r = api.post("/api/v1/items", headers={**admin, "Content-Type": "application/json"}, content=big)
    assert r.status_code == 413 and r.json()["type"] == "urn:fleet:problem:too_large"

    def chunks():                      # no Content-Length: counted while it arrives
        for _ in range(10):
            yield b" " * 1000
    r = api.post("/api/v1/items", headers={**admin, "Content-Type": "application/json"}, content=chunks())
    assert r.status_code == 413
    assert api.get("/api/v1/items/SN-BIG", headers=admin).status_code == 404
    assert api.get("/healthz").json() == {"status": "ok"}


def test_health_readiness_and_metrics(world, api, admin):  # noqa: F811
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json()["status"] == "ready"
    api.post("/api/v1/login", json={"user": "admin", "password": "wrong"})
    api.get("/api/v1/installations/I-000001", headers=admin)
    text = api.get("/metrics").text
    assert 'fleet_http_requests_total{method="GET",route="/api/v1/installations/{code}",status="200"} 1.0' in text
    assert 'fleet_login_failures_total{reason="password"} 1.0' in text
    assert 'fleet_audit_writes_total{entity="installation"} 1.0' in text        # the audited read
    assert "I-000001" not in text                                                 # templates, never raw paths
    guarded = client(app_for(world, metrics_token="m3tr1cs"))
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers=auth("m3tr1cs")).status_code == 200


def test_readiness_fails_until_migrations_are_applied(tmp_path):
    from fleet.api import ApiSettings, create_app
    from fleet.store import open_store

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url, migrate=False).close()
    api = client(create_app(ApiSettings(db_url=url)))
    r = api.get("/readyz")
    assert r.status_code == 503 and "0101_core" in r.json()["pending_migrations"]
    assert api.get("/healthz").status_code == 200


def test_readiness_says_when_the_database_is_unreachable():
    from fleet.api import ApiSettings, create_app

    api = client(create_app(ApiSettings(db_url="postgresql://nobody@127.0.0.1:1/fleet?connect_timeout=1")))
    r = api.get("/readyz")
    assert r.status_code == 503 and r.json()["database"] == "unreachable"
    r = api.post("/api/v1/login", json={"user": "admin", "password": "x"})
    assert r.status_code == 500 and r.json()["detail"] == "the server could not complete the request"
    assert "nobody" not in r.text and "127.0.0.1" not in r.text                # nothing about the inside
    assert api.get("/healthz").status_code == 200


def test_fleet_serve_refuses_a_bad_listen_address(capsys, tmp_path):
    from fleet.cli import main

    assert main(["serve", "--listen", "localhost"], env={"FLEET_DB": f"sqlite:///{tmp_path / 'f.db'}"}) == 2
    assert "HOST:PORT" in capsys.readouterr().err
