"""Monitoring: codecs never raise, batches fold correctly, the SQL sink is idempotent and
ordered on SQLite and PostgreSQL, and the support queries find what support staff need
(`fleet offline` included: what counts as offline, order, municipality scope)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.access import Actor, Role
from fleet.monitoring import (Health, Rejected, SqlMonitorSink, add_message, build_batch, decode_ack, decode_alarm,
                              decode_health, decode_state)
from fleet.monitoring._queries import failed_updates, list_offline, low_battery, silent_devices
from fleet.tests.factories import ROUTING, installations, seed_catalog, stock_kit

T0 = 1_800_000_000.0


def iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def health(gw="gw-1", at=T0, devices=(), **kw) -> tuple[str, bytes]:
    doc = {"schema": "wt.health/1", "gateway": gw, "at": iso(at), "version": kw.get("version", "0.1.0"),
           "uptime_s": 60, "uplink": {"state": "connected", "backlog": 0}, "journal": {"depth": 1, "alarms_pending": 0},
           "config_version": kw.get("config_version", 3),
           "devices": [{"device": d, "role": r, "last_seen": iso(ls), "battery_pct": b, "rssi": -60, "fw": "1.2.0",
                        "silent": s} for d, r, ls, b, s in devices]}
    return f"wt/v1/gw/{gw}/health", json.dumps(doc).encode()


def state(gw, online):
    return f"wt/v1/gw/{gw}/state", json.dumps({"schema": "wt.state/1", "gateway": gw, "online": online}).encode()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["health", "state", "alarm", "event", "ack", "config/applied",
                                                 "cmd/result", "nonsense", ""]))
def test_decoders_never_raise_on_garbage(payload, kind):
    b = build_batch([(f"wt/v1/gw/gw-1/{kind}", payload, T0)])
    assert b.messages == 1
    assert isinstance(decode_health("g", payload, T0), (Health, Rejected))
    decode_state("g", payload, T0), decode_alarm("g", payload, T0), decode_ack(payload, T0)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=12))
def test_health_decoder_survives_any_json_shape(doc):
    if isinstance(doc, dict):
        doc = {**doc, "schema": "wt.health/1"}
    out = decode_health("g", json.dumps(doc).encode(), T0)
    assert isinstance(out, (Health, Rejected))


def test_batch_routes_each_kind_and_counts_rejects():
    msgs = [health(devices=[("a4c1380a1b2c", "bed", T0, 55, False)]), state("gw-1", False),
            ("wt/v1/gw/gw-1/alarm", json.dumps({"schema": "wt.alarm/1", "event_id": "e1", "class": "care",
                                                "type": "fall_detected", "occurred_at": iso(T0)}).encode()),
            ("wt/v1/gw/gw-1/event", json.dumps({"schema": "wt.event/1", "event_id": "e2", "class": "event",
                                                "type": "fall_cancelled"}).encode()),
            ("wt/v1/gw/gw-1/event", json.dumps({"schema": "wt.event/1", "event_id": "e3", "class": "event",
                                                "type": "gps_position"}).encode()),
            ("wt/v1/gw/gw-1/ack", json.dumps({"schema": "wt.ack/1", "event_id": "e1", "status": "accepted",
                                              "at": iso(T0 + 42)}).encode()),
            ("wt/v1/gw/gw-1/config/applied", b'{"schema":"wt.config-applied/1","version":2,"status":"applied"}'),
            ("wt/v1/gw/gw-1/cmd/result", json.dumps({"schema": "wt.cmd-result/1", "cmd_id": "c", "status": "error",
                                                     "detail": {"deployment": "ro-1", "phase": "install",
                                                                "error": "disk full"}}).encode()),
            ("wt/v1/gw/gw-1/health", b"{broken"), ("other/topic", b"{}")]
    b = build_batch((t, p, T0 + i) for i, (t, p) in enumerate(msgs))
    assert (len(b.health), len(b.states), len(b.alarms), len(b.acks), len(b.applied), len(b.updates)) == (1, 1, 2, 1, 1, 1)
    assert b.rejected == {"not_json": 1, "topic": 1} and b.messages == 10
    assert [(q.reason, q.source, q.topic) for q in b.quarantine] == [("not_json", "gw-1", "wt/v1/gw/gw-1/health"),
                                                                     ("topic", "", "other/topic")]
    assert b.health[0].devices[0].battery_pct == 55 and b.acks[0].at == T0 + 42


def _write(store, msgs):
    SqlMonitorSink(store, staged_min=2).write(build_batch(msgs))


def test_sink_is_idempotent_and_never_moves_status_backwards(store):
    dev = ("a4c1380a1b2c", "bed", T0, 80, False)
    m1 = health(at=T0, devices=[dev])
    m2 = health(at=T0 + 60, devices=[("a4c1380a1b2c", "bed", T0 + 60, 15, False)], version="0.2.0")
    _write(store, [(*m1, T0), (*m2, T0 + 60), (*m1, T0)])          # redelivered m1 in the same batch
    _write(store, [(*m1, T0), (*state("gw-1", False), T0 + 30)])    # late: older than what is stored
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT count(*) FROM gateway_health") == 2
        g = tx.one("SELECT * FROM gateway_status WHERE gateway_id = ?", ("gw-1",))
        d = tx.one("SELECT * FROM device_status WHERE device_id = ?", ("a4c1380a1b2c",))
    assert (g["last_seen"], bool(g["online"]), g["version"]) == (T0 + 60, True, "0.2.0")
    assert d["battery_pct"] == 15
    _write(store, [(*state("gw-1", False), T0 + 120)])              # the last will: offline
    with store.transaction(write=False) as tx:
        assert not bool(tx.scalar("SELECT online FROM gateway_status WHERE gateway_id = ?", ("gw-1",)))
        assert tx.scalar("SELECT count(*) FROM gateway_state_log") == 2


def test_ack_before_alarm_is_merged_and_queries(store):
    ack = ("wt/v1/gw/gw-2/ack", json.dumps({"schema": "wt.ack/1", "event_id": "e9", "status": "accepted",
                                            "at": iso(T0 + 30)}).encode())
    alarm = ("wt/v1/gw/gw-2/alarm", json.dumps({"schema": "wt.alarm/1", "event_id": "e9", "class": "care",
                                                "type": "button_press", "occurred_at": iso(T0)}).encode())
    _write(store, [(*ack, T0 + 31)])                                 # other worker saw the ack first
    _write(store, [(*alarm, T0 + 1), (*health("gw-2", devices=[("00000000000a", "button", T0 - 7200, 9, False),
                                                               ("00000000000b", "door", T0, 70, True),
                                                               ("00000000000c", "bed", T0, 90, False)]), T0)])
    err = ("wt/v1/gw/gw-2/cmd/result", json.dumps({"schema": "wt.cmd-result/1", "cmd_id": "x", "status": "error",
                                                   "detail": {"deployment": "ro-9", "device": "00000000000a",
                                                              "phase": "download", "error": "bad signature"}}).encode())
    _write(store, [(*err, T0 + 5)])
    _write(store, [(*err, T0 + 9)])                                  # redelivered: stored once
    everyone = Actor("root", Role.ADMIN, None).municipalities
    with store.transaction(write=False) as tx:
        a = tx.one("SELECT * FROM alarm_log WHERE event_id = ?", ("e9",))
        assert (a["type"], a["ack_accepted_at"] - a["occurred_at"]) == ("button_press", 30)
        silent = silent_devices(tx, now=T0 + 60, minutes=60, scope=everyone)
        assert {r["device_id"] for r in silent} == {"00000000000a", "00000000000b"}
        low = low_battery(tx, threshold_pct=20, scope=everyone)
        assert [r["device_id"] for r in low] == ["00000000000a"]
        fails = failed_updates(tx, since=T0 - 1, scope=everyone)
        assert [(r["deployment"], r["error"]) for r in fails] == [("ro-9", "bad signature")]
        # a user scoped to another municipality sees none of it (gateway has no municipality here)
        other = Actor("bob", Role.SUPPORT, frozenset({"4601"})).municipalities
        assert low_battery(tx, threshold_pct=20, scope=other) == []


def test_add_message_ignores_progress_results():
    from fleet.monitoring import Batch

    b = Batch()
    add_message(b, "wt/v1/gw/g/cmd/result", json.dumps({"schema": "wt.cmd-result/1", "status": "progress",
                                                        "detail": {"deployment": "d", "phase": "downloaded"}}).encode(), T0)
    assert b.updates == [] and not b.rejected


def test_contract_with_the_gateway_health_payload():
    """The wt.health/1 a gateway sends (docs/mqtt.md) decodes into the fleet's record. The gateway's
    side of the contract (its health_payload decodes with contracts.payloads.decode_health) is
    gateway/tests/test_status.py; the fleet never imports the gateway."""
    doc = {"schema": "wt.health/1", "gateway": "gw-0001", "at": "2027-01-15T08:00:00.000Z", "version": "0.1.0",
           "uptime_s": 3600, "uplink": {"state": "connected", "route": "primary", "backlog": 2},
           "journal": {"depth": 12, "alarms_pending": 1, "shed": 0}, "config_version": 0,
           "devices": [{"device": "a4c1380a1b2c", "role": "button", "last_seen": "2027-01-15T07:59:55.000Z",
                        "battery_pct": 87, "rssi": -61, "fw": "1.2.0", "silent": False},
                       {"device": "a4c1380a1b2d", "role": "bed", "last_seen": None, "battery_pct": None,
                        "rssi": None, "fw": None, "silent": True}]}
    h = decode_health("gw-0001", json.dumps(doc).encode(), T0 + 1)
    assert isinstance(h, Health), h
    assert (h.at, h.uptime_s, h.uplink_state, h.backlog, h.journal_depth, h.alarms_pending, h.config_version) == (
        pytest.approx(T0), 3600, "connected", 2, 12, 1, 0)
    assert h.devices[0].last_seen == pytest.approx(T0 - 5) and h.devices[0].battery_pct == 87
    assert h.devices[1].silent is True and h.devices[1].last_seen is None


def test_offline_definition_order_and_scope(store, admin, clock):
    seed_catalog(store, admin, clock())
    kit = stock_kit(store, admin, clock(), 1)
    now = clock()
    with store.transaction() as tx:
        inst = installations(tx, clock).create(admin, resident_ref="R-OFF001", location="HOME-0001", kit=kit,
                                               consent_kind="consent", consent_date="2026-11-01", routing=ROUTING)
        rows = [("gw-fresh", now - 60, True), ("gw-stale", now - 3600, True), ("gw-said-off", now - 30, False),
                ("gw-never", None, False), (inst["gateway_id"], now - 7200, True)]
        tx.executemany("INSERT INTO gateway_status (gateway_id, last_seen, online, version, config_version)"
                       " VALUES (?, ?, ?, '0.1.0', 1)", rows)
    with store.transaction(write=False) as tx:
        total, got = list_offline(tx, admin, now=now, minutes=15)
        assert total == 4
        assert [r["gateway_id"] for r in got] == ["gw-never", inst["gateway_id"], "gw-stale", "gw-said-off"]
        assert got[1]["installation"] == inst["code"] and got[1]["municipality"] == "0301"
        oslo = Actor("o", Role.SUPPORT, frozenset({"0301"}))
        bergen = Actor("b", Role.SUPPORT, frozenset({"4601"}))
        assert [r["gateway_id"] for r in list_offline(tx, oslo, now=now, minutes=15)[1]] == [inst["gateway_id"]]
        assert list_offline(tx, bergen, now=now, minutes=15) == (0, [])
        assert list_offline(tx, admin, now=now, minutes=15, limit=2)[0] == 4
