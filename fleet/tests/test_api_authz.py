"""Authorisation on the server, generated from the OpenAPI document: every operation is called
without a token (401), and as every role scoped to the *other* municipality against municipality
A's data (403/404 and none of A's data in the body). A new operation without an entry in
:data:`BODIES`/:data:`PATH` fails here until its author says what it should be called with.
"""
from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from fleet.tests.test_api_support import (A, B, B_USERS, DEVICE_KEY, MQTT_PASSWORD, PASSWORD, World, app_for, auth,
                                          build_world, client)


def _setup_a(world: World, api) -> dict[str, Any]:
    """Data of municipality A, made through the API as the fleet-wide admin."""
    from fleet.upgrades import Target, generate_key, sign

    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    inst = api.get("/api/v1/installations/I-000001", headers=admin).json()
    assert inst["municipality"] == A
    gw = inst["gateway_id"]
    sensor = next(d for d in inst["devices"] if d["role"] != "gateway")
    kit = next(k for k in api.get("/api/v1/kits", headers=admin, params={"municipality": A,
                                                                          "state": "assembled"}).json()["items"])
    kit_items = api.get(f"/api/v1/kits/{kit['code']}", headers=admin).json()["items"]
    residents = [api.get(f"/api/v1/installations/{i['code']}", headers=admin).json()["resident_ref"]
                 for i in api.get("/api/v1/installations", headers=admin, params={"municipality": A}).json()["items"]]
    for scope, sid, key, value in (("municipality", A, "uplink.tls.username", "gw-osl"),
                                   ("municipality", A, "uplink.tls.password", MQTT_PASSWORD)):
        r = api.put(f"/api/v1/config/templates/{scope}/{sid}/keys/{key}", headers=admin, json={"value": value})
        assert r.status_code == 200, r.text
    made = api.post(f"/api/v1/devices/{sensor['hw_id']}/keys", headers=admin)       # a device key (fleet/devicekeys)
    assert made.status_code == 201, made.text
    device_key = made.json()["key"]
    assert api.post(f"/api/v1/devices/{sensor['hw_id']}/keys/1/activate", headers=admin).status_code == 200
    priv, pub = generate_key()
    assert api.post("/api/v1/release-keys", headers=admin, json={"public_pem": pub.decode(), "name": "ci"}).status_code == 201
    art = b"gateway image 0.2.0"
    signed = sign(art, "gw.img", Target.GATEWAY, "0.2.0", priv)
    r = api.post("/api/v1/releases", headers=admin, json={"signed": json.loads(signed.to_json()),
                                                          "artifact_base64": base64.b64encode(art).decode()})
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/rollouts", headers=admin, json={"release_id": "gateway@0.2.0", "rollout_id": "ro-osl",
                                                          "municipality": A, "waves": [1.0]})
    assert r.status_code == 201, r.text
    tok = api.post("/api/v1/tokens", headers=admin, json={"user": "tech.osl", "name": "osl script"}).json()
    return {"admin": admin, "gateway": gw, "sensor": sensor, "kit": kit["code"], "kit_serials": [i["serial"] for i in kit_items],
            "residents": residents, "token_id": tok["id"], "token": tok["token"],
            "secrets": [MQTT_PASSWORD, DEVICE_KEY, device_key, tok["token"], *residents, sensor["hw_id"], gw]}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from fleet.tests.conftest import FakeClock

    tmp = tmp_path_factory.mktemp("authz")
    world = build_world(f"sqlite:///{tmp / 'fleet.db'}", tmp, FakeClock())
    api = client(app_for(world))
    a = _setup_a(world, api)
    doc = api.get("/openapi.json").json()
    return world, api, a, doc


def PATH(a: dict[str, Any]) -> dict[str, str]:
    """Values of path parameters, all pointing at municipality A's data."""
    return {"key@items": a["sensor"]["serial"], "code@installations": "I-000001", "code@kits": a["kit"],
            "code@locations": "HOME-OSL-0001", "code@models": "WT-BTN-2", "serial": a["sensor"]["serial"],
            "name": "tech.osl", "token_id": str(a["token_id"]), "gateway_id": a["gateway"], "scope": "municipality",
            "scope_id": A, "key@config": "uplink.tls.password", "location": "WH-OSL", "model": "WT-BTN-2",
            "municipality": A, "rollout_id": "ro-osl", "action": "pause", "release_id": "gateway@0.2.0",
            "device_id": a["sensor"]["hw_id"], "version": "1"}


