"""paho-mqtt 2.x adapter: the ONLY module that imports paho.

:class:`MqttLink` implements the :class:`gateway.domain.uplink_ports.Publisher` port over MQTT v5,
QoS 1, ``clean_start=False`` with a session expiry (the broker keeps our session and
subscriptions) — and it re-subscribes on every connect anyway (a restarted broker
without persistence has forgotten them). (Re)connecting uses the injected
:class:`~gateway.domain.backoff.Backoff` (capped, jittered).

Two ways to drive it:

- ``loop=<asyncio loop>`` (the daemon): paho's socket is driven by the event loop itself
  (``add_reader``/``add_writer`` + a 1 s ``loop_misc`` timer), the way aiomqtt does it.
  A publish is written to the socket right away and a PUBACK is handled as soon as it
  arrives — no thread hand-off, no GIL ping-pong between a network thread and the loop,
  which is what keeps alarm latency at a few milliseconds while a backlog replays. Only
  the blocking TCP/TLS connect runs in the loop's default executor. Callbacks run on the
  loop directly. Stop with ``await link.async_stop()`` (or ``stop()`` from another thread).
- no loop (simple clients, tests, tools): one network thread runs ``client.loop()``;
  callbacks go through ``dispatch`` (e.g. ``loop.call_soon_threadsafe``), PUBACKs in
  batches. Only that thread writes to the socket (see ``on_socket_register_write``).

No busy-waits in either mode. paho return codes become :mod:`gateway.uplink` exceptions.
"""
from __future__ import annotations

import asyncio
import logging
import socket as _socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.domain.ports import Clock, SystemClock

from gateway.domain.uplink_errors import NotConnected, PublishFailed, UplinkError
from gateway.domain.backoff import Backoff
from gateway.domain.uplink_ports import ConnectionListener, MessageHandler, PubackCallback

log = logging.getLogger(__name__)

Dispatch = Callable[[Callable[[], None]], None]


def _direct(fn: Callable[[], None]) -> None:
    fn()


