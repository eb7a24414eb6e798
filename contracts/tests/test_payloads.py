"""Every payload of docs/mqtt.md: encode -> decode round trips, the documented rejections,
and no decoder ever raises, whatever bytes or JSON shape it is given."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from contracts import payloads as P
from contracts.payloads import AckStatus, AppliedStatus, CmdStatus, Rejected

T = 1795413600.12       # 2026-11-23T06:00:00.120Z
GW = "gw-0001"
DEV = "a4c1380a1b2c"

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                     max_size=3), max_leaves=8)

SCHEMAS = ["wt.alarm/1", "wt.event/1", "wt.ack/1", "wt.state/1", "wt.health/1", "wt.config/1",
           "wt.config-applied/1", "wt.cmd/1", "wt.cmd-result/1"]


def all_decoders(data: bytes) -> list[object]:
    return [
        P.decode_ack(data), P.decode_ack(data, T), P.decode_published(data), P.decode_alarm(GW, data, T),
        P.decode_alarm(GW, data, T, schema=P.EVENT_SCHEMA), P.decode_state(GW, data, T),
        P.decode_health(GW, data, T), P.decode_config(data), P.decode_applied(data), P.decode_cmd(data),
        P.decode_cmd_result(data), P.decode_update_result(data),
    ]


# --- never raise -----------------------------------------------------------------------

@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_no_decoder_raises_on_bytes(data):
    for out in all_decoders(data):
        assert out is not None


@settings(max_examples=400)
@given(schema=st.sampled_from(SCHEMAS), doc=st.dictionaries(st.sampled_from(
    ["event_id", "status", "by", "at", "attempt", "route", "type", "class", "device", "online", "since", "version",
     "config", "hash", "cmd_id", "cmd", "args", "detail", "uplink", "journal", "devices", "error", "test", "x"]),
    json_values, max_size=10))
def test_no_decoder_raises_on_any_json_shape(schema, doc):
    doc["schema"] = schema
    for out in all_decoders(json.dumps(doc).encode()):
        assert out is not None


@pytest.mark.parametrize("data", [b"", b"null", b"[]", b"1", b'"x"', b"\xff\xfe", b"{", b'{"schema": 1}',
                                  b'{"schema": null}', b'{"schema": "wt.x"}', b'{"schema": ["wt.ack/1"]}',
                                  b"[" * 100_000])
def test_garbage_is_rejected_with_a_reason(data):
    for out in all_decoders(data):
        assert isinstance(out, Rejected) and out.reason


# --- round trips -----------------------------------------------------------------------

def test_ack_round_trip_and_one_status_enum():
    for status in AckStatus:
        a = P.decode_ack(P.encode_ack(event_id="x-1", status=status, by="arc", at=T))
        assert isinstance(a, P.Ack) and (a.event_id, a.status, a.by) == ("x-1", status, "arc")
        assert a.at == pytest.approx(T, abs=0.001)
    no_time = P.decode_ack(b'{"schema":"wt.ack/1","event_id":"x","status":"received"}', 42.0)
    assert isinstance(no_time, P.Ack) and no_time.at == 42.0 and no_time.by is None


@pytest.mark.parametrize("raw, why, field", [
    (b'{"event_id": "x"}', "schema", "schema"),
    (b'{"schema": "wt.ack/2", "event_id": "x", "status": "received"}', "major version", "schema"),
    (b'{"schema": "wt.alarm/1", "event_id": "x", "status": "received"}', "is not wt.ack/1", "schema"),
    (b'{"schema": "wt.ack/1", "status": "received"}', "event_id", "event_id"),
    (b'{"schema": "wt.ack/1", "event_id": "x", "status": "seen"}', "status", "status"),
])
def test_rejected_names_the_schema_and_field(raw, why, field):
    r = P.decode_ack(raw)
    assert isinstance(r, Rejected) and why in r.reason and r.field == field and r.schema == "wt.ack/1"


def test_event_doc_round_trips_through_both_projections():
    doc = P.event_doc(schema=P.ALARM_SCHEMA, event_id=f"{DEV}-0000002a", gateway=GW, device=DEV, role="fall",
                      klass="care", type="fall_detected", test=False, occurred_at=T - 1, received_at=T - 0.5,
                      sent_at=T, attempt=2, route=P.Route.FALLBACK, data={"peak_cg": 400})
    assert doc["route"] == "fallback" and doc["occurred_at"] == "2026-11-23T05:59:59.120Z"
    data = P.dumps_event(doc)
    pub = P.decode_published(data)
    assert isinstance(pub, P.Published) and (pub.event_id, pub.alarm, pub.attempt, pub.route) == (
        f"{DEV}-0000002a", True, 2, "fallback") and pub.body == doc
    rec = P.decode_alarm(GW, data, T + 1)
    assert rec == P.Alarm(f"{DEV}-0000002a", GW, DEV, "fall", "care", "fall_detected", False,
                          pytest.approx(T - 1, abs=0.001), T + 1)
    assert isinstance(P.decode_alarm(GW, data, T, schema=P.EVENT_SCHEMA), Rejected)   # wrong topic's schema


def test_state_round_trip():
    s = P.decode_state(GW, P.encode_state(gateway_id=GW, online=True, version="0.1.0", since=T), T + 5)
    assert s == P.State(GW, True, "0.1.0", pytest.approx(T, abs=0.001), T + 5)
    assert isinstance(P.decode_state(GW, b'{"schema":"wt.state/1","online":"yes"}', T), Rejected)


def test_health_decode_keeps_what_is_valid():
    doc = {"schema": "wt.health/1", "at": "2026-11-23T06:00:00Z", "version": "0.1.0", "uptime_s": 60.0,
           "uplink": {"state": "connected", "backlog": 3}, "journal": {"depth": 4, "alarms_pending": 1},
           "config_version": 7, "devices": [{"device": DEV, "battery_pct": 101, "rssi": -60, "silent": True},
                                            "junk", {"no": "id"}]}
    h = P.decode_health(GW, json.dumps(doc).encode(), T)
    assert isinstance(h, P.Health) and (h.uptime_s, h.backlog, h.journal_depth, h.config_version) == (60, 3, 4, 7)
    assert h.devices == (P.DeviceHealth(DEV, None, None, None, -60, None, True),)
    assert isinstance(P.decode_health(GW, b'{"schema":"wt.health/1","at":"2026-11-23T06:00:00"}', T), Rejected)


def test_config_and_applied_round_trip():
    data = P.encode_config(version=3, config={"b": 1, "a": {"z": 2}}, hash="h1")
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()   # canonical
    assert P.decode_config(data) == P.ConfigDoc(3, {"b": 1, "a": {"z": 2}}, "h1")
    for status in AppliedStatus:
        a = P.decode_applied(P.encode_applied(version=3, status=status, error=None, hash="h1"))
        assert a == P.ConfigApplied(3, status, None, "h1")
    assert "hash" not in P.applied_doc(version=1, status="applied", error=None)
    assert isinstance(P.decode_config(b'{"schema":"wt.config/1","version":true,"config":{}}'), Rejected)
    assert isinstance(P.decode_applied(b'{"schema":"wt.config-applied/1","version":1,"status":"ok"}'), Rejected)


def test_cmd_round_trip_and_malformed_command_keeps_its_id():
    assert P.decode_cmd(P.encode_cmd("c-1", "ping", {})) == P.Command("c-1", "ping", {})
    assert P.decode_cmd(b'{"schema":"wt.cmd/1","cmd_id":"c-2","cmd":"ping"}') == P.Command("c-2", "ping", {})
    bad = P.decode_cmd(b'{"schema":"wt.cmd/1","cmd_id":"c-3","cmd":5}')
    assert isinstance(bad, Rejected) and bad.ref == "c-3" and bad.field == "cmd"
    nocid = P.decode_cmd(b'{"schema":"wt.cmd/1","cmd":"ping"}')
    assert isinstance(nocid, Rejected) and nocid.ref is None


def test_cmd_result_and_update_result():
    for status in CmdStatus:
        r = P.decode_cmd_result(P.encode_cmd_result("c-1", status, {"k": 1}))
        assert r == P.CommandResult("c-1", status, {"k": 1})
    u = P.decode_update_result(P.encode_cmd_result("d:gw:u", "error", {
        "deployment": "d", "device": DEV, "phase": "install", "error": "boom", "rolled_back": True}))
    assert u == P.UpdateResult("d:gw:u", "d", DEV, CmdStatus.ERROR, "install", "boom", None, True)
    assert isinstance(P.decode_update_result(P.encode_cmd_result("c", "ok", {"phase": "x"})), Rejected)
    assert isinstance(P.decode_update_result(P.encode_cmd_result("c", "ok", {"deployment": "d", "device": 5})),
                      Rejected)
    with pytest.raises(ValueError):
        P.encode_cmd_result("c", "maybe", {})          # encoders refuse what the contract does not allow


def test_rfc3339():
    assert P.rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert P.rfc3339(1.9995) == "1970-01-01T00:00:02.000Z"
    assert P.parse_time("1970-01-01T00:00:02.000Z") == 2.0
    assert P.parse_time("1970-01-01T00:00:02+01:00") == 2.0 - 3600
    for bad in ("1970-01-01T00:00:02", "yesterday", "", None, 5):
        assert P.parse_time(bad) is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_an_alarm_with_a_non_finite_reading_is_still_accepted(bad):
    """Receivers refuse NaN/Infinity, so the encoders must never write them: a broken
    sensor value inside an alarm becomes null, and the alarm itself still arrives."""
    doc = P.event_doc(schema=P.ALARM_SCHEMA, event_id="dev-1-00000001", gateway="gw-1", device="dev-1",
                      role="fall", klass="alarm", type="fall_detected", test=False, occurred_at=1.8e9,
                      received_at=1.8e9, sent_at=1.8e9, attempt=1, route="primary",
                      data={"peak_g": bad, "points": [1.0, bad], "ok": 2.5})
    for encode in (P.dumps, P.dumps_event):
        raw = encode(doc)
        assert b"NaN" not in raw and b"Infinity" not in raw
        got = P.decode_published(raw)
        assert not isinstance(got, Rejected), got
        assert got.alarm and got.event_id == "dev-1-00000001"
        assert got.body["data"] == {"peak_g": None, "points": [1.0, None], "ok": 2.5}