def BODIES(a: dict[str, Any]) -> dict[str, Any]:
    """Request bodies by 'METHOD path', aimed at municipality A."""
    routing = {"response_centre": "arc-x", "staff_group": "g", "relatives": [], "escalation_s": [60]}
    return {
        "PUT /api/v1/config/templates/{scope}/{scope_id}/keys/{key}": {"value": "stolen"},
        "POST /api/v1/deliveries": {"location": "WH-OSL", "csv": "serial,model\nSN-EVIL-1,WT-BTN-2\n"},
        "PUT /api/v1/gateways/{gateway_id}/config-assignment": {"group": "evil"},
        "POST /api/v1/installations": {"resident_ref": "R-EVIL01", "location": "HOME-OSL-0002", "kit": a["kit"],
                                       "consent_kind": "consent", "consent_date": "2026-11-01"},
        "PUT /api/v1/installations/{code}/checklist/{serial}": {"answers": {"responder": "x"}},
        "POST /api/v1/installations/{code}/complete": {},
        "PUT /api/v1/installations/{code}/consent": {"kind": "consent", "date": "2026-11-01"},
        "POST /api/v1/installations/{code}/deinstall": {"to": "VAN-OSL-2"},
        "POST /api/v1/installations/{code}/move": {"to": "HOME-OSL-0002"},
        "POST /api/v1/installations/{code}/privacy-verification": {"resident_ref": a["residents"][0]},
        "PUT /api/v1/installations/{code}/routing": {"routing": routing},
        "POST /api/v1/installations/{code}/test-alarms": {"device_id": a["sensor"]["hw_id"], "event_id": "e-1"},
        "POST /api/v1/installations/{code}/commands": {"cmd": "pair", "args": {"device": a["sensor"]["hw_id"]}},
        "POST /api/v1/items": {"serial": "SN-EVIL-2", "model": "WT-BTN-2", "location": "WH-OSL"},
        "POST /api/v1/items/{key}/move": {"to": "WH-BGO", "reason": "x"},
        "POST /api/v1/items/{key}/transition": {"state": "repair", "reason": "x"},
        "POST /api/v1/kit-templates": {"code": "b-kit", "name": "B kit", "parts": {"button": 1}},
        "POST /api/v1/kits": {"template": "safety-alarm", "serials": a["kit_serials"]},
        "POST /api/v1/locations": {"code": "HOME-EVIL", "kind": "home", "municipality": A},
        "PUT /api/v1/me/password": {"current_password": "wrong", "new_password": "whatever long"},
        "POST /api/v1/models": {"code": "B-MODEL-1", "name": "B model", "role": "button", "radio": "ble",
                                "firmware_family": "wt-sensor"},
        "POST /api/v1/municipalities": {"id": "9999", "name": "Nowhere"},
        "POST /api/v1/privacy/purges": {"code": "I-000001", "now": True},
        "POST /api/v1/release-keys": {"public_pem": "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n",
                                      "name": "evil"},
        "POST /api/v1/releases": {"signed": {}, "artifact_base64": "eA=="},
        "POST /api/v1/rollouts": {"release_id": "gateway@0.2.0", "municipality": A},
        "PUT /api/v1/statistics/baselines/{municipality}": {"night_checks_per_night": 3},
        "PUT /api/v1/stock/reorder-points/{location}/{model}": {"min_qty": 1},
        "POST /api/v1/tokens": {"user": "tech.osl", "name": "stolen"},
        "POST /api/v1/users": {"name": "evil.osl", "role": "admin", "municipalities": [A], "password": "long enough 1"},
        "PUT /api/v1/users/{name}/active": {"active": False},
        "PUT /api/v1/users/{name}/password": {"new_password": "taken over 123"},
        "PUT /api/v1/users/{name}/scope": {"add": [B]},
        "POST /api/v1/login": {"user": "x", "password": "y"},
        "POST /api/v1/gateways/{gateway_id}/enrolment-codes": {"ttl_s": 600},
    }


