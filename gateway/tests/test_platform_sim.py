"""The test kit's one platform simulator (gateway/testing/platform.py) and the console that
presents it, on an in-memory link: de-duplication, acks to the right topic, latency,
gateway state, rejections; and once against a real Mosquitto through its own paho link."""
from __future__ import annotations

import io
import json
import time

import pytest

from contracts.payloads import AckStatus, decode_ack, encode_state, event_doc, dumps_event
from contracts.topics import DeviceTopics, Topics
from gateway.testing.console import ResponseConsole
from gateway.testing.clock import FakeClock
from gateway.testing.platform import Arrival, FakePublisher, PlatformSim

GW, DEV = "gw-0001", "a4c1380a1b2c"
T = 1795413600.0


def body(n: int, *, alarm: bool = True, attempt: int = 1, gateway: str | None = GW) -> bytes:
    return dumps_event(event_doc(
        schema="wt.alarm/1" if alarm else "wt.event/1", event_id=f"{DEV}-{n:08x}", gateway=gateway, device=DEV,
        role="button", klass="care" if alarm else "event", type="button_press" if alarm else "heartbeat",
        test=False, occurred_at=T - 0.25, received_at=T - 0.2, sent_at=T - 0.1, attempt=attempt, route="primary",
        data={}))


def acks(link: FakePublisher) -> list[tuple[str, str, AckStatus]]:
    out = []
    for p in link.published:
        a = decode_ack(p.payload)
        assert not hasattr(a, "reason"), a
        out.append((p.topic, a.event_id, a.status))
    return out


def test_records_deduplicates_and_acks_every_delivery():
    link, clock = FakePublisher(), FakeClock(t=T)
    seen: list[Arrival] = []
    sim = PlatformSim(link, clock=clock, on_arrival=seen.append, accept=True).start()
    link.deliver(Topics(GW).alarm, body(1))
    link.deliver(Topics(GW).alarm, body(1, attempt=2))          # a re-send
    link.deliver(Topics(GW).event, body(2, alarm=False))
    link.deliver(Topics(GW).alarm, b"not json")
    assert sim.order == [f"{DEV}-00000001", f"{DEV}-00000002"] and sim.has(sim.order)
    assert (sim.deliveries, sim.duplicates, sim.rejected) == (3, 1, 1) and len(sim.raw) == 3
    assert [a.event_id for a in seen] == sim.order and seen[0].alarm and not seen[1].alarm
    # 'received' on every delivery (the gateway re-sends until it hears it), 'accepted' once
    assert acks(link) == [(Topics(GW).ack, f"{DEV}-00000001", AckStatus.RECEIVED),
                          (Topics(GW).ack, f"{DEV}-00000001", AckStatus.ACCEPTED),
                          (Topics(GW).ack, f"{DEV}-00000001", AckStatus.RECEIVED)]
    assert sim.acks_sent == 3
    assert sim.latencies_ms() == [pytest.approx(250.0)] and sim.alarms()[0].latency_ms("sent_at") == pytest.approx(100.0)
    assert [a.event_id for a in sim.wait_for(lambda a: a.type == "heartbeat", timeout_s=0)] == [f"{DEV}-00000002"]


def test_tracker_alarms_are_acked_on_the_trackers_topic():
    link = FakePublisher()
    sim = PlatformSim(link, clock=FakeClock(t=T)).start(devices=True)
    link.deliver(DeviceTopics(DEV).alarm, body(3, gateway=None))
    assert acks(link) == [(DeviceTopics(DEV).ack, f"{DEV}-00000003", AckStatus.RECEIVED)]
    assert sim.order == [f"{DEV}-00000003"]


def test_gateway_state_and_no_ack_mode():
    link = FakePublisher()
    sim = PlatformSim(link, auto_ack=False, history=False).start(state=True)
    assert not sim.gateway_online(GW)
    link.deliver(Topics(GW).state, encode_state(gateway_id=GW, online=True, version="0.1.0", since=T))
    assert sim.gateway_online(GW)
    link.deliver(Topics(GW).state, encode_state(gateway_id=GW, online=False, version="0.1.0", since=T))
    assert not sim.gateway_online(GW)
    link.deliver(Topics(GW).alarm, body(4))
    assert link.published == [] and sim.order == [f"{DEV}-00000004"] and sim.raw == [] and sim.arrivals == []


def test_console_presents_the_simulator():
    link, out = FakePublisher(), io.StringIO()
    console = ResponseConsole(link, clock=FakeClock(t=T), out=out).start()
    for attempt in (1, 2):
        link.deliver(Topics(GW).alarm, body(5, attempt=attempt))
    link.deliver(Topics(GW).event, body(6, alarm=False))
    s = console.stats
    (alarm,) = s.alarms.values()
    assert (alarm.type, alarm.deliveries, alarm.gateway) == ("button_press", 2, GW) and alarm.latency_ms == pytest.approx(250.0)
    assert s.events == {f"{DEV}-00000006"}
    assert (s.deliveries, s.duplicate_deliveries, s.acks_sent, s.rejected) == (3, 1, 2, 0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "ALARM care" in lines[0] and "latency   250.0 ms" in lines[0]


def test_on_a_real_broker_with_its_own_paho_link(mosquitto):
    from gateway.testing.platform import PahoLink

    sim = PlatformSim.on_broker(mosquitto.host, mosquitto.port, client_id="t-platform").start(state=True)
    gw = PahoLink(mosquitto.host, mosquitto.port, client_id="t-gw")
    got: list[bytes] = []
    gw.subscribe(Topics(GW).ack, lambda t, p: got.append(p))
    gw.start()
    try:
        gw.publish(Topics(GW).state, encode_state(gateway_id=GW, online=True, version="0.1.0", since=T))
        gw.publish(Topics(GW).alarm, body(7))
        assert sim.wait(lambda s: s.gateway_online(GW) and s.acks_sent == 1, 10)
        assert sim.wait_for(lambda a: a.type == "button_press", timeout_s=10)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [json.loads(p)["event_id"] for p in got] == [f"{DEV}-00000007"]
    finally:
        gw.stop()
        sim.stop()
