"""The broker side of enrolment, on the reference configuration (docs/mosquitto.conf and
docs/mosquitto.acl as they are, paths and ports swapped for test ones): the broker trusts the
fleet's gateway CA for client certificates (``cafile``) and reads the password file the fleet
exports (``GET /api/v1/enrolment/broker-passwd``: hashes only). An enrolled gateway logs in over
mutual TLS with what `gateway enrol` got and may write only its own topics; a wrong password,
a revoked gateway or a certificate of another CA is refused."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleet.mqtt import MqttClient, MqttError, parse_url
from fleet.tests.test_api_support import PASSWORD, app_for, auth, client, world  # noqa: F401 - the fixture
from fleet.tests.test_enrolment_support import enrol_in_process, make_enrolment

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.security, pytest.mark.slow]


def _reference_broker(d: Path, *, cafile: Path, server, passwd: Path):
    from testkit.refbroker import start_reference_broker

    b = start_reference_broker(d, passwd=passwd, pki=server, cafile=cafile)
    return b.process, b.tls_port


def test_an_enrolled_gateway_logs_in_over_mutual_tls_and_keeps_to_its_own_topics(world, tmp_path):
    enrol = make_enrolment(tmp_path / "enrol")
    api = client(app_for(world, enrolment_file=str(enrol.settings)))
    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    gws = sorted({i["gateway_id"] for i in api.get("/api/v1/installations", headers=admin).json()["items"]})[:2]
    answers = {}
    for gw in gws:
        answers[gw] = {}
        enrol_in_process(api, admin, gw, answers[gw])
    passwd = tmp_path / "passwd"
    r = api.get("/api/v1/enrolment/broker-passwd", headers=admin)
    passwd.write_text(r.text)
    for a in answers.values():
        assert a["mqtt"]["password"] not in r.text
    broker, port = _reference_broker(tmp_path, cafile=enrol.gateway_ca, server=enrol.broker_pki, passwd=passwd)

    def gateway(gw: str, *, password: str | None = None, cert=None, key=None) -> MqttClient:
        a = answers[gw]
        d = tmp_path / gw
        d.mkdir(exist_ok=True)
        (d / "ca.pem").write_text(a["broker"]["ca_pem"])
        (d / "cert.pem").write_text(a["mqtt"]["cert_pem"])
        (d / "key.pem").write_bytes(a["tls_key_pem"])
        s = parse_url(f"mqtts://localhost:{port}", username=gw, password=password or a["mqtt"]["password"],
                      ca_file=d / "ca.pem", cert_file=cert or d / "cert.pem", key_file=key or d / "key.pem")
        return MqttClient.from_settings(s, client_id=f"{gw}-test-{time.monotonic_ns()}")

    try:
        a, b = gws
        gw_a = gateway(a).connect(timeout_s=10)
        gw_a.publish(f"wt/v1/gw/{a}/health", json.dumps({"schema": "wt.health/1"}).encode())
        with pytest.raises(MqttError, match="Not authorized"):
            gw_a.publish(f"wt/v1/gw/{b}/health", b"{}")          # never for another gateway
        with pytest.raises(MqttError, match="Not authorized"):
            gw_a.publish(f"wt/v1/gw/{a}/ack", b"{}")             # nor the platform's acks
        gw_a.close()
        with pytest.raises(MqttError):
            gateway(a, password="wrong-" + answers[a]["mqtt"]["password"]).connect(timeout_s=5)
        # the certificate is a second factor: gateway b's password with a certificate of another CA
        from testkit.pki import make_pki

        other = make_pki(tmp_path / "other", prefix="o-")
        with pytest.raises(MqttError):
            gateway(b, cert=other.client_cert, key=other.client_key).connect(timeout_s=5)
        # revoked: the next password-file export drops it (the broker reloads on SIGHUP)
        assert api.post(f"/api/v1/gateways/{b}/enrolment/revoke", headers=admin).status_code == 200
        passwd.write_text(api.get("/api/v1/enrolment/broker-passwd", headers=admin).text)
        broker.proc.send_signal(1)
        time.sleep(0.5)
        with pytest.raises(MqttError):
            gateway(b).connect(timeout_s=5)
        gateway(a).connect(timeout_s=10).close()
    finally:
        broker.stop()
