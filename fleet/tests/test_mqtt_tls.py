"""The fleet on the reference broker: docs/mosquitto.conf (TLS listener, client certificates,
``allow_anonymous false``) with docs/mosquitto.acl as is, paths and ports swapped for test
ones. The fleet logs in as its own user over mutual TLS, ingests through a shared
subscription, may write config/cmd but not a gateway's alarm topic; a gateway may not speak
for another gateway; refusals (bad password, unknown CA, anonymous, a password in a URL)
are MqttErrors naming the fix and never showing the password. The CLI reads the password
from a file (``--broker-password-file`` / ``$FLEET_MQTT_PASSWORD_FILE``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.mqtt import BrokerSettings, MqttClient, MqttError, parse_url

ROOT = Path(__file__).resolve().parents[2]
SECRET = "f1eet-s3cret-pw"
USERS = {"fleet": SECRET, "gw-aaa": "gw-a-pw", "gw-bbb": "gw-b-pw", "platform": "platform-pw"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """The reference configuration + ACL on two free ports; yields (plain_port, tls_port, pki, dir)."""
    from testkit.refbroker import start_reference_broker

    b = start_reference_broker(tmp_path_factory.mktemp("refbroker"), USERS)
    yield b.plain_port, b.tls_port, b.pki, b.dir
    b.stop()


def tls_settings(broker, user="fleet", password=SECRET, **kw) -> BrokerSettings:
    _, tls, pki, _ = broker
    base = dict(username=user, password=password, ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
    base.update(kw)
    return parse_url(f"mqtts://localhost:{tls}", **base)


def client(settings: BrokerSettings, name: str, **kw) -> MqttClient:
    return MqttClient.from_settings(settings, client_id=name, **kw)


def test_fleet_ingests_over_mutual_tls_and_the_acl_keeps_everyone_in_their_lane(broker):
    from fleet.clock import SystemClock
    from fleet.monitoring import IngestWorker

    class ListSink:
        def __init__(self):
            self.batches = []

        def write(self, batch):
            self.batches.append(batch)

    sink = ListSink()
    worker = IngestWorker(client(tls_settings(broker), "fleet-ingest-tls", manual_ack=True), sink,
                          clock=SystemClock(), flush_s=0.05).start()
    gw_a = client(tls_settings(broker, "gw-aaa", USERS["gw-aaa"]), "gw-aaa-primary").connect()
    fleet = client(tls_settings(broker), "fleet-cmd").connect()
    try:
        gw_a.publish("wt/v1/gw/gw-aaa/health", json.dumps(
            {"schema": "wt.health/1", "gateway": "gw-aaa", "at": "2026-11-23T07:00:00.000Z", "devices": []}).encode())
        deadline = time.monotonic() + 10
        while not any(b.health for b in sink.batches) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [h.gateway_id for b in sink.batches for h in b.health] == ["gw-aaa"]
        # the fleet may command a gateway, and read its own share of the reports ...
        fleet.publish("wt/v1/gw/gw-aaa/cmd", b'{"schema":"wt.cmd/1","cmd_id":"c1","cmd":"ping","args":{}}')
        # ... but never raise or acknowledge an alarm
        with pytest.raises(MqttError, match="refused the publish to wt/v1/gw/gw-aaa/alarm: Not authorized"):
            fleet.publish("wt/v1/gw/gw-aaa/alarm", b"{}")
        with pytest.raises(MqttError, match="refused the publish .*ack.*docs/mosquitto.acl"):
            fleet.publish("wt/v1/gw/gw-aaa/ack", b"{}")
        # a gateway speaks only for itself, and cannot fake the platform's acks
        with pytest.raises(MqttError, match="Not authorized"):
            gw_a.publish("wt/v1/gw/gw-bbb/health", b"{}")
        with pytest.raises(MqttError, match="Not authorized"):
            gw_a.publish("wt/v1/gw/gw-aaa/ack", b"{}")
        # nor read another gateway's commands: Mosquitto grants the SUBSCRIBE but delivers nothing
        import queue

        gw_b = client(tls_settings(broker, "gw-bbb", USERS["gw-bbb"]), "gw-bbb-primary").connect()
        spy, own = gw_a.subscribe("wt/v1/gw/gw-bbb/cmd"), gw_b.subscribe("wt/v1/gw/gw-bbb/cmd")
        fleet.publish("wt/v1/gw/gw-bbb/cmd", b'{"schema":"wt.cmd/1","cmd_id":"c2","cmd":"ping","args":{}}')
        assert own.get(timeout=5).payload.startswith(b'{"schema":"wt.cmd/1"')
        with pytest.raises(queue.Empty):
            spy.get(timeout=1)
        gw_b.close()
    finally:
        gw_a.close()
        fleet.close()
        worker.stop()


def test_refusals_name_the_fix_and_never_show_the_password(broker):
    from testkit.pki import make_pki

    plain, tls, pki, d = broker
    with pytest.raises(MqttError) as bad_pw:
        client(tls_settings(broker, password="wrong-" + SECRET), "fleet-badpw").connect(timeout_s=5)
    assert "refused the connection" in bad_pw.value.message and "--broker-password-file" in bad_pw.value.message
    other = make_pki(d / "other", prefix="other-")
    with pytest.raises(MqttError, match="certificate of mqtts://fleet@localhost.* was not accepted.*--broker-ca"):
        client(tls_settings(broker, ca_file=other.ca), "fleet-wrongca").connect(timeout_s=5)
    with pytest.raises(MqttError, match="give --broker-user and --broker-password-file"):
        MqttClient("127.0.0.1", plain, client_id="anon").connect(timeout_s=5)       # allow_anonymous false
    with pytest.raises(MqttError, match="no CONNACK|handshake"):
        client(tls_settings(broker, cert_file=None, key_file=None), "fleet-nocert").connect(timeout_s=3)
    with pytest.raises(MqttError, match="never go on the command line"):
        parse_url(f"mqtts://fleet:{SECRET}@localhost:{tls}")
    with pytest.raises(MqttError, match="not TLS; write mqtts://"):
        parse_url(f"mqtt://localhost:{plain}", ca_file=pki.ca)
    s = tls_settings(broker)
    texts = [repr(s), s.url, str(bad_pw.value), json.dumps(bad_pw.value.as_dict(), default=str)]
    assert all(SECRET not in t for t in texts)
    assert s.url == f"mqtts://fleet@localhost:{tls}" and parse_url("mqtts://b.example").port == 8883


def test_broker_settings_come_from_options_then_environment(tmp_path, broker, capsys):
    import argparse

    from fleet.commands._common import add_broker, broker_settings

    _, tls, pki, _ = broker
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\n")
    p = add_broker(argparse.ArgumentParser())
    env = {"FLEET_MQTT": f"mqtts://localhost:{tls}", "FLEET_MQTT_USER": "fleet", "FLEET_MQTT_PASSWORD_FILE": str(pw),
           "FLEET_MQTT_CA": str(pki.ca), "FLEET_MQTT_CERT": str(pki.client_cert), "FLEET_MQTT_KEY": str(pki.client_key)}
    s = broker_settings(p.parse_args([]), env=env)
    assert (s.tls, s.username, s.password, s.ca_file) == (True, "fleet", SECRET, pki.ca)
    s2 = broker_settings(p.parse_args(["--broker", "mqtt://127.0.0.1:1884", "--broker-user", "other"]),
                         env={"FLEET_MQTT_PASSWORD": "x"})
    assert (s2.tls, s2.port, s2.username, s2.password) == (False, 1884, "other", "x")
    with pytest.raises(SystemExit):                                 # never on the command line (not even as an
        p.parse_args(["--broker-password", SECRET])                 # abbreviation of --broker-password-file)
    err = capsys.readouterr().err
    assert "--broker-password-file FILE" in err and SECRET not in err
    with pytest.raises(MqttError, match="is empty"):
        (tmp_path / "empty").write_text("")
        broker_settings(p.parse_args(["--broker-password-file", str(tmp_path / "empty"), "--broker-user", "u"]),
                        env={})


def test_monitor_ingest_cli_over_tls_with_a_password_file(broker, tmp_path):
    """`fleet monitor ingest` as a service runs it: every broker setting from the environment,
    the password from a file; a gateway's health arrives in the database."""
    from fleet.store import open_store

    _, tls, pki, _ = broker
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    with open_store(db) as s, s.transaction() as tx:
        tx.execute("INSERT INTO app_user (name, role, all_municipalities, active, created_at) VALUES (?, ?, ?, ?, ?)",
                   ("ingest", "support", True, True, time.time()))
    pw = tmp_path / "mqtt-password"
    pw.write_text(SECRET + "\n")
    pw.chmod(0o600)
    env = {**os.environ, "FLEET_DB": db, "FLEET_USER": "ingest", "FLEET_CONFIG_DIR": str(tmp_path / "cfg"),
           "FLEET_MQTT": f"mqtts://fleet@localhost:{tls}", "FLEET_MQTT_PASSWORD_FILE": str(pw),
           "FLEET_MQTT_CA": str(pki.ca), "FLEET_MQTT_CERT": str(pki.client_cert),
           "FLEET_MQTT_KEY": str(pki.client_key)}
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "monitor", "ingest", "--id", "ingest-tls-cli",
                             "--flush-s", "0.05"], env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stderr.readline()
        assert f"ingesting from mqtts://fleet@localhost:{tls}" in line, line + proc.stderr.read()
        gw = client(tls_settings(broker, "gw-bbb", USERS["gw-bbb"]), "gw-bbb-primary").connect()
        gw.publish("wt/v1/gw/gw-bbb/health", json.dumps({
            "schema": "wt.health/1", "gateway": "gw-bbb", "at": "2026-11-23T07:00:00.000Z", "config_version": 9,
            "devices": []}).encode())
        gw.close()
        deadline = time.monotonic() + 20
        got = None
        with open_store(db, migrate=False) as s:
            while got is None and time.monotonic() < deadline:
                with s.transaction(write=False) as tx:
                    got = tx.scalar("SELECT config_version FROM gateway_status WHERE gateway_id = ?", ("gw-bbb",))
                time.sleep(0.1)
        assert got == 9
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert SECRET not in err
