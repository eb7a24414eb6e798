"""MQTT adapter for the fleet (paho-mqtt 2.x, MQTT v5): the only fleet module importing paho.

paho return codes become :class:`MqttError`; callbacks become bounded queues; publish
waits for the broker's PUBACK. Reconnect policy is the caller's (workers, commissioning).
"""
from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from .errors import FleetError


class MqttError(FleetError):
    code = "mqtt"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    received_at: float          # local clock when the message arrived
    retain: bool = False


class MqttClient:
    """A connected MQTT v5 client. ``with MqttClient(host, port) as c: c.publish(...)``."""

    def __init__(self, host: str, port: int = 1883, *, client_id: str | None = None,
                 username: str | None = None, password: str | None = None,
                 clock: Callable[[], float] = time.time, queue_size: int = 10_000) -> None:
        self.host, self.port = host, port
        self._clock = clock
        self._connected = threading.Event()
        self._rc: object = None
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"fleet-{uuid.uuid4().hex[:10]}",
                                   protocol=paho.MQTTv5)
        if username:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._queues: list[tuple[str, queue.Queue[Message]]] = []
        self._queue_size = queue_size
        self._lock = threading.Lock()

    # paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._rc = reason_code
        if not reason_code.is_failure:
            self._connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        m = Message(msg.topic, bytes(msg.payload), self._clock(), bool(msg.retain))
        with self._lock:
            targets = [q for pattern, q in self._queues if paho.topic_matches_sub(pattern, msg.topic)]
        for q in targets:
            try:
                q.put_nowait(m)
            except queue.Full:
                pass  # bounded: the consumer is too slow; counted by qsize at the consumer

    def connect(self, timeout_s: float = 10.0) -> "MqttClient":
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise MqttError(f"cannot reach MQTT broker {self.host}:{self.port}: {exc}; check the broker address",
                            host=self.host, port=self.port) from exc
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            self._client.loop_stop()
            raise MqttError(f"MQTT broker {self.host}:{self.port} did not accept the connection "
                            f"within {timeout_s:.0f} s (reason: {self._rc})", host=self.host, port=self.port)
        return self

    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False,
                timeout_s: float = 10.0, user_properties: dict[str, str] | None = None) -> None:
        props = None
        if user_properties:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = list(user_properties.items())
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}", topic=topic)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise MqttError(f"broker did not acknowledge publish to {topic} within {timeout_s} s", topic=topic)

    def subscribe(self, pattern: str, *, qos: int = 1, maxsize: int | None = None,
                  timeout_s: float = 10.0) -> "queue.Queue[Message]":
        """Subscribe and return a bounded queue that receives matching messages."""
        q: queue.Queue[Message] = queue.Queue(maxsize=maxsize or self._queue_size)
        with self._lock:
            self._queues.append((pattern, q))
        done = threading.Event()
        prev = self._client.on_subscribe

        def on_sub(client, userdata, mid, reason_codes, properties):
            done.set()

        self._client.on_subscribe = on_sub
        rc, _mid = self._client.subscribe(pattern, qos=qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"subscribe {pattern} failed: {paho.error_string(rc)}", topic=pattern)
        if not done.wait(timeout_s):
            raise MqttError(f"broker did not confirm subscription {pattern} within {timeout_s} s", topic=pattern)
        self._client.on_subscribe = prev
        return q

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> "MqttClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, *, clock: Callable[[], float] = time.time, timeout_s: float = 10.0) -> MqttClient:
    """``mqtt://[user:pass@]host[:port]`` -> a connected client."""
    from urllib.parse import urlparse

    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "tcp"):
        raise MqttError(f"unsupported MQTT URL {url!r}; use mqtt://host:port", url=url)
    return MqttClient(u.hostname or "127.0.0.1", u.port or 1883, username=u.username, password=u.password,
                      clock=clock).connect(timeout_s)
