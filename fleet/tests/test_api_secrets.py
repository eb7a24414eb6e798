"""Configuration secrets (device keys, MQTT passwords): AES-GCM at rest under a key-encryption key
outside the database, never returned by a read (API or `fleet config templates`), decrypted only
for the push to the gateway, and re-sealable under a new key (rotation)."""
from __future__ import annotations

import json

import pytest

from fleet.config import Keyring
from fleet.tests.test_api_support import (A, DEVICE_KEY, MQTT_PASSWORD, PASSWORD, app_for, auth, client,  # noqa: F401
                                          world)


def _raw(world, sql):  # noqa: F811
    from fleet.store import open_store

    with open_store(world.url, migrate=False) as store, store.transaction(write=False) as tx:
        return tx.query(sql)


@pytest.fixture
def setup(world):  # noqa: F811
    api = client(app_for(world))
    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    inst = api.get("/api/v1/installations/I-000001", headers=admin).json()
    sensor = next(d for d in inst["devices"] if d["role"] == "button")
    for scope, sid, key, value in (("municipality", A, "uplink.tls.username", "gw-osl"),
                                   ("municipality", A, "uplink.tls.password", MQTT_PASSWORD),
                                   ("device", sensor["hw_id"], "role", "button"),
                                   ("device", sensor["hw_id"], "key", DEVICE_KEY)):
        r = api.put(f"/api/v1/config/templates/{scope}/{sid}/keys/{key}", headers=admin, json={"value": value})
        assert r.status_code == 200, r.text
        assert MQTT_PASSWORD not in r.text and DEVICE_KEY not in r.text
    return api, admin, inst["gateway_id"], sensor


def test_secrets_are_encrypted_at_rest_and_never_read_back(world, setup):  # noqa: F811
    api, admin, gw, sensor = setup
    bodies = " ".join(r["body"] for r in _raw(world, "SELECT body FROM config_template"))
    assert MQTT_PASSWORD not in bodies and DEVICE_KEY not in bodies and bodies.count("enc:v1:k1:") == 2
    t = api.get("/api/v1/config/templates", headers=admin).json()["items"]
    muni = next(x for x in t if x["scope"] == "municipality")
    pw = muni["body"]["uplink"]["tls"]["password"]
    assert pw["secret"] == "set" and len(pw["fingerprint"]) == 12 and muni["body"]["uplink"]["tls"]["username"] == "gw-osl"
    dev = next(x for x in t if x["scope"] == "device")
    assert dev["body"]["key"]["secret"] == "set"
    for path in (f"/api/v1/gateways/{gw}/config", f"/api/v1/gateways/{gw}/config/diff",
                 f"/api/v1/gateways/{gw}/config/check", "/api/v1/config/templates/municipality/0301",
                 f"/api/v1/config/templates/device/{sensor['hw_id']}"):
        r = api.get(path, headers=admin)
        assert r.status_code == 200, (path, r.text)
        assert MQTT_PASSWORD not in r.text and DEVICE_KEY not in r.text, path
    shown = api.get(f"/api/v1/gateways/{gw}/config", headers=admin).json()["config"]
    assert shown["devices"][sensor["hw_id"]]["key"] == {"secret": "set", "fingerprint": dev["body"]["key"]["fingerprint"]}


def test_the_push_carries_the_plain_secret_to_the_gateway_only(world, setup):  # noqa: F811
    from fleet.clock import FixedClock
    from fleet.config import ConfigService
    from fleet.config._sql import SqlConfigStore
    from fleet.store import open_store

    api, admin, gw, sensor = setup
    sent = []

    class Publisher:
        def publish(self, topic, payload, *, qos=1, retain=False):
            sent.append(json.loads(payload))

    with open_store(world.url, migrate=False) as store, store.transaction() as tx:
        v = ConfigService(SqlConfigStore(tx, secrets=Keyring.load(world.kek_file)), FixedClock(world.clock.time())) \
            .push(gw, Publisher())
    assert sent[0]["config"]["uplink"]["tls"]["password"] == MQTT_PASSWORD
    assert sent[0]["config"]["devices"][sensor["hw_id"]]["key"] == DEVICE_KEY
    stored = _raw(world, "SELECT body FROM config_version")[0]["body"]
    assert MQTT_PASSWORD not in stored and DEVICE_KEY not in stored and "enc:v1:" in stored
    r = api.get(f"/api/v1/gateways/{gw}/config", headers=admin, params={"version": v.version})
    assert r.status_code == 200 and MQTT_PASSWORD not in r.text and DEVICE_KEY not in r.text