class _BufferedClient(mqtt.Client):
    """paho ``Client`` whose socket reads are buffered: one ``recv`` per readable event
    instead of up to three per packet (paho reads the fixed header byte by byte). On a
    replaying gateway that is most of the system calls — each of which also hands the GIL
    around. ``has_buffered()`` tells the driver to call ``loop_read`` again even though the
    socket is not readable any more."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:          # a new connection: drop the old bytes
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(65536)       # BlockingIOError / ConnectionError pass through
            if not data:
                return data
            self._rbuf, self._rpos = data, 0
        out = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(out)
        return out

    def has_buffered(self) -> bool:
        if self._rsock is self._sock and self._rpos < len(self._rbuf):
            return True
        sock = self._sock
        return bool(sock is not None and hasattr(sock, "pending") and sock.pending())


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


class MqttLink:
    """One MQTT connection (a route). Keyword arguments:

    - ``host``, ``port``, ``client_id`` (stable per gateway+route: the broker keeps the
      session by it), ``route`` label (``primary``/``fallback``).
    - ``dispatch``: runs callbacks (``loop.call_soon_threadsafe``; default: inline on the
      network thread, for simple clients/tests).
    - ``username``/``password``, ``tls`` (:class:`TlsSettings`).
    - ``keepalive_s`` (30), ``session_expiry_s`` (86 400), ``connect_timeout_s`` (10:
      a CONNACK must arrive within this or the attempt is abandoned).
    - ``will``: last will (retained, QoS 1) — the gateway's ``state`` with ``online: false``;
      ``online``: retained message published on every connect; ``offline``: published
      on a clean :meth:`stop`.
    - ``backoff``: reconnect policy (default ``Backoff()``: 0.5 s doubling to 30 s, jittered).
    - ``loop``: drive the link from this asyncio loop (see module doc); ``dispatch`` is then
      not used — callbacks already run on the loop.
    - ``clock``: stamps PUBACK arrival (``SystemClock()``).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        route: str = "primary",
        dispatch: Dispatch | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: TlsSettings | None = None,
        keepalive_s: int = 30,
        session_expiry_s: int = 86_400,
        connect_timeout_s: float = 10.0,
        will: RetainedMessage | None = None,
        online: RetainedMessage | None = None,
        offline: RetainedMessage | None = None,
        backoff: Backoff | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.route = route
        self._clock: Clock = clock or SystemClock()
        self._loop = loop
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._loop_thread_id: int | None = None
        self._flush_scheduled = False
        self._stopping = False
        self._connack_seen = False
        self._writer_sock: object | None = None
        self.host, self.port = host, port
        self._dispatch = dispatch or _direct
        self._keepalive_s = keepalive_s
        self._session_expiry_s = session_expiry_s
        self._connect_timeout_s = connect_timeout_s
        self._online, self._offline = online, offline
        self._backoff = backoff or Backoff()
        self._subs: dict[str, MessageHandler] = {}
        self._listeners: list[ConnectionListener] = []
        self._pending: dict[int, PubackCallback | None] = {}
        self._early: dict[int, tuple[bool, float]] = {}
        self._completions: list[tuple[PubackCallback, bool, float]] = []
        self._plock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._receive_maximum = 65535
        self.connects = 0
        self.last_error: str | None = None

        c = _BufferedClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
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
        self._wlock = threading.Lock()
        if loop is None:
            # paho's socket is driven through its external-loop API by our own network
            # thread (select on the socket and a wake-up pair). publish() only queues (the
            # register-write hook wakes the thread); an urgent publish writes at once from
            # the caller under ``_wlock``, the same lock the network thread writes under.
            self._wake_r, self._wake_w = _socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            c.on_socket_register_write = self._wake
            c.on_socket_open = self._on_socket_open
        else:
            self._dispatch = _direct
            c.on_socket_open = self._on_socket_open
            c.on_socket_close = self._on_socket_close
            c.on_socket_register_write = self._on_socket_register_write
            c.on_socket_unregister_write = self._on_socket_unregister_write
        self._client = c

    # ---- Publisher port ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def receive_maximum(self) -> int:
        return self._receive_maximum

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        self._listeners.append(listener)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self._subs[topic_filter] = handler
        if self._connected:
            self._client.subscribe([(topic_filter, SubscribeOptions(qos=1))])

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
            info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        except ValueError as exc:
            raise PublishFailed(f"cannot publish to {topic!r}: {exc}", route=self.route, code=exc) from exc
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishFailed(f"publish to {topic!r} refused: {mqtt.error_string(info.rc)}",
                                route=self.route, code=info.rc)
        if urgent:                          # onto the socket now, not with the next batch
            if self._loop is None:
                self._write()
            elif self._on_loop_thread():
                self._writable()
        # NO_CONN: paho keeps the QoS 1 message and sends it after the reconnect; the
        # PUBACK still arrives through on_publish, so the callback stays registered.
        if qos == 0:
            if on_puback is not None:
                now = self._clock.time()
                self._dispatch(lambda: on_puback(True, now))
            return
        with self._plock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = on_puback
        if early is not None and on_puback is not None:
            self._dispatch(lambda: on_puback(*early))

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> "MqttLink":
        if self._loop is not None:
            def create() -> None:
                if self._task is None:
                    self._stop.clear()
                    self._task = self._loop.create_task(self._supervise())  # type: ignore[union-attr]
            self._on_loop(create)
            return self
        if self._thread is None:
            self._stop.clear()
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.route}", daemon=True)
            self._thread.start()
        return self

    async def async_stop(self, timeout_s: float = 5.0) -> None:
        """Loop mode: publish ``offline`` (if configured), disconnect, end the supervisor."""
        if self._task is None:
            return
        if self._offline is not None and self._connected:
            done = asyncio.Event()
            try:
                self._publish_direct(self._offline, lambda ok, at: done.set())
                await asyncio.wait_for(done.wait(), min(timeout_s, 2.0))
            except (UplinkError, asyncio.TimeoutError):
                pass
        self._stop.set()
        try:
            self._client.disconnect()
            self._client.loop_write()      # DISCONNECT on the wire before the socket closes
        except Exception as exc:  # noqa: BLE001 - shutting down; nothing to recover
            log.debug("disconnect: %s", exc)
        task, self._task = self._task, None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        self._close_socket()
        self._set_connected(False)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (if configured), disconnect cleanly, end the network thread
        (loop mode: from another thread than the loop's; on the loop use ``async_stop``)."""
        if self._loop is not None:
            if self._task is None:
                return
            if self._on_loop_thread():
                raise UplinkError("stop() on the event loop would deadlock; use 'await link.async_stop()'",
                                  route=self.route)
            asyncio.run_coroutine_threadsafe(self.async_stop(timeout_s), self._loop).result(timeout_s + 5)
            return
        if self._thread is None:
            return
        if self._offline is not None and self._connected:
            done = threading.Event()
            try:
                self._publish_direct(self._offline, lambda ok, at: done.set())
                done.wait(min(timeout_s, 2.0))
            except UplinkError:
                pass
        self._stopping = True
        try:
            self._client.disconnect()
            self._write()
        except Exception as exc:  # noqa: BLE001 - shutting down; nothing to recover
            log.debug("disconnect: %s", exc)
        self._stop.set()
        self._wake()
        self._thread.join(timeout_s)
        self._thread = None
        self._set_connected(False)

    def _publish_direct(self, msg: RetainedMessage, cb: PubackCallback) -> None:
        info = self._client.publish(msg.topic, msg.payload, qos=1, retain=True)
        with self._plock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = cb
        if early is not None:
            cb(*early)

    # ---- loop mode -----------------------------------------------------------------------
    def _on_loop_thread(self) -> bool:
        return self._loop_thread_id == threading.get_ident()

    def _on_loop(self, fn: Callable[[], None]) -> None:
        assert self._loop is not None
        if self._on_loop_thread():
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _on_socket_open(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        # paho leaves Nagle's algorithm on: a small PUBLISH written while an earlier
        # segment is unacknowledged would wait for the peer's (delayed) ACK — tens of ms.
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        except (OSError, AttributeError) as exc:
            log.debug("TCP_NODELAY not set: %s", exc)
        if self._loop is not None:
            self._on_loop(lambda: self._loop.add_reader(sock, self._readable))  # type: ignore[union-attr]

    def _on_socket_close(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        def remove() -> None:
            self._loop.remove_reader(sock)  # type: ignore[union-attr]
            self._loop.remove_writer(sock)  # type: ignore[union-attr]
            if self._writer_sock is sock:
                self._writer_sock = None
        self._on_loop(remove)

    def _on_socket_register_write(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        # paho has queued packets. Write them at the end of the current loop callback
        # (one flush per burst of publications, no epoll add/remove per packet); only if
        # the socket is full is a writer registered with the loop.
        def schedule() -> None:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)  # type: ignore[union-attr]
        self._on_loop(schedule)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        def remove() -> None:
            if self._writer_sock is not None:
                self._loop.remove_writer(self._writer_sock)  # type: ignore[union-attr]
                self._writer_sock = None
        self._on_loop(remove)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._client.socket() is None:
            return
        self._writable()
        sock = self._client.socket()
        if sock is not None and self._client.want_write() and self._writer_sock is None:
            self._writer_sock = sock
            self._loop.add_writer(sock, self._writable)  # type: ignore[union-attr]

    def _readable(self) -> None:
        while True:
            rc = self._client.loop_read()
            self._announce_connack()
            if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
                self._connection_lost(f"connection lost: {mqtt.error_string(rc)}")
                return
            if not self._client.has_buffered():
                return

    def _announce_connack(self) -> None:
        if self._connack_seen:
            self._connack_seen = False
            if self._client.socket() is not None:
                self._set_connected(True)

    def _writable(self) -> None:
        rc = self._client.loop_write()
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._connection_lost(f"connection lost: {mqtt.error_string(rc)}")

    def _connection_lost(self, reason: str) -> None:
        if self.last_error is None or self._connected:
            self.last_error = reason
        self._set_connected(False)
        if self._lost is not None:
            self._lost.set()

    def _close_socket(self) -> None:
        sock = self._client.socket()
        self._writer_sock = None
        if sock is not None and self._loop is not None:
            try:
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            except (ValueError, OSError):
                pass
        try:
            self._client._sock_close()   # paho has no public "drop the socket" call
        except Exception as exc:  # noqa: BLE001 - the socket is gone either way
            log.debug("closing socket: %s", exc)

    def _connect_blocking(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        self._client.connect(self.host, self.port, keepalive=self._keepalive_s, clean_start=False,
                             properties=props)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        while not self._stop.is_set():
            self._lost = asyncio.Event()
            self.last_error = None
            try:
                await loop.run_in_executor(None, self._connect_blocking)
            except (OSError, ssl.SSLError, ValueError) as exc:
                await self._async_failed(f"connect to {self.host}:{self.port} failed: {exc}")
                continue
            started = loop.time()
            while not self._lost.is_set() and not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._lost.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                if self._lost.is_set():
                    break
                if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._connection_lost(self.last_error or "keepalive: the broker stopped answering")
                    break
                if not self._connected and loop.time() - started > self._connect_timeout_s:
                    self._connection_lost(self.last_error or
                                          f"no CONNACK from {self.host}:{self.port} within {self._connect_timeout_s}s")
                    break
            self._close_socket()
            self._set_connected(False)
            if not self._stop.is_set():
                await self._async_failed(self.last_error or "connection lost")

    async def _async_failed(self, reason: str) -> None:
        self.last_error = reason
        delay = self._backoff.next_delay_s()
        log.warning("mqtt route %s: %s; retrying in %.1fs", self.route, reason, delay)
        await asyncio.sleep(delay)

    # ---- network thread ------------------------------------------------------------------
    def _wake(self, client: mqtt.Client | None = None, userdata: object = None, sock: object = None) -> None:
        """paho queued packets: wake the network thread's select (thread mode)."""
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def _write(self) -> MQTTErrorCode:
        # every socket write in thread mode goes through this lock: paho's packet queue
        # must not be written by two threads at once (reordering, interleaved partial writes)
        with self._wlock:
            return self._client.loop_write()

    def _run(self) -> None:
        import select
        import time as _t

        while not self._stop.is_set():
            try:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self._session_expiry_s
                with self._wlock:
                    self._client.connect(self.host, self.port, keepalive=self._keepalive_s,
                                         clean_start=False, properties=props)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._failed(f"connect to {self.host}:{self.port} failed: {exc}")
                continue
            started = _t.monotonic()
            next_misc = started + 1.0
            rc = MQTTErrorCode.MQTT_ERR_SUCCESS
            while not self._stop.is_set() and rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
                sock = self._client.socket()
                if sock is None:
                    break
                wlist = [sock] if self._client.want_write() else []
                try:
                    r, w, _ = select.select([sock, self._wake_r], wlist, [], max(0.0, next_misc - _t.monotonic()))
                except (OSError, ValueError):
                    break
                if self._wake_r in r:
                    try:
                        self._wake_r.recv(4096)
                    except (BlockingIOError, OSError):
                        pass
                if sock in r or self._client.has_buffered():
                    rc = self._client.loop_read()
                    while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._client.has_buffered():
                        rc = self._client.loop_read()
                    self._announce_connack()
                    if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
                        break
                if self._client.want_write():
                    rc = self._write()
                if _t.monotonic() >= next_misc:
                    next_misc = _t.monotonic() + 1.0
                    rc = self._client.loop_misc()
                    if not self._connected and _t.monotonic() - started > self._connect_timeout_s:
                        self.last_error = f"no CONNACK from {self.host}:{self.port} within {self._connect_timeout_s}s"
                        break
            with self._wlock:
                self._close_socket()
            self._set_connected(False)
            if not self._stop.is_set():
                self._failed(self.last_error or "connection lost")

    def _failed(self, reason: str) -> None:
        if self._stop.is_set() or self._stopping:
            return
        self.last_error = reason
        delay = self._backoff.next_delay_s()
        log.warning("mqtt route %s: %s; retrying in %.1fs", self.route, reason, delay)
        self._stop.wait(delay)

    def _set_connected(self, up: bool) -> None:
        if up == self._connected:
            return
        self._connected = up
        for listener in list(self._listeners):
            self._dispatch(lambda listener=listener: listener(up))

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: object, properties: Properties | None) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            log.error("mqtt route %s: %s", self.route, self.last_error)
            if self._lost is not None:
                self._lost.set()
            return
        self.connects += 1
        self._backoff.reset()
        self._receive_maximum = int(getattr(properties, "ReceiveMaximum", 65535) or 65535)
        if self._subs:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in self._subs])
        if self._online is not None:
            self._publish_direct(self._online, lambda ok, at: None)
        # Not "connected" yet: paho re-sends the un-PUBACKed messages of the session only
        # after this callback returns; a publication made now would overtake them. The
        # driver announces the connection once loop_read() has returned.
        self._connack_seen = True

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason: object, properties: Properties | None) -> None:
        if self._connected:
            self.last_error = f"disconnected: {reason}"
        self._set_connected(False)
        if self._lost is not None:
            self._lost.set()

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


