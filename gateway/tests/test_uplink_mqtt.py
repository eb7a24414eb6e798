"""MqttLink (paho adapter) and the forwarder against a real Mosquitto on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from gateway.testing.broker import port_open
from gateway.adapters.journal import JournalWriter, SqliteJournal
from gateway.domain.model import Event, EventCode
from gateway.domain.ports import SystemClock
from testkit.pki import make_pki
from gateway.domain.backoff import Backoff
from gateway.domain.forwarder import Forwarder
from gateway.domain.uplink_errors import NotConnected, PublishFailed, UplinkError
from gateway.adapters.mqtt import MqttLink, TlsSettings, gateway_link
from gateway.testing.platform import LoopThread, PlatformSim, TcpProxy, wait_until

GW = "gw-0001"


def fast_backoff() -> Backoff:
    return Backoff(initial_s=0.1, cap_s=0.5)


@pytest.fixture(params=["loop", "thread"])
def link_kw(request):
    """MqttLink driven by an asyncio loop (the daemon's way) or by its own network thread."""
    if request.param == "thread":
        yield {}
        return
    lt = LoopThread()
    yield {"loop": lt.loop}
    lt.stop()


class StateWatcher:
    def __init__(self, host: str, port: int) -> None:
        self.states: list[bool] = []
        self.link = MqttLink(host=host, port=port, client_id="watcher", backoff=fast_backoff())
        self.link.subscribe(f"wt/v1/gw/{GW}/state", lambda t, p: self.states.append(json.loads(p)["online"]))
        self.link.start()


def test_puback_retained_state_and_last_will(mosquitto, link_kw):
    proxy = TcpProxy(mosquitto.host, mosquitto.port)
    watcher = StateWatcher(mosquitto.host, mosquitto.port)
    link = gateway_link(gateway_id=GW, version="0.1.0", clock=SystemClock(), host=proxy.host, port=proxy.port,
                        keepalive_s=5, backoff=fast_backoff(), **link_kw).start()
    try:
        assert wait_until(lambda: link.connected and watcher.states[-1:] == [True], 10)
        acked = threading.Event()
        link.publish(f"wt/v1/gw/{GW}/event", b"{}", on_puback=lambda ok, at: ok and acked.set())
        assert acked.wait(5)
        proxy.cut()                                  # the uplink dies without a DISCONNECT
        assert wait_until(lambda: False in watcher.states, 10), "last will (online: false) not published"
        assert wait_until(lambda: link.connected and watcher.states[-1] is True, 10), "no reconnect"
        assert link.connects >= 2
        link.stop()                                  # clean stop: online false, published by us
        assert wait_until(lambda: watcher.states[-1] is False, 5)
    finally:
        link.stop()
        watcher.link.stop()
        proxy.close()


def test_paho_return_codes_become_exceptions(mosquitto, link_kw):
    link = MqttLink(host=mosquitto.host, port=mosquitto.port, client_id="codes", backoff=fast_backoff(), **link_kw)
    with pytest.raises(NotConnected, match="not connected"):
        link.publish("a/b", b"x")
    link.start()
    try:
        assert wait_until(lambda: link.connected, 10)
        with pytest.raises(PublishFailed, match="wildcard|Publish topic"):
            link.publish("a/+/b", b"x")
        if link_kw:
            with pytest.raises(UplinkError, match="async_stop"):
                LoopThread.call_on(link_kw["loop"], link.stop)
    finally:
        link.stop()


def _forwarder_stack(loop: LoopThread, tmp_path, host: str, port: int, **kw):
    clock = SystemClock()
    journal = SqliteJournal(tmp_path / "journal.db")
    writer = JournalWriter(journal, dispatch=loop.dispatch).start()
    link = gateway_link(gateway_id=GW, version="0.1.0", clock=clock, host=host, port=port, keepalive_s=5,
                        backoff=fast_backoff(), loop=loop.loop)
    fwd = Forwarder(gateway_id=GW, journal=writer, primary=link, clock=clock, tick_s=0.05, **kw)
    loop.spawn(fwd.async_run)
    link.start()
    return journal, writer, link, fwd


def _alarm(i: int) -> Event:
    import time

    now = time.time()
    return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", EventCode.BUTTON_PRESS, now, now, seq=i)


@pytest.mark.slow
def test_ack_subscription_survives_broker_restart(mosquitto, tmp_path):
    loop = LoopThread()
    plat_link = MqttLink(host=mosquitto.host, port=mosquitto.port, client_id="platform", backoff=fast_backoff())
    plat = PlatformSim(plat_link).start()
    plat_link.start()
    journal, writer, link, fwd = _forwarder_stack(loop, tmp_path, mosquitto.host, mosquitto.port, ack_timeout_s=30)
    try:
        assert wait_until(lambda: link.connected and plat_link.connected, 10)
        loop.call(lambda: fwd.submit(_alarm(1)))
        assert wait_until(lambda: loop.call(lambda: fwd.stats["acks"]) == 1, 10), "first platform ack missing"
        mosquitto.kill()                                  # SIGKILL; the broker forgets all sessions
        assert wait_until(lambda: not link.connected, 10)
        mosquitto.start()                                 # same port
        assert wait_until(lambda: link.connected and plat_link.connected, 15)
        import time
        time.sleep(0.5)                                   # platform's SUBACK
        loop.call(lambda: fwd.submit(_alarm(2)))
        # ack_timeout_s is 30 s: the ack can only arrive via the re-made ack subscription
        assert wait_until(lambda: loop.call(lambda: fwd.stats["acks"]) == 2, 10), "ack after restart missing"
        assert loop.call(lambda: fwd.stats["escalations"]) == 0
        assert loop.call(lambda: fwd.status().alarms_unacknowledged) == 0
    finally:
        link.stop()
        plat_link.stop()
        writer.stop()
        loop.stop()
        journal.close()


def _passwd(path, user: str, password: str) -> None:
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), user, password], check=True, capture_output=True)


