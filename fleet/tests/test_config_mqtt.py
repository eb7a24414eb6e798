"""Config push -> retained wt.config/1 -> fake gateway -> wt.config-applied/1 -> drift, on a real Mosquitto."""
from __future__ import annotations

import json
import queue
import time

from fleet.clock import SystemClock
from fleet.config import (AppliedReport, ConfigService, Drift, MemoryConfigStore, Scope, decode_applied)
from fleet.mqtt import MqttClient



def fake_gateway(broker, gw_id, *, reject_key=None):
    """Tiny gateway: applies every wt.config/1 it gets (or rejects one naming a key)."""
    c = MqttClient(broker.host, broker.port, client_id=f"fake-{gw_id}").connect()
    got: list[dict] = []

    def on_config(topic, payload):
        doc = json.loads(json.loads(payload)["body"])      # inside the fleet's signed envelope
        got.append(doc)
        ok = reject_key is None
        c.publish_nowait(f"wt/v1/gw/{gw_id}/config/applied", json.dumps({
            "schema": "wt.config-applied/1", "version": doc["version"], "hash": doc["hash"],
            "status": "applied" if ok else "rejected",
            "error": None if ok else f"{reject_key}: not supported by this gateway; upgrade the gateway"}).encode(),
            qos=1, retain=True)

    c.subscribe(f"wt/v1/gw/{gw_id}/config", on_config)
    return c, got


def wait_for(q: queue.Queue, timeout_s=10.0) -> AppliedReport:
    rep = q.get(timeout=timeout_s)
    assert isinstance(rep, AppliedReport), rep
    return rep


def test_push_is_retained_and_applied_report_clears_drift(mosquitto):
    store = MemoryConfigStore(membership={"gw-1": ("oslo", "night"), "gw-2": ("oslo", None)})
    svc = ConfigService(store, SystemClock())
    svc.set_key(Scope.MUNICIPALITY, "oslo", "rules.bed.max_out_min", 30, by="t")
    svc.set_key(Scope.GATEWAY, "gw-2", "uplink.health_interval_s", 60, by="t")

    fleet = MqttClient(mosquitto.host, mosquitto.port, client_id="fleet-cfg").connect()
    reports: queue.Queue = queue.Queue()
    fleet.subscribe("$share/fleet/wt/v1/gw/+/config/applied",
                    lambda t, p: reports.put(decode_applied(t, p, now=time.time())))
    try:
        v1 = svc.push("gw-1", fleet)                       # gateway not connected yet: retained
        gw1, got1 = fake_gateway(mosquitto, "gw-1")
        rep = wait_for(reports)
        svc.record_applied(rep)
        assert (rep.gateway_id, rep.version) == ("gw-1", v1.version)
        assert got1[0]["config"]["rules"]["bed"]["max_out_min"] == 30
        assert svc.status("gw-1").drift is Drift.IN_SYNC

        gw2, _ = fake_gateway(mosquitto, "gw-2", reject_key="uplink.health_interval_s")
        svc.push("gw-2", fleet)
        svc.record_applied(wait_for(reports))
        st = svc.status("gw-2")
        assert st.drift is Drift.REJECTED and "uplink.health_interval_s" in st.error

        svc.set_key(Scope.GROUP, "night", "rules.bed.max_out_min", 20, by="t")
        assert svc.status("gw-1").drift is Drift.STALE
        v2 = svc.push("gw-1", fleet)
        rep = wait_for(reports)
        svc.record_applied(rep)
        assert rep.version == v2.version == v1.version + 1
        assert got1[-1]["config"]["rules"]["bed"]["max_out_min"] == 20
        assert svc.status("gw-1").drift is Drift.IN_SYNC
        gw1.close()
        gw2.close()
    finally:
        fleet.close()


def test_mqtt_adapter_queue_subscription_and_errors(mosquitto):
    import pytest

    from fleet.mqtt import MqttError, connect, parse_broker

    c = connect(f"mqtt://{mosquitto.host}:{mosquitto.port}")
    try:
        q = c.subscribe("wt/v1/gw/+/state")
        c.publish("wt/v1/gw/gw-9/state", b'{"online": true}', retain=True)
        msg = q.get(timeout=10)
        assert (msg.topic, msg.payload, msg.retain) == ("wt/v1/gw/gw-9/state", b'{"online": true}', False)
    finally:
        c.close()
    assert parse_broker("example.net") == ("example.net", 1883)
    with pytest.raises(MqttError, match="host:port"):
        parse_broker("example.net:http")
    from testkit.broker import free_port

    with pytest.raises(MqttError, match="cannot reach"):
        connect(f"mqtt://127.0.0.1:{free_port()}")          # nothing listens there
