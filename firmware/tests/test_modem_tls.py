"""The tracker's direct cellular path on the reference broker (issue 10 F6): the real
firmware uplink (modem_mqtt, modem_tls, modem / modem_bg95 on the MicroPython unix port)
drives the emulated SIM7080G / BG95 (firmware/tests/modem_emulator.py) through its AT
sequence - certificates uploaded into the modem, SSL context, the device's own user name
and password - and the emulator connects, as those modems do, over MQTT 3.1.1 with TLS to
a REAL Mosquitto running docs/mosquitto.conf with docs/mosquitto.acl as they are (TLS
listener with client certificates, ``allow_anonymous false``; paths and ports swapped for
test ones). The platform (gateway/testing/platform.py, logged in as ``platform``) acks
alarms on ``wt/v1/dev/{dev}/ack``.

What F6 found: with MQTT 3.1.1 the broker PUBACKs a publish its ACL refuses, and the
tracker deleted the alarm at that PUBACK - lost without a trace. Now an alarm leaves the
device only at the platform's ``wt.ack/1`` and is published again, same event id, until it
comes."""
from __future__ import annotations

import json
import re
import shutil
import struct
import threading
import time
from pathlib import Path

import pytest

from firmware.tests.modem_emulator import MPY_PTY_UART, ModemEmulator
from firmware.tests.mpy import run_mpy

ROOT = Path(__file__).resolve().parents[2]
DEV = "a4c1380a1b2c"
OTHER = "a4c1380a1bff"
EXIT = struct.pack("<iihBBB", 599138688, 107522454, 23, 1, 7, 0)   # geofence_exit data (zone 0)
T0_MS = 1795413600123
USERS = {DEV: "tr4cker-pw", "platform": "platform-pw"}

pytestmark = pytest.mark.slow   # real TLS sessions, acks waited for: ~10-25 s each


@pytest.fixture(scope="module")
def refbroker(tmp_path_factory):
    """docs/mosquitto.conf + docs/mosquitto.acl on free ports: (plain_port, tls_port, pki)."""
    from testkit.refbroker import start_reference_broker

    b = start_reference_broker(tmp_path_factory.mktemp("trackerbroker"), USERS)
    assert re.search(r"^allow_anonymous false$", b.conf, re.M) and re.search(r"^require_certificate true$", b.conf, re.M)
    yield b.plain_port, b.tls_port, b.pki
    b.stop()


