"""Small response console: the platform side of the demo and of commissioning tests.

Subscribes to ``wt/v1/gw/+/alarm`` (and ``…/event`` to count telemetry), prints each
alarm once with its end-to-end latency (receipt time − ``occurred_at``) and answers
``wt.ack/1`` (``received``, optionally ``accepted``). Duplicate deliveries (same
``event_id``) are counted and not shown again: the receiver de-duplicates, as the
contract in docs/mqtt.md requires. Talks MQTT through the uplink's paho adapter.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from gateway.domain.ports import Clock, SystemClock
from gateway.domain.payload import AckStatus
from gateway.domain.uplink_errors import NotConnected
from gateway.domain.payload import Published, decode_published, encode_ack, parse_rfc3339


@dataclass
class SeenAlarm:
    event_id: str
    gateway: str
    device: str
    type: str
    klass: str
    occurred_at: float
    received_at: float
    latency_ms: float
    deliveries: int = 1
    test: bool = False


@dataclass
class ConsoleStats:
    alarms: dict[str, SeenAlarm] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)
    deliveries: int = 0
    duplicate_deliveries: int = 0
    acks_sent: int = 0
    rejected: int = 0


class ResponseConsole:
    def __init__(self, link: Any, *, clock: Clock | None = None, out: TextIO | None = None,
                 ack: bool = True, accept: bool = False, by: str = "demo-console",
                 gateway_filter: str = "+", events: bool = True,
                 on_alarm: Callable[[SeenAlarm], None] | None = None) -> None:
        self.link = link
        self.clock = clock or SystemClock()
        self.out = out or sys.stdout
        self.ack = ack
        self.accept = accept
        self.by = by
        self.gateway_filter = gateway_filter
        self.events = events
        self.on_alarm = on_alarm
        self.stats = ConsoleStats()
        self._lock = threading.Lock()

    def start(self) -> "ResponseConsole":
        self.link.subscribe(f"wt/v1/gw/{self.gateway_filter}/alarm", self._on_message)
        if self.events:
            self.link.subscribe(f"wt/v1/gw/{self.gateway_filter}/event", self._on_message)
        return self

    def _on_message(self, topic: str, payload: bytes) -> None:
        now = self.clock.time()
        d = decode_published(payload)
        with self._lock:
            if not isinstance(d, Published):
                self.stats.rejected += 1
                return
            self.stats.deliveries += 1
            if not d.alarm:
                if d.event_id in self.stats.events:
                    self.stats.duplicate_deliveries += 1
                self.stats.events.add(d.event_id)
                return
            known = self.stats.alarms.get(d.event_id)
            if known is not None:
                known.deliveries += 1
                self.stats.duplicate_deliveries += 1
                first = False
            else:
                body = d.body
                occurred = parse_rfc3339(str(body.get("occurred_at"))) or now
                known = SeenAlarm(d.event_id, str(body.get("gateway")), str(body.get("device")),
                                  str(body.get("type")), str(body.get("class")), occurred, now,
                                  max(0.0, (now - occurred) * 1000.0), test=bool(body.get("test")))
                self.stats.alarms[d.event_id] = known
                first = True
        gw = topic.split("/")[3] if topic.count("/") >= 4 else known.gateway
        if first:
            self._print(known, d)
            if self.on_alarm is not None:
                self.on_alarm(known)
        if self.ack:  # re-ack duplicates too: the gateway re-sends until it hears 'received'
            self._ack(gw, d.event_id, AckStatus.RECEIVED)
            if self.accept and first:
                self._ack(gw, d.event_id, AckStatus.ACCEPTED)

    def _ack(self, gw: str, event_id: str, status: AckStatus) -> None:
        try:
            self.link.publish(f"wt/v1/gw/{gw}/ack",
                              encode_ack(event_id=event_id, status=status, by=self.by, at=self.clock.time()), qos=1)
            with self._lock:
                self.stats.acks_sent += 1
        except NotConnected:
            pass

    def _print(self, a: SeenAlarm, d: Published) -> None:
        extra = " (TEST)" if a.test else ""
        route = f" via {d.route}" if d.route != "primary" else ""
        attempt = f" attempt {d.attempt}" if d.attempt > 1 else ""
        print(f"  ALARM {a.klass:<9} {a.type:<22} device {a.device}  latency {a.latency_ms:7.1f} ms"
              f"{route}{attempt}{extra}  [{a.event_id}]", file=self.out, flush=True)


def make_console_link(host: str, port: int, *, client_id: str, dispatch: Callable | None = None) -> Any:
    from gateway.adapters.mqtt import MqttLink

    return MqttLink(host=host, port=port, client_id=client_id, route="console", dispatch=dispatch)
