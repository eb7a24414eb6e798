"""The fleet's only paho-mqtt module: a small blocking-friendly MQTT v5 client adapter.

* ``connect()`` waits for CONNACK; paho return codes become :class:`MqttError`.
* ``subscribe()`` waits for SUBACK and routes messages to handlers by filter; shared
  subscriptions (``$share/<group>/<filter>``) are matched on ``<filter>``.
* ``publish()`` waits for the broker's PUBACK (QoS 1); ``publish_nowait()`` does not.
* ``manual_ack=True`` lets a consumer PUBACK only after it has stored the message
  (at-least-once into the database): handlers get a :class:`Message`; call ``ack(msg)``.

Handlers run on paho's network thread: they must be quick (queue the work).
"""
from __future__ import annotations

import queue
import struct
import threading
import uuid
from typing import Callable, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from contracts.topics import strip_share
from fleet.errors import FleetError

_PUBACK = struct.Struct("!BBH")


class MqttError(FleetError):
    code = "mqtt_error"
    exit_code = 69


class Message(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


Handler = Callable[[str, bytes], None]
RawHandler = Callable[[Message], None]


class _BufferedSocket:
    """Read-ahead wrapper for paho's plain TCP socket.

    paho reads each packet with several tiny ``recv`` calls (type byte, length bytes,
    body) and a ``select`` per packet. This wrapper reads up to 256 KiB at a time and
    serves the small reads from the buffer; ``pending()`` (which paho already honours for
    TLS sockets) tells paho's loop not to wait in ``select`` while buffered bytes remain.
    """

    __slots__ = ("_sock", "_buf")

    def __init__(self, sock) -> None:
        self._sock = sock
        self._buf = bytearray()

    def recv(self, bufsize: int) -> bytes:
        if not self._buf:
            data = self._sock.recv(max(bufsize, 262144))   # BlockingIOError propagates to paho
            if not data:
                return b""
            if len(data) <= bufsize:
                return data
            self._buf += data
        out = bytes(self._buf[:bufsize])
        del self._buf[:bufsize]
        return out

    def pending(self) -> int:
        return len(self._buf)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _Client(paho.Client):
    def loop_read(self, max_packets: int = 1):  # type: ignore[override]
        """Read every packet already buffered, not one packet per ``select``."""
        rc = super().loop_read(max_packets)
        for _ in range(10000):
            sock = self._sock
            if rc or not isinstance(sock, _BufferedSocket) or not sock.pending():
                break
            rc = super().loop_read(max_packets)
        return rc

    def _create_socket(self):  # type: ignore[override]
        sock = super()._create_socket()
        if self._transport == "tcp" and not self._ssl:
            return _BufferedSocket(sock)
        return sock


def _match_filter(sub: str) -> tuple[str, ...]:
    """The filter's levels, without a ``$share/<group>/`` prefix."""
    return tuple(strip_share(sub).split("/"))


def _matches(flt: tuple[str, ...], levels: list[str]) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest); paho's helper builds a trie per call."""
    n = len(levels)
    for i, f in enumerate(flt):
        if f == "#":
            return True
        if i >= n or (f != "+" and f != levels[i]):
            return False
    return n == len(flt)


