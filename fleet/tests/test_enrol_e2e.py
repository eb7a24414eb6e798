"""Enrolment end to end: the fleet service on a real TLS socket, the real `gateway enrol` command.

A technician gets a one-time code; `gateway enrol` makes the gateway's keys on the gateway,
checks the fleet's certificate (CA or pinned fingerprint) before sending the code, and writes
the trust anchors and its configuration with the right modes. A replayed, expired or wrong
code is refused with a clear message, and nothing is written when it fails. The fleet then
sends a device key sealed to the gateway's key, which only that gateway opens."""
from __future__ import annotations

import hashlib
import json
import os
import ssl
import stat
import time
import tomllib

import httpx
import pytest

from fleet.tests.conftest import FakeClock
from fleet.tests.test_api_support import A, PASSWORD, app_for, build_world
from fleet.tests.test_enrolment_support import TlsServer, gateway_cli, gateway_python, make_enrolment

pytestmark = [pytest.mark.security, pytest.mark.slow]

CONFIG = """\
# Gateway at a home in Oslo (this comment must survive enrolment)
[gateway]
id = "{gw}"
data_dir = "{data}"

[uplink]
host = "broker.example.net"   # replaced by the fleet's broker
keepalive_s = 30

[rules.bed]
max_out_min = 25
"""


