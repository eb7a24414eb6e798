"""Response-platform stub: records what reaches the platform and acknowledges alarms.

It speaks the platform side of docs/mqtt.md over a real MQTT v5 connection: subscribes
to the gateway and device alarm/event topics, de-duplicates on ``event_id`` (counting
duplicates), measures latency from the event's ``received_at``/``occurred_at`` to
arrival, and publishes ``wt.ack/1`` for every alarm (configurable).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable


def parse_ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Arrival:
    topic: str
    payload: dict[str, Any]
    arrived_at: float

    @property
    def event_id(self) -> str:
        return str(self.payload.get("event_id", ""))

    @property
    def type(self) -> str:
        return str(self.payload.get("type", ""))

    def latency_ms(self, since: str = "occurred_at") -> float | None:
        t0 = parse_ts(self.payload.get(since))
        return None if t0 is None else (self.arrived_at - t0) * 1000.0


@dataclass
class PlatformStub:
    host: str
    port: int
    ack: bool = True
    accept: bool = False      # also send status "accepted" (an operator took it) after "received"
    client_id: str = "hil-platform"
    arrivals: list[Arrival] = field(default_factory=list)
    duplicates: int = 0
    acks_sent: int = 0
    _seen: set[str] = field(default_factory=set)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)   # gateway id -> last wt.state/1
    _cond: threading.Condition = field(default_factory=threading.Condition)
    on_arrival: Callable[[Arrival], None] | None = None

    def start(self, timeout_s: float = 10.0) -> "PlatformStub":
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5)

        def on_connect(client, userdata, flags, rc, props=None):
            for t in ("wt/v1/gw/+/alarm", "wt/v1/gw/+/event", "wt/v1/dev/+/alarm", "wt/v1/dev/+/event",
                      "wt/v1/gw/+/state"):
                client.subscribe(t, qos=1)
            self._connected.set()

        def on_message(client, userdata, msg):
            now = time.time()
            try:
                payload = json.loads(msg.payload)
            except ValueError:
                payload = {"_raw": msg.payload.hex()}
            arr = Arrival(msg.topic, payload, now)
            if msg.topic.endswith("/state"):
                with self._cond:
                    self.states[msg.topic.split("/")[3]] = payload
                    self._cond.notify_all()
                return
            with self._cond:
                if arr.event_id and arr.event_id in self._seen:
                    self.duplicates += 1
                else:
                    if arr.event_id:
                        self._seen.add(arr.event_id)
                    self.arrivals.append(arr)
                self._cond.notify_all()
            if self.on_arrival:
                self.on_arrival(arr)
            if self.ack and msg.topic.endswith("/alarm") and arr.event_id:
                ack_topic = msg.topic.rsplit("/", 1)[0] + "/ack"
                for status in ("received", "accepted") if self.accept else ("received",):
                    client.publish(ack_topic, json.dumps({
                        "schema": "wt.ack/1", "event_id": arr.event_id, "status": status,
                        "by": self.client_id,
                        "at": datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z")}), qos=1)
                    self.acks_sent += 1

        c.on_connect = on_connect
        c.on_message = on_message
        c.connect(self.host, self.port, keepalive=30)
        c.loop_start()
        self._client = c
        if not self._connected.wait(timeout_s):
            raise TimeoutError(f"platform stub could not connect to {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        c = getattr(self, "_client", None)
        if c is not None:
            c.disconnect()
            c.loop_stop()

    def wait_for(self, pred: Callable[[Arrival], bool], timeout_s: float = 10.0, count: int = 1) -> list[Arrival]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                hits = [a for a in self.arrivals if pred(a)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    return hits
                self._cond.wait(left)

    def gateway_online(self, gateway_id: str) -> bool:
        with self._cond:
            return bool(self.states.get(gateway_id, {}).get("online"))

    def all_arrivals(self) -> list[Arrival]:
        with self._cond:
            return list(self.arrivals)

    def alarms(self) -> list[Arrival]:
        with self._cond:
            return [a for a in self.arrivals if a.topic.endswith("/alarm")]