def operations(doc: dict[str, Any]):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def fill(path: str, values: dict[str, str]) -> str:
    area = path.split("/")[3] if path.startswith("/api/v1/") else ""
    area = {"config": "config"}.get(area, area)

    def sub(m: re.Match) -> str:
        name = m.group(1)
        for k in (f"{name}@{area}", f"{name}@config" if "/config/templates" in path else "", name):
            if k in values:
                return values[k]
        raise AssertionError(f"no value for path parameter {name} of {path}: add it to PATH")
    return re.sub(r"\{(\w+)\}", sub, path)


def call(api, method: str, path: str, op: dict[str, Any], a: dict[str, Any], headers: dict[str, str]):
    url = fill(path, PATH(a))
    params = {p["name"]: A for p in op.get("parameters", []) if p["in"] == "query" and p["name"] == "municipality"}
    if path == "/api/v1/statistics/benefits":
        params.update({"from": "2026-01-01", "to": "2027-01-01"})
    body = None
    if "requestBody" in op:
        key = f"{method} {path}"
        assert key in BODIES(a), f"no request body for {key}: add one aimed at municipality A to BODIES"
        body = BODIES(a)[key]
    return api.request(method, url, params=params, json=body, headers=headers), url + json.dumps(body) + str(params)


def test_every_operation_needs_a_token(env):
    world, api, a, doc = env
    expired = world.token("admin", ttl_s=1)
    world.clock.advance(2)
    for method, path, op in operations(doc):
        if op["x-scope"] == "public":
            continue
        for headers in ({}, auth("flt_not-a-token"), auth(expired)):
            r, sent = call(api, method, path, op, a, headers)
            assert r.status_code == 401, f"{method} {path} with {headers}: {r.status_code} {r.text[:200]}"
            assert r.headers["content-type"] == "application/problem+json"
            assert not [s for s in a["secrets"] if s in r.text and s not in sent]


@pytest.mark.parametrize("role", list(B_USERS), ids=lambda r: r.value)
def test_every_role_of_another_municipality_gets_nothing_of_municipality_a(env, role):
    world, api, a, doc = env
    h = auth(world.token(B_USERS[role]))
    checked = 0
    for method, path, op in operations(doc):
        scope = op["x-scope"]
        if scope == "public" or path == "/api/v1/logout":
            continue
        r, sent = call(api, method, path, op, a, h)
        leaked = [s for s in a["secrets"] if s in r.text and s not in sent]
        assert not leaked, f"{role.value} {method} {path}: {r.status_code} leaks {leaked}: {r.text[:300]}"
        assert r.status_code < 500, f"{role.value} {method} {path}: {r.status_code} {r.text[:300]}"
        if scope == "municipality":
            assert r.status_code in (403, 404), f"{role.value} {method} {path}: {r.status_code} {r.text[:300]}"
            assert r.headers["content-type"] == "application/problem+json"
            assert A not in r.json()["detail"] or A in sent
            checked += 1
    assert checked >= 50
    # and nothing of A changed
    admin = a["admin"]
    assert api.get("/api/v1/installations/I-000001", headers=admin).json()["status"] == "active"
    assert api.get("/api/v1/users/tech.osl", headers=admin).json()["active"] is True
    assert api.get("/api/v1/items/SN-EVIL-2", headers=admin).status_code == 404
    assert api.get(f"/api/v1/tokens", headers=admin).json()["items"][0]["revoked_at"] is None
    assert api.get("/api/v1/rollouts/ro-osl", headers=admin).json()["state"] != "paused"


def test_the_owner_municipality_does_reach_its_data(env):
    """The other side of the coin: the same calls succeed for A's own technician (so the 404s above
    are about scope, not about broken requests)."""
    world, api, a, doc = env
    h = auth(world.token("tech.osl"))
    for path in ("/api/v1/installations/I-000001", f"/api/v1/items/{a['sensor']['serial']}",
                 f"/api/v1/kits/{a['kit']}", f"/api/v1/gateways/{a['gateway']}/config",
                 "/api/v1/config/templates/municipality/0301"):
        r = api.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)
