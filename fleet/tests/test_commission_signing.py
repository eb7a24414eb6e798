"""Commissioning commands are signed by the service, not on the technician's machine:
``POST /installations/{code}/commands`` signs ping, pair and test_mode for the installation's
own gateway (the store's sequence, audited) and nothing else; ``fleet install commission``
publishes what the service signed, with no control key in its process."""
from __future__ import annotations

import json
import time

import pytest

from contracts.control import Opened, load_private_file, open_envelope
from fleet.cli import main
from fleet.tests.test_api_support import PASSWORD, A, app_for, auth, client, world  # noqa: F401 - fixture
from fleet.tests.test_commission import ScriptedGateway, _rename_gateway, installation  # noqa: F401 - fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _login(api, user: str) -> dict[str, str]:
    r = api.post("/api/v1/login", json={"user": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return auth(r.json()["token"])


def _new_installation(api, tech) -> tuple[str, str, list[dict]]:
    """An installation of municipality A in commissioning: its code, gateway and sensors."""
    kit = next(k["code"] for k in api.get("/api/v1/kits", headers=tech, params={"state": "assembled"}).json()["items"])
    r = api.post("/api/v1/installations", headers=tech, json={
        "resident_ref": "R-SIGN42", "location": "HOME-OSL-0003", "kit": kit, "consent_kind": "consent",
        "consent_date": "2026-11-20"})
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    plan = api.get(f"/api/v1/installations/{code}/commissioning", headers=tech).json()
    return code, plan["gateway_id"], plan["devices"]


def _open(payload: str | bytes, gateway_id: str, public, now: float) -> Opened:
    opened = open_envelope(payload if isinstance(payload, bytes) else payload.encode(), gateway_id=gateway_id,
                           keys=[public], now=now)
    assert isinstance(opened, Opened), opened          # signed by the fleet's key, for this gateway, not expired
    return opened


@pytest.fixture
def api(world):  # noqa: F811
    return client(app_for(world))


def test_the_service_signs_commissioning_commands_with_the_fleets_key_and_the_stores_sequence(
        world, api, fleet_control_key):  # noqa: F811
    tech, admin = _login(api, "tech.osl"), _login(api, "admin")
    code, gw, devs = _new_installation(api, tech)
    public = load_private_file(fleet_control_key).public_key()
    asked = [("ping", {}), ("pair", {"device": devs[0]["hw_id"], "role": devs[0]["role"], "serial": devs[0]["serial"]}),
             ("test_mode", {"devices": sorted(d["hw_id"] for d in devs), "enabled": True}),
             ("test_mode", {"devices": sorted(d["hw_id"] for d in devs), "enabled": False, "duration_s": 600})]
    seqs, ids = [], []
    for cmd, args in asked:
        r = api.post(f"/api/v1/installations/{code}/commands", headers=tech, json={"cmd": cmd, "args": args})
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["gateway_id"] == gw
        opened = _open(got["payload"], gw, public, world.clock.time())
        assert opened.kind == "wt.cmd/1" and opened.seq == got["seq"]
        body = json.loads(opened.body)
        assert body == {"schema": "wt.cmd/1", "cmd_id": got["cmd_id"], "cmd": cmd, "args": args}
        seqs.append(opened.seq)
        ids.append(got["cmd_id"])
    assert seqs == sorted(set(seqs))                              # strictly increasing for the gateway
    assert len(set(ids)) == len(ids)
    # the sequence is the store's: a config push to the same gateway continues above it
    from fleet.store import open_store

    with open_store(world.url, migrate=False) as store, \
            store.transaction(write=False) as tx:
        assert tx.scalar("SELECT seq FROM control_seq WHERE gateway_id = ?", (gw,)) == seqs[-1]
    rows = api.get("/api/v1/audit", headers=admin, params={"entity": "installation", "entity_id": code}).json()["items"]
    cmds = [r for r in rows if r["action"] == "installation.command"]
    assert len(cmds) == 4 and all(r["actor"] == "tech.osl" and r["municipality_id"] == A for r in cmds)
    details = sorted((r["detail"] for r in cmds), key=lambda d: d["seq"])
    assert [d["cmd"] for d in details] == ["ping", "pair", "test_mode", "test_mode"]
    assert details[1]["device"] == devs[0]["hw_id"] and details[2]["devices"] == sorted(d["hw_id"] for d in devs)
    assert [d["cmd_id"] for d in details] == ids and all(d["gateway"] == gw for d in details)
    text = json.dumps(cmds)
    assert "PRIVATE" not in text and "sig" not in text and "payload" not in text   # never the key or the signature


@pytest.mark.security
def test_F1_the_service_signs_only_commissioning_commands_for_the_installations_own_gateway(
        world, api):  # noqa: F811
    tech, admin = _login(api, "tech.osl"), _login(api, "admin")
    code, gw, devs = _new_installation(api, tech)
    url = f"/api/v1/installations/{code}/commands"
    hw = devs[0]["hw_id"]

    def refused(body, status: int, *words: str) -> None:
        r = api.post(url, headers=tech, json=body)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        for w in words:
            assert w in r.text, (w, r.text)

    refused({"cmd": "update", "args": {"version": "6.6.6"}}, 422, "update", "ping, pair, test_mode")
    refused({"cmd": "ota", "args": {}}, 422, "ping, pair, test_mode")
    refused({"cmd": "ping", "args": {"x": 1}}, 422, "ping takes no argument x")
    refused({"cmd": "pair", "args": {"device": "a4c13800dead"}}, 422, "not a device of installation " + code, hw)
    refused({"cmd": "pair", "args": {"device": hw, "key": "00" * 16}}, 422, "pair takes no argument key")
    refused({"cmd": "pair", "args": {"device": hw, "role": "gateway"}}, 422, "args.role")
    refused({"cmd": "test_mode", "args": {"devices": [hw], "enabled": True, "duration_s": 7200}}, 422,
            "args.duration_s", "3600")
    refused({"cmd": "test_mode", "args": {"devices": [gw], "enabled": True}}, 422, "not a device of installation")
    refused({"cmd": "test_mode", "args": {"devices": [hw]}}, 422, "args.enabled")
    # another gateway: the service signs only for the installation's own (it is not a parameter)
    refused({"cmd": "ping", "args": {}, "gateway": "gw-other"}, 422)
    # a user of another municipality: refused, nothing signed
    r = api.post(url, headers=_login(api, "tech.bgo"), json={"cmd": "ping", "args": {}})
    assert r.status_code in (403, 404) and gw not in r.text and "payload" not in r.text
    # the installation is no longer commissioning (I-000001 of A is active): 409
    r = api.post("/api/v1/installations/I-000001/commands", headers=tech, json={"cmd": "ping", "args": {}})
    assert r.status_code == 409 and "is active, not commissioning" in r.json()["detail"], r.text
    rows = api.get("/api/v1/audit", headers=admin, params={"entity": "installation"}).json()["items"]
    assert not [r for r in rows if r["action"] == "installation.command"]       # nothing was signed


def test_the_service_signs_with_its_own_key_and_says_when_it_has_none(world, monkeypatch, tmp_path):  # noqa: F811
    from fleet.control import ENV_KEY_FILE, generate_key_files

    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    api = client(app_for(world))
    tech = _login(api, "tech.osl")
    code, gw, _ = _new_installation(api, tech)
    r = api.post(f"/api/v1/installations/{code}/commands", headers=tech, json={"cmd": "ping", "args": {}})
    assert r.status_code == 503 and ENV_KEY_FILE in r.json()["detail"], r.text
    key = load_private_file(generate_key_files(tmp_path / "svc-control.key")[0])
    from fleet.api import ApiSettings, create_app

    api = client(create_app(ApiSettings(db_url=world.url, kek_file=str(world.kek_file)), clock=world.clock,
                            control_key=key))
    r = api.post(f"/api/v1/installations/{code}/commands", headers=tech, json={"cmd": "ping", "args": {}})
    assert r.status_code == 201, r.text
    _open(r.json()["payload"], gw, key.public_key(), world.clock.time())


def test_commission_cli_publishes_what_the_service_signed_with_no_control_key_in_the_tool(
        installation, mosquitto, sqlite_url, monkeypatch, tmp_path, capsys):  # noqa: F811
    """The tool's process has no FLEET_CONTROL_KEY_FILE and may not read one; only the service
    (the in-process app of ``--db``) is given the key, explicitly."""
    import fleet.api
    from fleet.control import ENV_KEY_FILE, ControlSigner, generate_key_files
    from fleet.mqtt import MqttClient

    key = load_private_file(generate_key_files(tmp_path / "service-control.key")[0])
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)

    def no_local_key(*a, **kw):
        raise AssertionError("something in the tool's process tried to load a control key from the environment")

    monkeypatch.setattr(ControlSigner, "from_env", classmethod(no_local_key))
    real_create_app = fleet.api.create_app
    apps = []

    def service_with_key(*a, **kw):           # the service side holds the key; the tool side does not
        apps.append(real_create_app(*a, control_key=key, **kw))
        return apps[-1]

    monkeypatch.setattr(fleet.api, "create_app", service_with_key)
    store, inst = installation
    gw = _rename_gateway(store, inst)
    seen: list[bytes] = []
    spy = MqttClient("127.0.0.1", mosquitto.port).connect()
    spy.subscribe(f"wt/v1/gw/{gw}/cmd", lambda topic, payload: seen.append(payload))
    fake_gw = ScriptedGateway(mosquitto.port, gw)
    try:
        rc = main(["--db", sqlite_url, "install", "commission", inst["code"], "--mqtt",
                   f"mqtt://127.0.0.1:{mosquitto.port}", "--timeout", "30", "--skip-discovery"],
                  env={"FLEET_USER": "tina"})
        deadline = time.monotonic() + 5
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        fake_gw.close()
        spy.close()
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert apps, "the in-process service was not built"
    assert fake_gw.configs and fake_gw.configs[-1]["version"] == 1          # the push: signed by the service too
    opened = [_open(p, gw, key.public_key(), time.time()) for p in seen]
    cmds = [json.loads(o.body) for o in opened]
    assert [c["cmd"] for c in cmds] == ["ping", "pair", "pair", "test_mode", "test_mode"]
    assert [o.seq for o in opened] == sorted({o.seq for o in opened})
    with store.transaction(write=False) as tx:
        audited = [json.loads(r["detail"]) for r in tx.query(
            "SELECT detail FROM audit_log WHERE action = 'installation.command' ORDER BY id")]
    assert [a["cmd_id"] for a in audited] == [c["cmd_id"] for c in cmds]   # every published command: the service's
