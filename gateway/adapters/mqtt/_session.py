"""One MQTT v5 session over one paho client — what the connection *is*, not who runs it.

:class:`MqttSession` owns the paho client and everything that is the same however the
socket is driven: credentials, TLS (server always verified), the last will, ``clean_start
=False`` with a session expiry, re-subscribing and the retained ``online`` message on every
CONNACK, ``TCP_NODELAY``, QoS 1 publications with their PUBACK callbacks, and the
connected state with its listeners. paho return codes become :mod:`gateway.domain.uplink_errors`
exceptions here.

Who calls ``read``/``write``/``misc`` and on which thread is the driver's business
(:mod:`gateway.adapters.mqtt._drivers`); the session reaches its driver only through the
small :class:`DriverHooks` surface (hand a callback over, a socket opened, the connection
is gone, write now).
"""
from __future__ import annotations

import logging
import socket as _socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.adapters.mqtt._paho import BufferedClient
from gateway.domain.backoff import Backoff
from gateway.domain.ports import Clock
from gateway.domain.uplink_errors import NotConnected, PublishFailed, UplinkError
from gateway.domain.uplink_ports import ConnectionListener, MessageHandler, PubackCallback

log = logging.getLogger("gateway.adapters.mqtt")

Dispatch = Callable[[Callable[[], None]], None]
OK = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN)


def direct(fn: Callable[[], None]) -> None:
    fn()


@dataclass(frozen=True)
class TlsSettings:
    """TLS for a route. The server certificate is always verified (``ca_file``, hostname).

    ``cert_file``/``key_file``: client certificate (mutual TLS), optional.
    """

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True


@dataclass(frozen=True)
class RetainedMessage:
    topic: str
    payload: bytes


class DriverHooks(Protocol):
    """What a session needs from the driver that runs it."""

    def dispatch(self, fn: Callable[[], None]) -> None:
        """Run a user callback where users expect it (the loop, or inline)."""

    def socket_opened(self, sock: Any) -> None: ...

    def lost(self) -> None:
        """paho reported the connection gone (DISCONNECT, refused CONNACK)."""

    def write_now(self) -> None:
        """An urgent publication was queued: put it on the socket now if this thread may."""