@pytest.fixture
def tls_broker(mosquitto_factory, tmp_path):
    from gateway.testing.broker import free_port

    pki = make_pki(tmp_path / "pki")
    _passwd(tmp_path / "passwd", "gw-0001", "s3cret")
    port = free_port()
    # run as root (CI container), mosquitto would drop to user "mosquitto", which cannot
    # read files under pytest's private tmp_path
    as_root = "user root" if os.geteuid() == 0 else ""
    broker = mosquitto_factory(port=port, default_listener=False, extra_config=f"""
{as_root}
allow_anonymous false
password_file {tmp_path / 'passwd'}
listener {port} 127.0.0.1
cafile {pki.ca}
certfile {pki.server_cert}
keyfile {pki.server_key}
require_certificate true
tls_version tlsv1.2
""")
    assert wait_until(lambda: port_open("127.0.0.1", port), 10), (tmp_path / "mosquitto-0" / "mosquitto.log").read_text()
    return broker, pki


def _tls_link(port: int, tls: TlsSettings, kw: dict, password: str = "s3cret", name: str = "tls") -> MqttLink:
    return MqttLink(host="localhost", port=port, client_id=name, username="gw-0001", password=password,
                    tls=tls, backoff=fast_backoff(), connect_timeout_s=3, **kw)


def test_tls_with_server_verification_client_cert_and_password(tls_broker, tmp_path, link_kw):
    broker, pki = tls_broker
    good = _tls_link(broker.port, TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key),
                     link_kw)
    other = make_pki(tmp_path / "other", prefix="other-")
    wrong_ca = _tls_link(broker.port, TlsSettings(ca_file=other.ca, cert_file=pki.client_cert,
                                                  key_file=pki.client_key), link_kw, name="wrong-ca")
    wrong_pw = _tls_link(broker.port, TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert,
                                                  key_file=pki.client_key), link_kw, password="nope", name="wrong-pw")
    no_cert = _tls_link(broker.port, TlsSettings(ca_file=pki.ca), link_kw, name="no-cert")
    links = [good, wrong_ca, wrong_pw, no_cert]
    for link in links:
        link.start()
    try:
        assert wait_until(lambda: good.connected, 10), good.last_error
        acked = threading.Event()
        good.publish(f"wt/v1/gw/{GW}/alarm", b"{}", on_puback=lambda ok, at: ok and acked.set())
        assert acked.wait(5)
        assert wait_until(lambda: all(x.last_error for x in links[1:]), 10)
        assert not any(x.connected for x in links[1:])
        assert "certificate verify failed" in (wrong_ca.last_error or "")
        assert "Not authorized" in (wrong_pw.last_error or "")
        assert no_cert.connected is False
    finally:
        for link in links:
            link.stop()