class MqttClient:
    def __init__(self, host: str, port: int, *, client_id: str | None = None, keepalive_s: int = 30,
                 manual_ack: bool = False, max_inflight: int = 1000,
                 will: tuple[str, bytes, int, bool] | None = None,
                 session_expiry_s: int | None = None) -> None:
        self.host, self.port = host, port
        self._cid = client_id or f"fleet-{uuid.uuid4().hex[:10]}"
        self._c = _Client(CallbackAPIVersion.VERSION2, client_id=self._cid,
                              protocol=MQTTProtocolVersion.MQTTv5, manual_ack=manual_ack,
                              reconnect_on_failure=True)
        self._c.max_inflight_messages_set(max_inflight)
        self._c.max_queued_messages_set(0)
        self._keepalive = keepalive_s
        self._session_expiry = session_expiry_s
        if will:
            t, p, q, r = will
            self._c.will_set(t, p, qos=q, retain=r)
        self._routes: list[tuple[tuple[str, ...], Callable, bool]] = []
        self._connected = threading.Event()
        self._conn_rc: object = None
        self._subacks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._c.on_connect = self._on_connect
        self._c.on_message = self._on_message
        self._c.on_subscribe = self._on_subscribe
        self._c.on_disconnect = self._on_disconnect
        self.delivered = 0
        self.unrouted = 0

    # -- lifecycle --------------------------------------------------------------
    def connect(self, timeout_s: float = 10.0) -> "MqttClient":
        props = None
        if self._session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry
        try:
            self._c.connect(self.host, self.port, keepalive=self._keepalive,
                            clean_start=self._session_expiry is None, properties=props)
        except OSError as exc:
            raise MqttError(f"cannot reach MQTT broker {self.host}:{self.port} ({exc}); check --broker",
                            broker=f"{self.host}:{self.port}") from None
        self._c.loop_start()
        if not self._connected.wait(timeout_s):
            self._c.loop_stop()
            raise MqttError(f"no CONNACK from {self.host}:{self.port} within {timeout_s}s (rc={self._conn_rc})")
        return self

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def __enter__(self) -> "MqttClient":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subscribe --------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler | None = None, *, qos: int = 1,
                  timeout_s: float = 10.0) -> "queue.Queue[Message] | None":
        """Route matching messages to ``handler(topic, payload)``; without a handler, return a
        queue that receives every matching :class:`Message` (bounded by ``maxsize=100000``)."""
        if handler is not None:
            self._subscribe(topic_filter, handler, False, qos, timeout_s)
            return None
        q: queue.Queue[Message] = queue.Queue(maxsize=100000)
        self._subscribe(topic_filter, q.put, True, qos, timeout_s)
        return q

    def subscribe_raw(self, topic_filter: str, handler: RawHandler, *, qos: int = 1, timeout_s: float = 10.0) -> None:
        self._subscribe(topic_filter, handler, True, qos, timeout_s)

    def route(self, topic_filter: str, handler: Callable, *, raw: bool = True) -> None:
        """Register a handler without subscribing. Call before ``connect()`` when the session
        is persistent: the broker redelivers unacknowledged messages right after CONNACK,
        before any SUBSCRIBE, and a message without a handler would be dropped."""
        entry = (_match_filter(topic_filter), handler, raw)
        with self._lock:
            if entry not in self._routes:
                self._routes.append(entry)

    def _subscribe(self, topic_filter: str, handler: Callable, raw: bool, qos: int, timeout_s: float) -> None:
        self.route(topic_filter, handler, raw=raw)
        with self._lock:
            rc, mid = self._c.subscribe(topic_filter, qos=qos)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                raise MqttError(f"subscribe {topic_filter!r} failed: {paho.error_string(rc)}")
            ev = self._subacks.setdefault(mid, threading.Event())
        if not ev.wait(timeout_s):
            raise MqttError(f"no SUBACK for {topic_filter!r} within {timeout_s}s")

    def ack(self, msg: Message) -> None:
        """PUBACK a message received with manual_ack=True (after it is stored)."""
        self._c.ack(msg.mid, msg.qos)

    def ack_many(self, msgs: list[Message]) -> None:
        """PUBACK many QoS 1 messages with one queued write (in receive order, as MQTT requires).

        paho queues one packet and wakes its loop once per ``ack()``; for a batch of
        thousands that is two syscalls per message. The v5 PUBACK for success is 4 bytes
        (0x40, 2, packet id), so the batch is written as one buffer.
        """
        queue = getattr(self._c, "_packet_queue", None)
        mids = [m.mid for m in msgs if m.qos == 1]
        if queue is None or not mids:
            for m in msgs:
                self.ack(m)
            return
        for m in msgs:
            if m.qos == 2:
                self.ack(m)
        blob = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
        queue(PacketTypes.PUBACK << 4, blob, 0, 0)

    # -- publish ----------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, timeout_s: float = 10.0) -> None:
        info = self._c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise MqttError(f"publish to {topic} failed: {exc}") from None
        if qos and not info.is_published():
            raise MqttError(f"broker did not acknowledge the publish to {topic} within {timeout_s}s")

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False):
        info = self._c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info

    # -- paho callbacks (network thread) ----------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._conn_rc = reason_code
        if not reason_code.is_failure:
            self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._lock:
            ev = self._subacks.setdefault(mid, threading.Event())
        ev.set()

    def _on_message(self, client, userdata, msg) -> None:
        topic = msg.topic
        levels = topic.split("/")
        routed = False
        for flt, handler, raw in self._routes:
            if _matches(flt, levels):
                routed = True
                if raw:
                    handler(Message(topic, msg.payload, msg.qos, msg.retain, msg.mid))
                else:
                    handler(topic, msg.payload)
        self.delivered += 1
        if not routed:
            self.unrouted += 1


def connect(url: str, *, client_id: str | None = None, **kwargs) -> MqttClient:
    """``mqtt://host[:port]`` (or ``host:port``) -> a connected :class:`MqttClient`."""
    if url.startswith("mqtts://"):
        raise MqttError("TLS (mqtts://) is not supported by the fleet MQTT adapter yet; use mqtt://")
    host, port = parse_broker(url.split("://", 1)[1] if "://" in url else url)
    return MqttClient(host, port, client_id=client_id, **kwargs).connect()


def parse_broker(text: str) -> tuple[str, int]:
    """``host[:port]`` -> (host, port); default port 1883."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "1883")
    try:
        p = int(port)
    except ValueError:
        raise MqttError(f"broker {text!r} is not host:port; write e.g. 127.0.0.1:1883") from None
    return host or "127.0.0.1", p