class MqttSession:
    """The paho client of one route and its session state (see module doc)."""

    def __init__(self, *, host: str, port: int, client_id: str, route: str, clock: Clock,
                 username: str | None = None, password: str | None = None, tls: TlsSettings | None = None,
                 keepalive_s: int = 30, session_expiry_s: int = 86_400, connect_timeout_s: float = 10.0,
                 will: RetainedMessage | None = None, online: RetainedMessage | None = None,
                 offline: RetainedMessage | None = None, backoff: Backoff | None = None) -> None:
        self.route = route
        self.host, self.port = host, port
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.connect_timeout_s = connect_timeout_s
        self.online, self.offline = online, offline
        self.backoff = backoff or Backoff()
        self.connects = 0
        self.last_error: str | None = None
        self.receive_maximum = 65535
        self._clock = clock
        self._driver: DriverHooks | None = None
        self._dispatch: Dispatch = direct
        self._connected = False
        self._connack_seen = False
        self._subs: dict[str, MessageHandler] = {}
        self._listeners: list[ConnectionListener] = []
        self._pending: dict[int, PubackCallback | None] = {}
        self._early: dict[int, tuple[bool, float]] = {}
        self._completions: list[tuple[PubackCallback, bool, float]] = []
        self._plock = threading.Lock()

        c = BufferedClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(0)       # the forwarder bounds what is in flight
        c.max_queued_messages_set(0)
        c.connect_timeout = connect_timeout_s
        if username is not None:
            c.username_pw_set(username, password)
        if tls is not None:
            try:
                c.tls_set(ca_certs=str(tls.ca_file),
                          certfile=str(tls.cert_file) if tls.cert_file else None,
                          keyfile=str(tls.key_file) if tls.key_file else None,
                          cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise UplinkError(f"TLS settings for route {route} unusable: {exc}; check ca_file/cert_file/key_file",
                                  route=route, code=exc) from exc
            c.tls_insecure_set(not tls.check_hostname)
        if will is not None:
            c.will_set(will.topic, will.payload, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        self.client = c

    def attach(self, driver: DriverHooks) -> None:
        """Bind the driver (once, at construction of the link)."""
        self._driver = driver
        self._dispatch = driver.dispatch

    # ---- Publisher port ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        self._listeners.append(listener)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self._subs[topic_filter] = handler
        if self._connected:
            self.client.subscribe([(topic_filter, SubscribeOptions(qos=1))])

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None,
                on_puback: PubackCallback | None = None, urgent: bool = False) -> None:
        if not self._connected:
            raise NotConnected(f"route {self.route} ({self.host}:{self.port}) is not connected", route=self.route)
        props = None
        if user_properties:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = list(user_properties.items())
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        except ValueError as exc:
            raise PublishFailed(f"cannot publish to {topic!r}: {exc}", route=self.route, code=exc) from exc
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishFailed(f"publish to {topic!r} refused: {mqtt.error_string(info.rc)}",
                                route=self.route, code=info.rc)
        if urgent and self._driver is not None:     # onto the socket now, not with the next batch
            self._driver.write_now()
        # NO_CONN: paho keeps the QoS 1 message and sends it after the reconnect; the
        # PUBACK still arrives through on_publish, so the callback stays registered.
        if qos == 0:
            if on_puback is not None:
                now = self._clock.time()
                self._dispatch(lambda: on_puback(True, now))
            return
        self._track(info.mid, on_puback)

    def publish_retained(self, msg: RetainedMessage, cb: PubackCallback) -> None:
        """Retained QoS 1 state message (online/offline), whether announced connected or not;
        ``cb`` is called as a PUBACK completion."""
        info = self.client.publish(msg.topic, msg.payload, qos=1, retain=True)
        self._track(info.mid, cb, inline=True)

    def _track(self, mid: int, cb: PubackCallback | None, inline: bool = False) -> None:
        with self._plock:
            early = self._early.pop(mid, None)
            if early is None:
                self._pending[mid] = cb
        if early is not None and cb is not None:
            if inline:
                cb(*early)
            else:
                self._dispatch(lambda: cb(*early))

    # ---- wire (called by the driver) -----------------------------------------------------
    def connect_blocking(self) -> None:
        """TCP (+TLS) connect and CONNECT; blocks, so drivers run it off the event loop."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect(self.host, self.port, keepalive=self.keepalive_s, clean_start=False,
                            properties=props)

    def read(self) -> MQTTErrorCode:
        """Handle what the socket (and our read buffer) holds; announce a new connection."""
        client = self.client
        while True:
            rc = client.loop_read()
            self._announce_connack()
            if rc not in OK or not client.has_buffered():
                return rc

    def write(self) -> MQTTErrorCode:
        return self.client.loop_write()

    def misc(self) -> MQTTErrorCode:
        """Keepalive and retry bookkeeping (call about once a second)."""
        return self.client.loop_misc()

    def close_socket(self) -> None:
        try:
            self.client.drop_socket()
        except Exception as exc:  # noqa: BLE001 - the socket is gone either way
            log.debug("closing socket: %s", exc)

    def disconnect(self) -> None:
        """Clean end of the session's connection: DISCONNECT queued (the driver writes it)."""
        self.client.disconnect()

    def set_connected(self, up: bool) -> None:
        if up == self._connected:
            return
        self._connected = up
        for listener in list(self._listeners):
            self._dispatch(lambda listener=listener: listener(up))

    def _announce_connack(self) -> None:
        if self._connack_seen:
            self._connack_seen = False
            if self.client.socket() is not None:
                self.set_connected(True)

    # ---- paho callbacks ------------------------------------------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        # paho leaves Nagle's algorithm on: a small PUBLISH written while an earlier
        # segment is unacknowledged would wait for the peer's (delayed) ACK — tens of ms.
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except (OSError, AttributeError) as exc:
            log.debug("TCP_NODELAY not set: %s", exc)
        if self._driver is not None:
            self._driver.socket_opened(sock)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: object, properties: Properties | None) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            log.error("mqtt route %s: %s", self.route, self.last_error)
            if self._driver is not None:
                self._driver.lost()
            return
        self.connects += 1
        self.backoff.reset()
        self.receive_maximum = int(getattr(properties, "ReceiveMaximum", 65535) or 65535)
        if self._subs:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in self._subs])
        if self.online is not None:
            self.publish_retained(self.online, lambda ok, at: None)
        # Not "connected" yet: paho re-sends the un-PUBACKed messages of the session only
        # after this callback returns; a publication made now would overtake them. The
        # session announces the connection once loop_read() has returned (read()).
        self._connack_seen = True

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason: object, properties: Properties | None) -> None:
        if self._connected:
            self.last_error = f"disconnected: {reason}"
        self.set_connected(False)
        if self._driver is not None:
            self._driver.lost()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object,
                    properties: Properties | None) -> None:
        ok = not getattr(reason, "is_failure", False)
        at = self._clock.time()
        with self._plock:
            if mid in self._pending:
                cb = self._pending.pop(mid)
            else:
                self._early[mid] = (ok, at)
                return
            if cb is None:
                return
            # PUBACKs are handed over in batches: one dispatch (one loop wake-up) for all
            # completions that arrive while the loop has not run the previous batch yet.
            first = not self._completions
            self._completions.append((cb, ok, at))
        if first:
            self._dispatch(self._run_completions)

    def _run_completions(self) -> None:
        with self._plock:
            batch, self._completions = self._completions, []
        for cb, ok, at in batch:
            cb(ok, at)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        topic, payload = msg.topic, bytes(msg.payload)
        for f, handler in list(self._subs.items()):
            if mqtt.topic_matches_sub(f, topic):
                self._dispatch(lambda h=handler: h(topic, payload))