def test_reference_mosquitto_conf_runs_and_takes_a_tls_gateway(tmp_path):
    """docs/mosquitto.conf, with paths/ports swapped for test ones, starts and accepts a
    gateway over mutual TLS + password; anonymous and plain-listener logins are refused."""
    import re
    from pathlib import Path

    from gateway.testing.broker import MosquittoProcess, free_port

    pki = make_pki(tmp_path / "pki")
    _passwd(tmp_path / "passwd", "gw-0001", "s3cret")
    (tmp_path / "acl").write_text("pattern readwrite wt/v1/gw/%u/#\n")
    (tmp_path / "persist").mkdir()
    plain, tls_port = free_port(), free_port()
    conf = (Path(__file__).resolve().parents[2] / "docs" / "mosquitto.conf").read_text()
    subs = {
        r"^user mosquitto$": "user root" if os.geteuid() == 0 else "",
        r"^persistence_location .*$": f"persistence_location {tmp_path / 'persist'}/",
        r"^log_dest syslog$": "log_dest stderr",
        r"^password_file .*$": f"password_file {tmp_path / 'passwd'}",
        r"^acl_file .*$": f"acl_file {tmp_path / 'acl'}",
        r"^listener 1883 127.0.0.1$": f"listener {plain} 127.0.0.1",
        r"^listener 8883$": f"listener {tls_port} 127.0.0.1",
        r"^cafile .*$": f"cafile {pki.ca}",
        r"^certfile .*$": f"certfile {pki.server_cert}",
        r"^keyfile .*$": f"keyfile {pki.server_key}",
    }
    for pat, rep in subs.items():
        conf, n = re.subn(pat, rep, conf, flags=re.M)
        assert n == 1, pat
    broker = MosquittoProcess(port=plain, workdir=tmp_path / "mosq")
    broker.write_config = lambda: broker.conf_path.write_text(conf)   # the reference file as is
    broker.start()
    good = _tls_link(tls_port, TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key), {})
    anon = MqttLink(host="127.0.0.1", port=plain, client_id="anon", backoff=fast_backoff(), connect_timeout_s=3)
    try:
        good.start()
        anon.start()
        assert wait_until(lambda: good.connected, 10), good.last_error
        acked = threading.Event()
        good.publish(f"wt/v1/gw/{GW}/event", b"{}", on_puback=lambda ok, at: ok and acked.set())
        assert acked.wait(5)
        assert wait_until(lambda: anon.last_error is not None, 10) and not anon.connected
        assert "Not authorized" in anon.last_error
    finally:
        good.stop()
        anon.stop()
        broker.stop()


@pytest.mark.slow
def test_session_resends_go_out_before_new_publications_after_reconnect(mosquitto, link_kw):
    """Messages stuck in a dead connection are re-sent by the session on reconnect BEFORE
    anything the 'connected' listeners publish (else the backlog order breaks)."""
    got: list[bytes] = []
    watcher = MqttLink(host=mosquitto.host, port=mosquitto.port, client_id="order-watch", backoff=fast_backoff())
    watcher.subscribe("order/#", lambda t, p: got.append(p))
    watcher.start()
    proxy = TcpProxy(mosquitto.host, mosquitto.port)
    link = MqttLink(host=proxy.host, port=proxy.port, client_id="order-pub", keepalive_s=1, backoff=fast_backoff(),
                    **link_kw)
    ups: list[bool] = []

    def on_up(up: bool) -> None:
        ups.append(up)
        if up and len(ups) > 1:
            link.publish("order/x", b"new", urgent=True)
    link.add_connection_listener(on_up)
    link.start()
    try:
        assert wait_until(lambda: link.connected and watcher.connected, 10)
        proxy.blackhole()
        for i in range(20):
            link.publish("order/x", f"old-{i:02d}".encode())
        assert wait_until(lambda: not link.connected, 10)
        proxy.heal()
        assert wait_until(lambda: b"new" in got and len(got) >= 21, 15), got
        assert got[:20] == [f"old-{i:02d}".encode() for i in range(20)] and got[20] == b"new"
    finally:
        link.stop()
        watcher.stop()
        proxy.close()
