"""Poison input and foreign gateways against a real PostgreSQL and a real Mosquitto.

The two incidents, reproduced: (1) a NUL in one health message stalled a PostgreSQL worker's
batch forever (every retry failed the same way); (2) gateway A rewrote gateway B's device
status and turned B's care alarm into a test cancel. Now poison is quarantined (reason,
topic, size, first bytes, time), counted, acknowledged and never seen again — even when it
gets past the screen to the database — and nothing of gateway B changes when A lies.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from io import StringIO

import pytest

from fleet.cli import main
from fleet.clock import SystemClock
from fleet.monitoring import IngestWorker, SqlMonitorSink, build_batch
from fleet.mqtt import MqttClient
from fleet.store import open_store


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def health(gw: str, at: float, devices=(), version: str = "0.4.0") -> bytes:
    return json.dumps({"schema": "wt.health/1", "gateway": gw, "at": iso(at), "version": version,
                       "devices": [{"device": d, "role": r, "battery_pct": b, "silent": s, "fw": "1.2.0",
                                    "last_seen": iso(at)} for d, r, b, s in devices]}).encode()


def alarm(gw: str, event_id: str, *, device: str | None, klass: str = "care", typ: str = "fall_detected",
          test: bool = False, schema: str = "wt.alarm/1") -> bytes:
    now = time.time()
    return json.dumps({"schema": schema, "event_id": event_id, "gateway": gw, "device": device, "role": "button",
                       "class": klass, "type": typ, "test": test, "occurred_at": iso(now), "received_at": iso(now),
                       "sent_at": iso(now), "attempt": 1, "route": "primary", "data": {}}).encode()


def worker(mosquitto, url: str, name: str = "ingest-poison") -> IngestWorker:
    client = MqttClient(mosquitto.host, mosquitto.port, client_id=name, manual_ack=True, session_expiry_s=300)
    return IngestWorker(client, lambda: SqlMonitorSink(open_store(url, migrate=False), close_store=True, worker=name),
                        clock=SystemClock(), flush_s=0.05, name=name).start()


def wait_written(w: IngestWorker, n: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while w.stats.written < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.stats.written >= n, w.stats


def no_redelivery(mosquitto, url: str, name: str) -> int:
    """Restart the worker on the same persistent session: what the broker still holds for it."""
    w = worker(mosquitto, url, name)
    time.sleep(1.0)
    return w.stop().received


@pytest.fixture
def pg(pg_dsn):
    s = open_store(pg_dsn)                     # migrated once; workers open their own stores
    yield pg_dsn, s
    s.close()


def test_a_nul_in_one_health_message_is_quarantined_not_retried_forever(mosquitto, pg):
    url, store = pg
    w = worker(mosquitto, url)
    pub = MqttClient(mosquitto.host, mosquitto.port, client_id="poison-pub").connect()
    t0 = time.time()
    good = [(f"wt/v1/gw/gw-{i:03d}/health", health(f"gw-{i:03d}", t0 + i)) for i in range(30)]
    nul = health("gw-nul", t0, version="0.4.0\u0000evil")          # JSON-escaped: decodes to a NUL
    assert b"\\u0000" in nul
    raw = b'{"schema":"wt.health/1","at":"' + iso(t0).encode() + b'","version":"a\x00b"}'
    for topic, body in good[:15] + [("wt/v1/gw/gw-nul/health", nul), ("wt/v1/gw/gw-raw/health", raw)] + good[15:]:
        pub.publish(topic, body)
    pub.close()
    try:
        wait_written(w, 32)
        stats = w.stop()
    finally:
        w.stop()
    assert stats.rejected == 2 and stats.write_errors == 0          # screened: the database never saw them
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT count(*) FROM gateway_health") == 30
        assert tx.scalar("SELECT count(*) FROM gateway_health WHERE gateway_id IN ('gw-nul', 'gw-raw')") == 0
        rows = {r["source"]: r for r in tx.query("SELECT * FROM ingest_quarantine")}
    assert set(rows) == {"gw-nul", "gw-raw"}
    q = rows["gw-nul"]
    assert (q["reason"], q["topic"], q["size"], q["count"]) == ("nul", "wt/v1/gw/gw-nul/health", len(nul), 1)
    assert q["head_hex"] == nul[:32].hex() and bytes.fromhex(q["head_hex"]).startswith(b'{"schema": "wt.health/1"')
    assert t0 - 5 < q["first_at"] <= q["last_at"] < time.time() + 5 and q["worker"] == "ingest-poison"
    assert rows["gw-raw"]["reason"] == "nul" and "offset" in rows["gw-raw"]["detail"]
    assert no_redelivery(mosquitto, url, "ingest-poison") == 0       # acknowledged: never delivered again


def test_poison_that_gets_past_the_screen_is_found_by_splitting_the_batch(mosquitto, pg, monkeypatch):
    """The safety net for poison nobody foresaw: with the screen switched off the NUL reaches
    PostgreSQL, which refuses the batch while answering a ping: the worker halves the batch
    until the one message fails alone, quarantines it, stores the rest, acknowledges all."""
    import fleet.monitoring._ingest as ingest

    monkeypatch.setattr(ingest, "precheck", lambda payload: None)
    url, store = pg
    w = worker(mosquitto, url, "ingest-net")
    pub = MqttClient(mosquitto.host, mosquitto.port, client_id="net-pub").connect()
    t0 = time.time()
    msgs = [(f"wt/v1/gw/gw-{i:03d}/health", health(f"gw-{i:03d}", t0 + i)) for i in range(40)]
    msgs.insert(23, ("wt/v1/gw/gw-bad/health", health("gw-bad", t0, version="x\u0000y")))
    for topic, body in msgs:
        pub.publish(topic, body)
    pub.close()
    try:
        wait_written(w, 41)
        stats = w.stop()
    finally:
        w.stop()
    assert stats.write_errors >= 2 and stats.split_writes >= 2 and stats.rejected == 1
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT count(*) FROM gateway_health") == 40
        q = tx.one("SELECT reason, source, topic, count FROM ingest_quarantine")
    assert q == {"reason": "store_rejected", "source": "gw-bad", "topic": "wt/v1/gw/gw-bad/health", "count": 1}
    assert no_redelivery(mosquitto, url, "ingest-net") == 0


def _registry(store) -> tuple[str, str]:
    """An installation whose gateway is gw-bbb; returns (its button's device id, installation code)."""
    from fleet.access import Actor, Role
    from fleet.tests.factories import ROUTING, installations, seed_catalog, stock_kit
    from fleet.tests.conftest import FakeClock

    admin, clock = Actor("root", Role.ADMIN), FakeClock(time.time())
    seed_catalog(store, admin, clock())
    kit = stock_kit(store, admin, clock(), 1)
    with store.transaction() as tx:
        inst = installations(tx, clock).create(admin, resident_ref="R-ABC123", location="HOME-0001", kit=kit,
                                               consent_kind="consent", consent_date="2026-11-20", routing=ROUTING)
        tx.execute("UPDATE item SET hw_id = ? WHERE hw_id = ?", ("gw-bbb", inst["gateway_id"]))
        tx.execute("UPDATE installation SET gateway_id = ? WHERE code = ?", ("gw-bbb", inst["code"]))
    button = next(d["hw_id"] for d in inst["devices"] if d["role"] == "button")
    return button, inst["code"]


def test_gateway_a_cannot_rewrite_gateway_b(mosquitto, pg, tmp_path, capsys, monkeypatch):
    url, store = pg
    dev_b, _ = _registry(store)                      # registered to gw-bbb's installation
    loose = "0000000000ff"                           # in no installation: gw-bbb reports it first
    own_a = "0000000000aa"
    w = worker(mosquitto, url, "ingest-owners")
    pub = MqttClient(mosquitto.host, mosquitto.port, client_id="owners-pub").connect()
    t0 = time.time()
    try:
        pub.publish("wt/v1/gw/gw-bbb/health", health("gw-bbb", t0, [(dev_b, "button", 80, False),
                                                                    (loose, "door", 70, False)]))
        pub.publish("wt/v1/gw/gw-bbb/alarm", alarm("gw-bbb", "evt-b-1", device=dev_b))
        wait_written(w, 2)
        # gateway A lies: B's devices flat and silent, B's care alarm a test cancel, a fake alarm,
        # a fake operator acceptance on its own ack topic
        pub.publish("wt/v1/gw/gw-aaa/health", health("gw-aaa", t0 + 1, [(dev_b, "button", 5, True),
                                                                         (loose, "door", 1, True),
                                                                         (own_a, "bed", 50, False)]))
        pub.publish("wt/v1/gw/gw-aaa/event", alarm("gw-aaa", "evt-b-1", device=None, klass="event",
                                                   typ="button_cancel", test=True, schema="wt.event/1"))
        pub.publish("wt/v1/gw/gw-aaa/alarm", alarm("gw-aaa", "evt-a-fake", device=dev_b))
        pub.publish("wt/v1/gw/gw-aaa/ack", json.dumps({"schema": "wt.ack/1", "event_id": "evt-b-1",
                                                       "status": "accepted", "at": iso(t0 + 2)}).encode())
        wait_written(w, 6)
    finally:
        pub.close()
        stats = w.stop()
    assert stats.rejected == 4 and stats.write_errors == 0
    with store.transaction(write=False) as tx:
        dev = {r["device_id"]: r for r in tx.query("SELECT device_id, gateway_id, battery_pct, silent "
                                                     "FROM device_status")}
        evt = tx.one("SELECT gateway_id, device_id, class, type, test, ack_accepted_at FROM alarm_log "
                     "WHERE event_id = ?", ("evt-b-1",))
        fake = tx.scalar("SELECT count(*) FROM alarm_log WHERE event_id = ?", ("evt-a-fake",))
        a_sample = tx.scalar("SELECT count(*) FROM gateway_health WHERE gateway_id = ?", ("gw-aaa",))
        q = {(r["reason"], r["topic"]): r for r in tx.query("SELECT * FROM ingest_quarantine WHERE source = ?",
                                                             ("gw-aaa",))}
    assert (dev[dev_b]["gateway_id"], dev[dev_b]["battery_pct"], bool(dev[dev_b]["silent"])) == ("gw-bbb", 80, False)
    assert (dev[loose]["gateway_id"], dev[loose]["battery_pct"]) == ("gw-bbb", 70)     # first reporter owns it
    assert (dev[own_a]["gateway_id"], dev[own_a]["battery_pct"]) == ("gw-aaa", 50)     # A's own device: kept
    assert a_sample == 1                                                                 # and A's own sample
    assert evt == {"gateway_id": "gw-bbb", "device_id": dev_b, "class": "care", "type": "fall_detected",
                   "test": False, "ack_accepted_at": None}
    assert fake == 0
    assert set(q) == {("not_owner", "wt/v1/gw/gw-aaa/health"), ("event_clash", "wt/v1/gw/gw-aaa/event"),
                      ("not_owner", "wt/v1/gw/gw-aaa/alarm"), ("event_clash", "wt/v1/gw/gw-aaa/ack")}
    assert dev_b in q[("not_owner", "wt/v1/gw/gw-aaa/health")]["detail"] and \
        "owner gw-bbb" in q[("not_owner", "wt/v1/gw/gw-aaa/health")]["detail"]

    # the counters are visible to support: `fleet monitor status` and `fleet monitor quarantine`
    env = {"FLEET_DB": url, "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    monkeypatch.setattr(sys, "stdin", StringIO("s3cret\n"))
    assert main(["user", "bootstrap", "root", "--password-stdin"], env=env) == 0
    monkeypatch.setattr(sys, "stdin", StringIO("s3cret\n"))
    assert main(["login", "root", "--password-stdin"], env=env) == 0
    capsys.readouterr()
    assert main(["--json", "monitor", "status"], env=env) == 0
    status = json.loads(capsys.readouterr().out)
    wk = {x["worker"]: x for x in status["workers"]}["ingest-owners"]
    assert (wk["state"], wk["received"], wk["written"], wk["quarantined"]) == ("stopped", 6, 6, 4)
    assert {t["reason"]: t["total"] for t in status["quarantine"]} == {"not_owner": 2, "event_clash": 2}
    assert main(["monitor", "quarantine", "--reason", "not_owner"], env=env) == 0
    out = capsys.readouterr().out
    assert "wt/v1/gw/gw-aaa/health" in out and "wt/v1/gw/gw-aaa/alarm" in out and "event_clash" not in out
    assert main(["monitor", "quarantine", "--reason", "not_owners"], env=env) == 2
    assert "no such reason; did you mean not_owner" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["oversized", "not_utf8", "non_finite", "bad_text", "out_of_range", "invalid"])
def test_each_kind_of_poison_is_named(case):
    t = time.time()
    body = {
        "oversized": b'{"schema":"wt.health/1","pad":"' + b"x" * 70_000 + b'"}',
        "not_utf8": b'{"schema":"wt.health/1","version":"\xff\xfe"}',
        "non_finite": b'{"schema":"wt.health/1","at":"2026-11-23T07:00:00Z","uptime_s":NaN}',
        "bad_text": b'{"schema":"wt.health/1","at":"2026-11-23T07:00:00Z","version":"\\ud800"}',
        "out_of_range": b'{"schema":"wt.health/1","at":"2026-11-23T07:00:00Z","uptime_s":' + b"9" * 30 + b"}",
        "invalid": b'{"schema":"wt.health/1"}',
    }[case]
    b = build_batch([("wt/v1/gw/gw-x/health", body, t)])
    assert not b.health and [q.reason for q in b.quarantine] == [case] and b.rejected == {case: 1}
    q = b.quarantine[0]
    assert (q.source, q.topic, q.size, q.head_hex, q.at) == ("gw-x", "wt/v1/gw/gw-x/health", len(body),
                                                            body[:32].hex(), t)


def test_a_good_escape_is_not_poison():
    t = time.time()
    body = json.dumps({"schema": "wt.health/1", "at": iso(t), "version": "Ålesund 😀 NaN-free"}).encode()
    assert b"\\u" in body
    b = build_batch([("wt/v1/gw/gw-x/health", body, t)])
    assert len(b.health) == 1 and not b.quarantine and b.health[0].version == "Ålesund 😀 NaN-free"
