"""Cellular path on the real MicroPython interpreter against an emulated SIM7080G-class
modem on a pseudo-terminal (firmware/tests/modem_emulator.py): AT driver timeouts and
errors, registration, no coverage + backoff, registration loss mid-session, and the
MQTT publish forwarded by the emulated modem to a real Mosquitto, where the payload is
checked with the gateway's own decoder."""
from __future__ import annotations

import json
import struct
import threading
import time

import pytest

from firmware.tests.modem_emulator import MPY_PTY_UART, ModemEmulator
from firmware.tests.mpy import run_mpy

DEV = "a4c1380a1b2c"
EXIT = struct.pack("<iihBBB", 599138688, 107522454, 23, 1, 7, 0)
T0_MS = 1795413600123  # 2026-11-23T06:00:00.123Z


@pytest.fixture(params=["sim7080", "bg95"])
def emu(request):
    e = ModemEmulator(dialect=request.param).start()
    yield e
    e.stop()


def mp(emu: ModemEmulator, body: str) -> dict:
    script = MPY_PTY_UART + f'''
import json, struct, time
from modem import ModemError, ModemTimeout, make
from modem_mqtt import CellularUplink
u = PtyUart({emu.path!r})
_t0 = time.ticks_ms()
def _clock():
    # the driver's command deadlines run at half speed: a loaded CI machine (2 shared
    # cores) can starve the emulator thread longer than a 1 s AT timeout
    return time.ticks_diff(time.ticks_ms(), _t0) // 2
m = make(u, _clock, u.wait, {emu.dialect!r})
up = CellularUplink(m, {DEV!r}, "broker.invalid", 1883, time.ticks_ms, retry_ms=1000, retry_max_ms=8000)
''' + body
    out = run_mpy(script, heap="64k", timeout=60).stdout.strip().splitlines()
    return json.loads(out[-1])


def test_publish_session_uses_the_gateway_payload_schema(emu):
    r = mp(emu, f'''
done, reason = up.send([(42, 0x41, {EXIT!r}, {T0_MS}), (43, 0x40, {EXIT!r}, {T0_MS + 1000})], {T0_MS + 5000})
print(json.dumps({{"done": sorted(done), "reason": reason, "timeouts": m.timeouts, "mqtt": m.mqtt_up}}))
''')
    # the event at the broker's PUBACK, the alarm at the (emulated) platform's wt.ack/1
    assert r == {"done": [42, 43], "reason": "", "timeouts": 0, "mqtt": False}
    (t1, p1, q1, _), (t2, p2, _, _) = emu.publishes
    assert t1 == f"wt/v1/dev/{DEV}/alarm" and t2 == f"wt/v1/dev/{DEV}/event" and q1 == 1
    from gateway.codec.events import decode_event_data
    from gateway.domain.payload import decode_published

    pub = decode_published(p1)
    body = pub.body
    assert pub.event_id == f"{DEV}-0000002a" and pub.alarm and pub.attempt == 1
    assert (body["class"], body["type"], body["role"], body["device"]) == ("care", "geofence_exit", "gps", DEV)
    assert body["occurred_at"] == "2026-11-23T06:00:00.123Z" and body["sent_at"] == "2026-11-23T06:00:05.123Z"
    assert body["data"] == decode_event_data(0x41, EXIT).data   # same fields/values as via the gateway
    # the same key set as the gateway's own payload
    from gateway.domain.model import Event, EventCode, Role
    from gateway.domain.payload import event_payload
    ref = event_payload(Event(f"{DEV}-0000002a", DEV, EventCode.GEOFENCE_EXIT, 0, 0, Role.GPS, 42, {}),
                        gateway_id="gw-1", attempt=1, route="primary", sent_at=0)
    assert set(body) == set(ref)
    assert json.loads(p2)["schema"] == "wt.event/1"
    assert emu.conf["CLIENTID"] == '"wt-a4c1380a1b2c"'
    assert ("AT+SMDISC" if emu.dialect == "sim7080" else "AT+QMTDISC=0") in emu.log   # session closed


def test_session_time_budget_publishes_at_least_one_and_leaves_the_rest(emu):
    r = mp(emu, f'''
items = [(s, 0x40, {EXIT!r}, {T0_MS}) for s in (1, 2, 3)]
a = up.send(items, {T0_MS}, budget_ms=0)
w = up.wait_ms(time.ticks_ms())
b = up.send(items[1:], {T0_MS})
print(json.dumps([a, w, b]))
''')
    assert r == [[[1], ""], 0, [[2, 3], ""]]
    assert len(emu.publishes) == 3