def gateway_link(*, gateway_id: str, version: str, clock: Clock, route: str = "primary",
                 **kwargs: object) -> MqttLink:
    """An :class:`MqttLink` for a gateway: client id ``<gw>-<route>``, retained
    ``wt/v1/gw/{gw}/state`` online on connect, offline as last will and on clean stop.
    Other keyword arguments go to :class:`MqttLink`."""
    from gateway.domain.payload import Topics, encode_state

    topic = Topics(gateway_id).state
    since = clock.time()
    online = RetainedMessage(topic, encode_state(gateway_id=gateway_id, online=True, version=version, since=since))
    offline = RetainedMessage(topic, encode_state(gateway_id=gateway_id, online=False, version=version, since=since))
    return MqttLink(client_id=f"{gateway_id}-{route}", route=route, will=offline, online=online,
                    offline=offline, clock=clock, **kwargs)  # type: ignore[arg-type]


def alarm_lane_link(*, gateway_id: str, clock: Clock, route: str = "primary", **kwargs: object) -> MqttLink:
    """A second connection to a route's broker used only for alarms (client id
    ``<gw>-<route>-alarms``; no state/last will — the main link owns those). Its own TCP
    stream and network thread, so an alarm's PUBLISH and PUBACK never wait behind
    telemetry on the wire or behind a busy event loop. Pass it as ``Forwarder(alarm_lane=...)``
    and give it ``dispatch=loop.call_soon_threadsafe`` (thread mode: no ``loop``)."""
    return MqttLink(client_id=f"{gateway_id}-{route}-alarms", route=route, clock=clock,
                    **kwargs)  # type: ignore[arg-type]