def test_another_municipalitys_technician_sees_no_templates_cli_and_api(world, setup, capsys):  # noqa: F811
    """It used to: `fleet config templates` listed every municipality's device keys to any technician."""
    from fleet.cli import main

    api, admin, gw, sensor = setup
    r = api.get("/api/v1/config/templates", headers=auth(world.token("tech.bgo")))
    assert r.status_code == 200 and r.json()["items"] == []
    env = {"FLEET_DB": world.url, "FLEET_USER": "tech.bgo"}
    assert main(["--json", "config", "templates"], env=env) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["--json", "config", "templates"], env={**env, "FLEET_USER": "tech.osl"}) == 0
    out = capsys.readouterr().out
    rows = json.loads(out)
    assert {r["scope"] for r in rows} == {"municipality", "device"}
    assert MQTT_PASSWORD not in out and DEVICE_KEY not in out and "enc:v1" not in out


def test_without_a_key_encryption_key_a_secret_is_refused_and_nothing_stored(world):  # noqa: F811
    from fleet.api import ApiSettings, create_app

    api = client(create_app(ApiSettings(db_url=world.url), clock=world.clock))
    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    ok = api.put(f"/api/v1/config/templates/municipality/{A}/keys/uplink.tls", headers=admin,
                 json={"value": {"username": "gw-osl"}})
    assert ok.status_code == 200                                   # non-secret configuration works without a KEK
    before = _raw(world, "SELECT body FROM config_template")
    r = api.put(f"/api/v1/config/templates/municipality/{A}/keys/uplink.tls.password", headers=admin,
                json={"value": MQTT_PASSWORD})
    assert r.status_code == 422 and "FLEET_KEK_FILE" in r.json()["errors"][0]["fix"]
    assert r.json()["errors"][0]["field"] == "uplink.tls.password" and MQTT_PASSWORD not in r.text
    assert _raw(world, "SELECT body FROM config_template") == before


def test_rotation_reseals_every_secret_under_the_new_key(world, setup, tmp_path):  # noqa: F811
    api, admin, gw, sensor = setup
    old = world.kek_file.read_text()
    both = tmp_path / "kek2"
    both.write_text(Keyring.new_line("k2") + "\n" + old)              # new key first, old one still there
    api2 = client(app_for(world.__class__(world.url, both, world.clock)))
    r = api2.post("/api/v1/config/secrets/reseal", headers=admin)
    assert r.status_code == 200 and r.json()["rows_resealed"] == 2
    bodies = " ".join(x["body"] for x in _raw(world, "SELECT body FROM config_template"))
    assert "enc:v1:k1:" not in bodies and bodies.count("enc:v1:k2:") == 2
    only_new = tmp_path / "kek3"
    only_new.write_text(both.read_text().splitlines()[0] + "\n")     # the old key can now be retired
    api3 = client(app_for(world.__class__(world.url, only_new, world.clock)))
    r = api3.get(f"/api/v1/gateways/{gw}/config/check", headers=admin)
    assert r.status_code == 200 and r.json()["valid"] in (True, False)
    r = client(app_for(world)).get(f"/api/v1/gateways/{gw}/config/check", headers=admin)     # only k1: refused
    assert r.status_code == 422 and "k2" in r.json()["detail"]


def test_a_ciphertext_moved_to_another_template_does_not_open(world, setup):  # noqa: F811
    from fleet.config import ConfigError
    from fleet.config._secrets import SecretCodec

    codec = SecretCodec(Keyring.load(world.kek_file))
    sealed = codec.seal({"key": DEVICE_KEY}, "device:a4c138000001", device_scope=True)
    assert codec.open(sealed, "device:a4c138000001", device_scope=True) == {"key": DEVICE_KEY}
    with pytest.raises(ConfigError, match="does not open"):
        codec.open(sealed, "device:a4c138000002", device_scope=True)
