"""docs/mqtt.md payloads: exact encoding, tolerant decoding; domain modules import no paho."""
from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.model import Event, EventCode, Role
from gateway.domain.payload import (Ack, AckStatus, Published, Rejected, Topics, decode_ack, decode_published,
                                    encode_ack, encode_event, encode_state, rfc3339)

T = 1_795_413_600.12   # 2026-11-23T06:00:00.120Z


def test_alarm_payload_matches_the_documented_example():
    e = Event("a4c1380a1b2c-0000002a", "a4c1380a1b2c", EventCode.BUTTON_PRESS, occurred_at=T,
              received_at=T + 0.003, role=Role.BUTTON, seq=42)
    body = json.loads(encode_event(e, gateway_id="gw-0001", attempt=1, route="primary", sent_at=T + 0.004))
    assert body == {
        "schema": "wt.alarm/1", "event_id": "a4c1380a1b2c-0000002a", "gateway": "gw-0001",
        "device": "a4c1380a1b2c", "role": "button", "class": "care", "type": "button_press", "test": False,
        "occurred_at": "2026-11-23T06:00:00.120Z", "received_at": "2026-11-23T06:00:00.123Z",
        "sent_at": "2026-11-23T06:00:00.124Z", "attempt": 1, "route": "primary", "data": {},
    }


def test_event_and_technical_classes_and_topics():
    tele = Event("d-1", "d", EventCode.MOTION, T, T)
    tech = Event("gw-0001-g0000000007", "gw-0001", EventCode.LOW_BATTERY, T, T, role=Role.GATEWAY)
    b1 = json.loads(encode_event(tele, gateway_id="g", attempt=1, route="primary", sent_at=T))
    b2 = json.loads(encode_event(tech, gateway_id="g", attempt=3, route="fallback", sent_at=T))
    assert (b1["schema"], b1["class"], b1["role"]) == ("wt.event/1", "event", None)
    assert (b2["schema"], b2["class"], b2["role"], b2["route"]) == ("wt.alarm/1", "technical", "gateway", "fallback")
    t = Topics("gw-0001")
    assert (t.alarm, t.ack, t.state, t.config_applied) == (
        "wt/v1/gw/gw-0001/alarm", "wt/v1/gw/gw-0001/ack", "wt/v1/gw/gw-0001/state", "wt/v1/gw/gw-0001/config/applied")
    assert json.loads(encode_state(gateway_id="gw-0001", online=False, version="0.1.0", since=T)) == {
        "schema": "wt.state/1", "gateway": "gw-0001", "online": False, "version": "0.1.0",
        "since": "2026-11-23T06:00:00.120Z"}


def test_rfc3339_rounds_to_milliseconds():
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1.9995) == "1970-01-01T00:00:02.000Z"


def test_ack_roundtrip_and_rejections():
    a = decode_ack(encode_ack(event_id="x-1", status="accepted", by="arc-oslo", at=T))
    assert isinstance(a, Ack) and (a.event_id, a.status, a.by) == ("x-1", AckStatus.ACCEPTED, "arc-oslo")
    assert abs((a.at or 0) - T) < 0.001
    cases = {
        b"\xff\xfe": "UTF-8",
        b"[1]": "not a JSON object",
        b'{"event_id": "x"}': "schema",
        b'{"schema": "wt.ack/2", "event_id": "x", "status": "received"}': "major version",
        b'{"schema": "wt.alarm/1", "event_id": "x", "status": "received"}': "is not wt.ack/1",
        b'{"schema": "wt.ack/1", "status": "received"}': "event_id",
        b'{"schema": "wt.ack/1", "event_id": "x", "status": "seen"}': "status",
    }
    for raw, why in cases.items():
        r = decode_ack(raw)
        assert isinstance(r, Rejected) and why in r.reason, (raw, r)
    ok = decode_ack(b'{"schema": "wt.ack/1", "event_id": "x", "status": "resolved", "extra": 1}')
    assert isinstance(ok, Ack)   # unknown fields ignored


@given(st.binary(max_size=200))
def test_decoders_never_raise(data):
    assert isinstance(decode_ack(data), (Ack, Rejected))
    assert isinstance(decode_published(data), (Published, Rejected))


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=8)), max_size=6))
def test_json_objects_of_any_shape_never_raise(obj):
    obj.setdefault("schema", "wt.ack/1")
    assert isinstance(decode_ack(json.dumps(obj).encode()), (Ack, Rejected))


def test_domain_modules_import_no_paho():
    code = ("import sys; import gateway.domain.forwarder, gateway.domain.payload, "
            "gateway.testing.platform, gateway.adapters.journal; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('paho', 'bleak', 'serial', 'zeroconf', 'psycopg')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
