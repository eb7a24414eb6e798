"""Small response console: a presenter over the platform simulator, for the demo and tests.

:class:`ResponseConsole` runs a :class:`~gateway.testing.platform.PlatformSim` (which
subscribes to the alarm and event topics, de-duplicates on ``event_id`` and answers
``wt.ack/1`` - ``received``, optionally ``accepted``) and prints each alarm once with
its end-to-end latency (receipt time - ``occurred_at``). Duplicate deliveries are
counted and not shown again: the receiver de-duplicates, as the contract in
docs/mqtt.md requires. Talks MQTT through the uplink's paho adapter.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from contracts.payloads import ALARM_SCHEMA, parse_time
from contracts.topics import ANY
from gateway.domain.ports import Clock, SystemClock
from gateway.testing.platform import Arrival, PlatformSim


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
    route: str = "primary"
    attempt: int = 1


@dataclass
class ConsoleStats:
    """What the console has seen; the counts are the simulator's."""

    sim: PlatformSim
    alarms: dict[str, SeenAlarm] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)

    @property
    def deliveries(self) -> int:
        return self.sim.deliveries

    @property
    def duplicate_deliveries(self) -> int:
        return self.sim.duplicates

    @property
    def acks_sent(self) -> int:
        return self.sim.acks_sent

    @property
    def rejected(self) -> int:
        return self.sim.rejected


class ResponseConsole:
    def __init__(self, link: Any, *, clock: Clock | None = None, out: TextIO | None = None,
                 ack: bool = True, accept: bool = False, by: str = "demo-console",
                 gateway_filter: str = ANY, events: bool = True,
                 on_alarm: Callable[[SeenAlarm], None] | None = None) -> None:
        self.link = link
        self.clock = clock or SystemClock()
        self.out = out or sys.stdout
        self.ack = ack
        self.accept = accept
        self.gateway_filter = gateway_filter
        self.events = events
        self.on_alarm = on_alarm
        self.sim = PlatformSim(link, auto_ack=ack, accept=accept, by=by, clock=self.clock, history=False,
                               on_arrival=self._first, on_duplicate=self._again)
        self.stats = ConsoleStats(self.sim)
        self._lock = threading.Lock()

    @property
    def by(self) -> str:
        return self.sim.by

    def start(self) -> "ResponseConsole":
        self.sim.start(self.gateway_filter, events=self.events)
        return self

    def _first(self, a: Arrival) -> None:
        body = a.payload
        if body.get("schema") != ALARM_SCHEMA:
            with self._lock:
                self.stats.events.add(a.event_id)
            return
        occurred = parse_time(body.get("occurred_at")) or a.arrived_at
        seen = SeenAlarm(a.event_id, str(body.get("gateway")), str(body.get("device")), a.type,
                         str(body.get("class")), occurred, a.arrived_at, max(0.0, (a.arrived_at - occurred) * 1000.0),
                         test=bool(body.get("test")), route=str(body.get("route")),
                         attempt=body["attempt"] if isinstance(body.get("attempt"), int) else 1)
        with self._lock:
            self.stats.alarms[a.event_id] = seen
        self._print(seen)
        if self.on_alarm is not None:
            self.on_alarm(seen)

    def _again(self, a: Arrival) -> None:
        with self._lock:
            seen = self.stats.alarms.get(a.event_id)
            if seen is not None:
                seen.deliveries += 1

    def _print(self, a: SeenAlarm) -> None:
        extra = " (TEST)" if a.test else ""
        route = f" via {a.route}" if a.route != "primary" else ""
        attempt = f" attempt {a.attempt}" if a.attempt > 1 else ""
        print(f"  ALARM {a.klass:<9} {a.type:<22} device {a.device}  latency {a.latency_ms:7.1f} ms"
              f"{route}{attempt}{extra}  [{a.event_id}]", file=self.out, flush=True)


def make_console_link(host: str, port: int, *, client_id: str, dispatch: Callable | None = None) -> Any:
    from gateway.adapters.mqtt import MqttLink

    return MqttLink(host=host, port=port, client_id=client_id, route="console", dispatch=dispatch)