def test_no_coverage_keeps_events_and_backs_off_then_delivers(emu):
    emu.coverage = False
    r = mp(emu, f'''
out = []
t = time.ticks_ms()
out.append(up.send([(7, 0x41, {EXIT!r}, {T0_MS})], {T0_MS}))
out.append(up.wait_ms(time.ticks_ms()))
up.send([(7, 0x41, {EXIT!r}, {T0_MS})], {T0_MS})
out.append(up.wait_ms(time.ticks_ms()))
print(json.dumps({{"out": out, "fails": up.fails, "m": m.reg}}))
''')
    assert r["out"][0] == [[], "no_coverage"]
    assert 800 <= r["out"][1] <= 1000 and 1800 <= r["out"][2] <= 2000   # exponential backoff
    assert r["m"] == 2 and emu.publishes == []                          # searching; nothing sent
    assert not any(c.startswith(("AT+SMCONN", "AT+QMTOPEN")) for c in emu.log)   # no pointless connects
    emu.coverage = True
    r2 = mp(emu, f'''
print(json.dumps(up.send([(7, 0x41, {EXIT!r}, {T0_MS})], {T0_MS})))
''')
    assert r2 == [[7], ""] and len(emu.publishes) == 1


def test_registration_lost_mid_session_fails_the_publish_and_keeps_the_event(emu):
    emu.publish_delay_s = 0.3

    def drop():
        while not any(c.startswith(("AT+SMPUB", "AT+QMTPUBEX")) for c in emu.log):
            time.sleep(0.01)
        emu.lose_registration()

    th = threading.Thread(target=drop, daemon=True)
    th.start()
    r = mp(emu, f'''
done, reason = up.send([(9, 0x41, {EXIT!r}, {T0_MS}), (10, 0x40, {EXIT!r}, {T0_MS})], {T0_MS})
print(json.dumps({{"done": done, "reason": reason, "attempts": up.attempts, "pdp": m.pdp_active}}))
''')
    th.join(5)
    assert r["done"] == [] and r["reason"] == "publish"
    assert r["attempts"] == {"9": 1}   # the retry will carry attempt 2, same event_id
    assert r["pdp"] is False and emu.publishes == []


def test_dead_modem_times_out_within_the_command_timeout(emu):
    emu.silent = True
    r = mp(emu, '''
t = time.ticks_ms()
try:
    m.command("AT", 300)
    res = "answered"
except ModemTimeout as e:
    res = [e.cmd, str(e)]
el = time.ticks_diff(time.ticks_ms(), t)
done, reason = up.send([(1, 0x41, b"x" * 13, None)], None)
print(json.dumps({"res": res, "ms": el, "reason": reason, "timeouts": m.timeouts}))
''')
    assert r["res"][0] == "AT" and "no answer" in r["res"][1]
    assert 250 <= r["ms"] <= 2000
    assert r["reason"] == "no_modem" and r["timeouts"] == 2


def test_error_answers_sim_missing_and_power_off(emu):
    emu.sim_ready = False
    r = mp(emu, '''
out = [up.send([(1, 0x40, b"x" * 13, None)], None)[1]]
try:
    m.command("AT+BOGUS", 500)
except ModemTimeout:
    out.append("timeout")
except ModemError as e:
    out.append(e.reason)
out.append(up.power_off())
out.append(m.powered_down)
print(json.dumps(out))
''')
    assert r == ["no_sim", "ERROR", True, True]
    assert not emu.powered


def test_publish_reaches_a_real_mosquitto_through_the_emulated_modem(emu, mosquitto):
    # a bench broker (anonymous, no TLS: the TLS path is test_modem_tls.py); the platform
    # simulator acks the alarm on the tracker's ack topic, which lets it leave the queue
    from gateway.testing.platform import PlatformSim

    host, port = _broker_addr(mosquitto)
    platform = PlatformSim.on_broker(host, port, client_id="platform").start(devices=True)
    try:
        emu.forward_to = (host, port)
        r = mp(emu, f'''
up.host = {host!r}
up.port = {port}
print(json.dumps([up.send([(42, 0x41, {EXIT!r}, {T0_MS})], {T0_MS + 1000}), up.acked]))
''')
        assert r == [[[42], ""], 1]
        got = platform.wait_for(lambda a: a.alarm, 10)
    finally:
        platform.stop()
    assert emu.conf["URL"] == f'"{host}",{port}'
    assert [t for t, *_ in emu.publishes] == [f"wt/v1/dev/{DEV}/alarm"]
    assert got[0].event_id == f"{DEV}-0000002a" and platform.acks_sent == 1
    assert got[0].payload["data"]["lat"] == pytest.approx(59.9138688) and got[0].type == "geofence_exit"


def _broker_addr(broker) -> tuple[str, int]:
    host = getattr(broker, "host", "127.0.0.1")
    port = getattr(broker, "port", None)
    if port is None:
        raise AssertionError(f"mosquitto fixture exposes no port: {broker!r}")
    return host, port
