"""`gateway console` against a real Mosquitto: prints alarms with latency, acks, de-duplicates."""
from __future__ import annotations

import json
import subprocess
import time

from gateway.domain.model import Event, EventCode, Role
from gateway.adapters.mqtt import MqttLink
from gateway.domain.payload import encode_event
from gateway.tests._kit import GATEWAY_EXE as GATEWAY


def test_console_prints_acks_and_dedups(mosquitto):
    proc = subprocess.Popen([GATEWAY, "console", "--port", str(mosquitto.port), "--duration", "6", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acks: list[dict] = []
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="t-gw")
    link.subscribe("wt/v1/gw/gw-c/ack", lambda t, p: acks.append(json.loads(p)))
    link.start()
    try:
        deadline = time.monotonic() + 10
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.5)                                  # the console subscribes
        now = time.time()
        ev = Event("a4c1380a1b2c-00000007", "a4c1380a1b2c", EventCode.FALL_DETECTED, now - 0.25, now,
                   Role.FALL, 7, {"peak_cg": 400, "placement": 0})
        for attempt in (1, 2):                          # a re-send with the same event_id
            link.publish("wt/v1/gw/gw-c/alarm", encode_event(ev, gateway_id="gw-c", attempt=attempt,
                                                             route="primary", sent_at=now), qos=1)
        out, err = proc.communicate(timeout=30)
    finally:
        link.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    alarm_lines = [ln for ln in lines if "ALARM" in ln]
    assert len(alarm_lines) == 1 and "fall_detected" in alarm_lines[0] and "latency" in alarm_lines[0]
    latency_ms = float(alarm_lines[0].split("latency")[1].split("ms")[0])
    assert 200 <= latency_ms < 10_000                    # includes the 250 ms the event waited
    summary = json.loads(lines[-1])
    assert summary["alarms"] == 1 and summary["duplicate_deliveries"] == 1 and summary["acks_sent"] == 2
    assert [a["status"] for a in acks] == ["received", "received"]
    assert all(a["event_id"] == ev.event_id and a["schema"] == "wt.ack/1" for a in acks)