class PlatformLink:
    """The platform's own connection (user ``platform``, local plain listener) with the link
    interface of :class:`gateway.testing.platform.PlatformSim`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._handlers: list = []
        self._client = None

    def subscribe(self, topic_filter, handler) -> None:
        self._handlers.append((topic_filter, handler))

    def start(self, timeout_s: float = 10.0) -> None:
        import paho.mqtt.client as mqtt

        from contracts.topics import matches

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="platform-rx", protocol=mqtt.MQTTv5)
        c.username_pw_set("platform", USERS["platform"])
        ready = threading.Event()
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe([(f_, 1) for f_, _ in self._handlers])
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = lambda cl, u, msg: [h(msg.topic, msg.payload) for f_, h in self._handlers
                                           if matches(f_, msg.topic)]
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        self._client = c
        assert ready.wait(timeout_s), "platform could not subscribe"

    def publish(self, topic, payload, *, qos=1, retain=False) -> None:
        assert self._client is not None
        self._client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()


@pytest.fixture
def platform(refbroker):
    from gateway.testing.platform import PlatformSim

    sim = PlatformSim(PlatformLink(refbroker[0]), by="arc-test", owns_link=True, auto_ack=False)
    sim.start(filters=["wt/v1/dev/+/alarm", "wt/v1/dev/+/event"])
    yield sim
    sim.stop()


@pytest.fixture(params=["sim7080", "bg95"])
def emu(request, refbroker):
    e = ModemEmulator(dialect=request.param)
    e.forward_to = ("127.0.0.1", refbroker[1])
    e.start()
    yield e
    e.stop()


def _files(tmp_path: Path, pki) -> Path:
    d = tmp_path / "cell"
    d.mkdir()
    shutil.copy(pki.ca, d / "ca.pem")
    shutil.copy(pki.client_cert, d / "dev.pem")
    shutil.copy(pki.client_key, d / "dev.key")
    return d


def run_sessions(emu: ModemEmulator, files: Path, body: str, *, dev: str = DEV, user: str = DEV,
                 password: str = USERS[DEV], tls=("ca.pem", "dev.pem", "dev.key")) -> dict:
    """MicroPython: a CellularUplink on the emulated modem, then ``body``; last line JSON."""
    creds = {"user": user, "password": password, "tls": tls}
    script = MPY_PTY_UART + f'''
import json, time
from modem import make
from modem_mqtt import CellularUplink
u = PtyUart({emu.path!r})
_t0 = time.ticks_ms()
def _clock():
    # the driver's command deadlines run at half speed: a loaded CI machine (2 shared
    # cores) can starve the emulator thread longer than a 1 s AT timeout
    return time.ticks_diff(time.ticks_ms(), _t0) // 2
m = make(u, _clock, u.wait, {emu.dialect!r})
up = CellularUplink(m, {dev!r}, "127.0.0.1", {emu.forward_to[1]}, time.ticks_ms, retry_ms=200, retry_max_ms=400,
                    creds={creds!r}, files={str(files)!r}, ack_wait_ms=4000)
ALARM = [(42, 0x41, {EXIT!r}, {T0_MS})]
def session():
    while up.wait_ms(time.ticks_ms()):
        time.sleep_ms(50)
    done, reason = up.send(ALARM, {T0_MS + 1000})
    return [done, reason, dict(up.attempts)]
''' + body
    out = run_mpy(script, heap="64k", timeout=120).stdout.strip().splitlines()
    return json.loads(out[-1])


@pytest.mark.security
def test_F6_alarm_leaves_the_tracker_only_at_the_platforms_ack_and_is_resent_with_its_id_until_then(
        emu, platform, refbroker, tmp_path):
    files = _files(tmp_path, refbroker[2])
    late_ack = threading.Event()

    def ack_late():
        # the platform acks the second copy only after the tracker hung up: the ack waits in
        # the tracker's persistent session at the broker
        while not (len(platform.raw) >= 2 and emu.log and emu.log[-1] in ("AT+SMDISC", "AT+QMTDISC=0")):
            time.sleep(0.05)
        time.sleep(0.3)
        platform.link.publish(f"wt/v1/dev/{DEV}/ack", json.dumps(
            {"schema": "wt.ack/1", "event_id": f"{DEV}-0000002a", "status": "received"}).encode())
        late_ack.set()

    th = threading.Thread(target=ack_late, daemon=True)
    th.start()
    r = run_sessions(emu, files, '''
out = [session(), session()]
time.sleep_ms(3000)
out.append(session())
out.append([up.published, up.acked])
print(json.dumps(out))
''')
    th.join(10)
    s1, s2, s3, (published, acked) = r
    # the broker PUBACKed both copies: still kept, same event id, attempt 1 then 2
    assert s1 == [[], "no_ack", {"42": 1}] and s2 == [[], "no_ack", {"42": 2}], r
    copies = [p.body for p in platform.raw]
    assert [c["event_id"] for c in copies] == [f"{DEV}-0000002a"] * 2
    assert [c["attempt"] for c in copies] == [1, 2] and copies[0]["type"] == "geofence_exit"
    # the ack that came while the tracker was offline is read at the next connect: delivered,
    # without a third publication
    assert late_ack.is_set()
    assert s3 == [[42], "", {}] and published == 2 and acked == 1, r
    # the modem did TLS with the uploaded files, and logged in as the device
    assert {"ca.pem", "dev.pem", "dev.key"} <= set(emu.files)
    assert emu.files["ca.pem"] == (files / "ca.pem").read_bytes()
    if emu.dialect == "sim7080":
        assert 'AT+SMSSL=1,"ca.pem","dev.pem"' in emu.log and f'AT+SMCONF="USERNAME","{DEV}"' in emu.log
    else:
        assert 'AT+QMTCFG="ssl",0,1,2' in emu.log and any(c.startswith(f'AT+QMTCONN=0,"wt-{DEV}","{DEV}"')
                                                           for c in emu.log)


@pytest.mark.security
def test_F6_a_publish_the_acl_refuses_is_pubacked_but_the_alarm_is_not_deleted(emu, platform, refbroker, tmp_path):
    # the tracker's own identity, but topics of another device id (a mix-up at provisioning):
    # Mosquitto grants the SUBSCRIBE and PUBACKs the publish (MQTT 3.1.1) and delivers neither
    platform.auto_ack = True
    files = _files(tmp_path, refbroker[2])
    r = run_sessions(emu, files, '''
out = [session(), session()]
print(json.dumps(out))
''', dev=OTHER)
    assert r == [[[], "no_ack", {"42": 1}], [[], "no_ack", {"42": 2}]], r    # kept, tried again
    assert [t for t, *_ in emu.publishes] == [f"wt/v1/dev/{OTHER}/alarm"] * 2   # PUBACKed twice
    time.sleep(0.5)
    assert platform.raw == [] and platform.acks_sent == 0                  # nobody got it


def test_the_right_identity_is_delivered_and_acked_in_one_session(emu, platform, refbroker, tmp_path):
    platform.auto_ack = True
    files = _files(tmp_path, refbroker[2])
    r = run_sessions(emu, files, '''
print(json.dumps(session()))
''')
    assert r == [[42], "", {}]
    assert [p.event_id for p in platform.raw] == [f"{DEV}-0000002a"] and platform.acks_sent == 1


@pytest.mark.parametrize("case", ["bad_password", "unknown_ca", "no_tls", "no_ca_file"])
def test_refused_sessions_keep_the_alarm_and_name_the_step(emu, platform, refbroker, tmp_path, case):
    from testkit.pki import make_pki

    platform.auto_ack = True
    files = _files(tmp_path, refbroker[2])
    kw: dict = {}
    if case == "bad_password":
        kw["password"] = "wrong"
    elif case == "unknown_ca":
        shutil.copy(make_pki(tmp_path / "other", prefix="x-").ca, files / "ca.pem")
    elif case == "no_tls":
        kw.update(tls=None, password="")        # plain MQTT to the TLS listener, anonymous
    else:
        (files / "ca.pem").unlink()
    r = run_sessions(emu, files, '''
print(json.dumps(session()))
''', **kw)
    want = "tls" if case == "no_ca_file" else "connect"
    assert r == [[], want, {}], r
    assert emu.publishes == [] and platform.raw == []