def _tree(d):
    """Every file under ``d`` with its mode and content hash (to prove nothing changed)."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, d)] = (stat.S_IMODE(os.stat(p).st_mode), hashlib.sha256(open(p, "rb").read()).hexdigest())
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enrol-e2e")
    clock = FakeClock(time.time())
    world = build_world(f"sqlite:///{tmp / 'fleet.db'}", tmp, clock)
    enrol = make_enrolment(tmp / "pki", broker_host="broker.example.net", broker_port=8883)
    from testkit.pki import make_pki

    https = make_pki(tmp / "https")
    app = app_for(world, enrolment_file=str(enrol.settings))
    with TlsServer(app, https) as server:
        api = httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=str(https.ca)), timeout=30)
        admin = {"Authorization": "Bearer " + api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD})
                 .json()["token"]}
        gw = api.get("/api/v1/installations/I-000001", headers=admin).json()["gateway_id"]
        from contracts.release import generate_key

        _, release_pub = generate_key()
        assert api.post("/api/v1/release-keys", headers=admin, json={"public_pem": release_pub.decode(),
                                                                      "name": "ci"}).status_code == 201
        yield {"world": world, "clock": clock, "server": server, "api": api, "admin": admin, "gw": gw,
               "enrol": enrol, "https": https, "tmp": tmp, "release_pub": release_pub}
        api.close()


def _code(f, ttl_s=None, user_headers=None):
    r = f["api"].post(f"/api/v1/gateways/{f['gw']}/enrolment-codes", headers=user_headers or f["admin"],
                      json={} if ttl_s is None else {"ttl_s": ttl_s})
    assert r.status_code == 201, r.text
    return r.json()


def _gateway_dir(f, name):
    d = f["tmp"] / name
    (d / "etc").mkdir(parents=True)
    cfg = d / "etc" / "gateway.toml"
    cfg.write_text(CONFIG.format(gw=f["gw"], data=d / "data"))
    cfg.chmod(0o640)
    return d, cfg


def test_enrol_writes_keys_anchors_and_config_with_the_right_modes(fleet):
    f = fleet
    code = _code(f)
    assert code["enrol_command"].startswith("gateway enrol --fleet") and len(code["code"]) == 19
    d, cfg = _gateway_dir(f, "gw-ok")
    p = gateway_cli("enrol", "--fleet", f["server"].url, "--code", code["code"].lower().replace("-", " "),
                    "--ca", str(f["https"].ca), "--config", str(cfg), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    trust = d / "etc" / "trust"
    modes = {name: m for name, (m, _) in _tree(trust).items()}
    assert modes == {"gateway-x25519.key": 0o600, "gateway-x25519.pub": 0o644, "mqtt-client.key": 0o600,
                     "mqtt-client.pem": 0o644, "broker-ca.pem": 0o644, "fleet-control.pub": 0o644,
                     "release-1.pub": 0o644, "enrolment.json": 0o644}
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o640                     # the file keeps its mode
    assert (trust / "fleet-control.pub").read_bytes() == f["enrol"].control_pub
    assert (trust / "broker-ca.pem").read_bytes() == f["enrol"].broker_pki.ca.read_bytes()
    assert (trust / "release-1.pub").read_bytes() == f["release_pub"]
    text = cfg.read_text()
    assert "this comment must survive enrolment" in text and "max_out_min = 25" in text
    c = tomllib.loads(text)
    assert c["gateway"]["identity_key"] == str(trust / "gateway-x25519.key")
    assert c["uplink"]["host"] == "broker.example.net" and c["uplink"]["port"] == 8883
    tls = c["uplink"]["tls"]
    assert tls["enabled"] is True and tls["username"] == f["gw"] and len(tls["password"]) >= 40
    assert tls["cert"] == str(trust / "mqtt-client.pem") and tls["ca"] == str(trust / "broker-ca.pem")
    assert c["trust"] == {"fleet_key": str(trust / "fleet-control.pub"), "broker_ca": str(trust / "broker-ca.pem"),
                          "release_keys": [str(trust / "release-1.pub")]}
    # the certificate names the gateway and was signed by the fleet's gateway CA, for the key made here
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((trust / "mqtt-client.pem").read_bytes())
    key = serialization.load_pem_private_key((trust / "mqtt-client.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate(f["enrol"].gateway_ca.read_bytes())
    assert cert.subject.rfc4514_string() == f"CN={f['gw']}" and cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    # the configuration loads as the daemon would load it
    check = gateway_cli("config", "check", str(cfg))
    assert check.returncode == 0, check.stderr
    # the fleet knows the identity (no secret in the read) and audited the redemption
    ident = f["api"].get(f"/api/v1/gateways/{f['gw']}/enrolment", headers=f["admin"]).json()
    assert ident["x25519_fingerprint"] == out["x25519_fingerprint"] and ident["cert_serial"] == out["cert_serial"]
    assert tls["password"] not in json.dumps(ident)
    audit = f["api"].get("/api/v1/audit", headers=f["admin"], params={"entity": "gateway", "entity_id": f["gw"]}).json()
    assert {"enrolment.code", "enrolment.redeem"} <= {e["action"] for e in audit["items"]}
    # the broker's password file holds a hash of that password, never the password
    passwd = f["api"].get("/api/v1/enrolment/broker-passwd", headers=f["admin"]).text
    assert passwd.startswith(f"{f['gw']}:$7$101$") and tls["password"] not in passwd


def test_a_replayed_an_expired_and_a_wrong_code_are_refused_and_nothing_is_written(fleet):
    f = fleet
    used = _code(f)
    d, cfg = _gateway_dir(f, "gw-refused")
    assert gateway_cli("enrol", "--fleet", f["server"].url, "--code", used["code"], "--ca", str(f["https"].ca),
                       "--config", str(cfg), "--trust-dir", str(d / "first")).returncode == 0
    before = _tree(d)
    replay = gateway_cli("enrol", "--fleet", f["server"].url, "--code", used["code"], "--ca", str(f["https"].ca),
                         "--config", str(cfg))
    assert replay.returncode == 77 and "already used at" in replay.stderr and "a code works once" in replay.stderr
    assert "fix: ask" in replay.stderr
    expiring = _code(f, ttl_s=60)
    f["clock"].advance(61)
    expired = gateway_cli("enrol", "--fleet", f["server"].url, "--code", expiring["code"], "--ca",
                          str(f["https"].ca), "--config", str(cfg))
    assert expired.returncode == 77 and "expired at" in expired.stderr
    wrong = gateway_cli("enrol", "--fleet", f["server"].url, "--code", "AAAA-BBBB-CCCC-DDDD", "--ca",
                        str(f["https"].ca), "--config", str(cfg))
    assert wrong.returncode == 77 and "not known" in wrong.stderr
    assert _tree(d) == before                       # no key, anchor, staging file or config change
    assert not [n for n in os.listdir(d / "etc") if n.startswith(".")]
    audit = f["api"].get("/api/v1/audit", headers=f["admin"], params={"entity": "gateway"}).json()["items"]
    reasons = [e["detail"]["reason"] for e in audit if e["action"] == "enrolment.refused"]
    assert {"used", "expired", "unknown"} <= set(reasons)


def test_the_certificate_is_checked_before_the_code_is_sent(fleet):
    f = fleet
    code = _code(f)
    d, cfg = _gateway_dir(f, "gw-pin")
    from testkit.pki import make_pki

    other = make_pki(f["tmp"] / "other-ca", prefix="o-")
    untrusted = gateway_cli("enrol", "--fleet", f["server"].url, "--code", code["code"], "--ca", str(other.ca),
                            "--config", str(cfg))
    assert untrusted.returncode == 69 and "is not trusted" in untrusted.stderr
    bad_pin = gateway_cli("enrol", "--fleet", f["server"].url, "--code", code["code"], "--pin", "sha256:" + "ab" * 32,
                          "--config", str(cfg))
    assert bad_pin.returncode == 69 and "not the pinned" in bad_pin.stderr
    plain = gateway_cli("enrol", "--fleet", f"http://localhost:{f['server'].port}", "--code", code["code"],
                        "--config", str(cfg))
    assert plain.returncode == 2 and "not an https:// URL" in plain.stderr
    assert not (d / "etc" / "trust").exists()
    # the code was never sent: it still works, with the right pin
    ok = gateway_cli("enrol", "--fleet", f["server"].url, "--code", code["code"], "--pin", f["server"].pin(),
                     "--config", str(cfg))
    assert ok.returncode == 0, ok.stderr


def test_a_configuration_that_would_not_load_is_not_written(fleet):
    f = fleet
    code = _code(f)
    d, cfg = _gateway_dir(f, "gw-badcfg")
    cfg.write_text(cfg.read_text() + "\n[supervision]\ntick_s = 0\n")
    before = _tree(d)
    p = gateway_cli("enrol", "--fleet", f["server"].url, "--code", code["code"], "--ca", str(f["https"].ca),
                    "--config", str(cfg))
    assert p.returncode == 2 and "would not load" in p.stderr and "supervision.tick_s" in p.stderr
    assert _tree(d) == before and not (d / "etc" / "trust").exists()


def test_a_device_key_reaches_the_enrolled_gateway_sealed_and_only_it_opens_it(fleet):
    f = fleet
    code = _code(f)
    d, cfg = _gateway_dir(f, "gw-keys")
    assert gateway_cli("enrol", "--fleet", f["server"].url, "--code", code["code"], "--ca", str(f["https"].ca),
                       "--config", str(cfg)).returncode == 0
    api, admin = f["api"], f["admin"]
    inst = api.get("/api/v1/installations/I-000001", headers=admin).json()
    dev = next(x for x in inst["devices"] if x["role"] == "button")["hw_id"]
    r = api.put(f"/api/v1/config/templates/device/{dev}/keys/role", headers=admin, json={"value": "button"})
    assert r.status_code == 200, r.text
    made = api.post(f"/api/v1/devices/{dev}/keys", headers=admin)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert api.post(f"/api/v1/devices/{dev}/keys/{made.json()['version']}/activate", headers=admin).status_code == 200
    # every read: no key
    for path in (f"/api/v1/devices/{dev}/keys", f"/api/v1/gateways/{f['gw']}/config"):
        r = api.get(path, headers=admin)
        assert r.status_code == 200 and key not in r.text, (path, r.text[:300])
    # what a push carries (the rendered configuration, as ConfigService.push publishes it): sealed
    from fleet.clock import FixedClock
    from fleet.config import ConfigService, Keyring
    from fleet.config._sql import SqlConfigStore
    from fleet.store import open_store

    with open_store(f["world"].url, migrate=False) as store, store.transaction(write=False) as tx:
        conf = ConfigService(SqlConfigStore(tx, secrets=Keyring.load(f["world"].kek_file)),
                             FixedClock(f["clock"].time())).render(f["gw"])
    sealed = conf["devices"][dev]["key"]
    assert sealed.startswith("x25519:v1:") and key not in json.dumps(conf)
    layer = d / "pushed.json"
    layer.write_text(json.dumps({"devices": {dev: conf["devices"][dev]}}))
    probe = ("import json,sys; from gateway.config import load_config\n"
             f"cfg = load_config({str(cfg)!r}, env={{}}, fleet=json.load(open({str(layer)!r})))\n"
             f"print(cfg.device_keys[{dev!r}].hex())")
    p = gateway_python(probe)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == key
