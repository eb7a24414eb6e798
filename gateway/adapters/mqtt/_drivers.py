"""Who runs a session's socket: the event loop, or a network thread. Chosen once, at construction.

Both drivers own the reconnect supervision (connect, wait for the CONNACK within
``connect_timeout_s``, keepalive via ``misc`` every second, back off with the session's
:class:`~gateway.domain.backoff.Backoff` after a failure) and the clean stop (retained
``offline``, DISCONNECT). No busy-waits in either.

- :class:`LoopDriver` (the daemon's primary route): paho's socket is driven by the asyncio
  loop itself (``add_reader``/``add_writer`` + a 1 s timer), the way aiomqtt does it. A
  publish is written at the end of the current loop callback (at once when urgent) and a
  PUBACK is handled as soon as it arrives — no thread hand-off, no GIL ping-pong between
  a network thread and the loop, which is what keeps alarm latency at a few milliseconds
  while a backlog replays. Only the blocking TCP/TLS connect runs in the loop's default
  executor. Callbacks run on the loop directly.
- :class:`ThreadDriver` (the alarm lane, simple clients, tests, tools): one network thread
  selects on the socket and a wake-up pair; callbacks go through ``dispatch`` (e.g.
  ``loop.call_soon_threadsafe``), PUBACKs in batches. Every socket write happens under one
  lock: paho's packet queue must not be written by two threads at once (reordering,
  interleaved partial writes); an urgent publication writes from the caller's thread.
"""
from __future__ import annotations

import asyncio
import logging
import select
import socket as _socket
import ssl
import threading
import time
from typing import Any, Callable, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from gateway.adapters.mqtt._session import OK, Dispatch, MqttSession, direct
from gateway.domain.uplink_errors import UplinkError

log = logging.getLogger("gateway.adapters.mqtt")

MISC_INTERVAL_S = 1.0


class Driver(Protocol):
    """The one driver abstraction :class:`~gateway.adapters.mqtt.MqttLink` holds."""

    def dispatch(self, fn: Callable[[], None]) -> None: ...

    def socket_opened(self, sock: Any) -> None: ...

    def lost(self) -> None: ...

    def write_now(self) -> None: ...

    def start(self) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> None: ...

    async def async_stop(self, timeout_s: float = 5.0) -> None: ...


def _lost_reason(rc: MQTTErrorCode) -> str:
    return f"connection lost: {mqtt.error_string(rc)}"


class LoopDriver:
    """Runs the session on an asyncio loop (see module doc)."""

    def __init__(self, session: MqttSession, loop: asyncio.AbstractEventLoop) -> None:
        self._s = session
        self._loop = loop
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._loop_thread_id: int | None = None
        self._flush_scheduled = False
        self._writer_sock: Any = None
        self._stop = threading.Event()
        c = session.client
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_socket_register_write
        c.on_socket_unregister_write = self._on_socket_unregister_write
        session.attach(self)

    dispatch = staticmethod(direct)        # callbacks already run on the loop

    # ---- hooks the session calls ---------------------------------------------------------
    def socket_opened(self, sock: Any) -> None:
        self._on_loop(lambda: self._loop.add_reader(sock, self._readable))

    def lost(self) -> None:
        if self._lost is not None:
            self._lost.set()

    def write_now(self) -> None:
        if self._on_loop_thread():
            self._writable()

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        def create() -> None:
            if self._task is None:
                self._stop.clear()
                self._task = self._loop.create_task(self._supervise())
        self._on_loop(create)

    async def async_stop(self, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (if configured), disconnect, end the supervisor."""
        s = self._s
        if self._task is None:
            return
        if s.offline is not None and s.connected:
            done = asyncio.Event()
            try:
                s.publish_retained(s.offline, lambda ok, at: done.set())
                await asyncio.wait_for(done.wait(), min(timeout_s, 2.0))
            except (UplinkError, asyncio.TimeoutError):
                pass
        self._stop.set()
        try:
            s.disconnect()
            s.write()                      # DISCONNECT on the wire before the socket closes
        except Exception as exc:  # noqa: BLE001 - shutting down; nothing to recover
            log.debug("disconnect: %s", exc)
        task, self._task = self._task, None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        self._close_socket()
        s.set_connected(False)

    def stop(self, timeout_s: float = 5.0) -> None:
        """From another thread than the loop's (on the loop: ``await async_stop()``)."""
        if self._task is None:
            return
        if self._on_loop_thread():
            raise UplinkError("stop() on the event loop would deadlock; use 'await link.async_stop()'",
                              route=self._s.route)
        asyncio.run_coroutine_threadsafe(self.async_stop(timeout_s), self._loop).result(timeout_s + 5)

    # ---- the loop's side -----------------------------------------------------------------
    def _on_loop_thread(self) -> bool:
        return self._loop_thread_id == threading.get_ident()

    def _on_loop(self, fn: Callable[[], None]) -> None:
        if self._on_loop_thread():
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _on_socket_close(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        def remove() -> None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            if self._writer_sock is sock:
                self._writer_sock = None
        self._on_loop(remove)

    def _on_socket_register_write(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        # paho has queued packets. Write them at the end of the current loop callback
        # (one flush per burst of publications, no epoll add/remove per packet); only if
        # the socket is full is a writer registered with the loop.
        def schedule() -> None:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        self._on_loop(schedule)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        def remove() -> None:
            if self._writer_sock is not None:
                self._loop.remove_writer(self._writer_sock)
                self._writer_sock = None
        self._on_loop(remove)

    def _flush(self) -> None:
        self._flush_scheduled = False
        client = self._s.client
        if client.socket() is None:
            return
        self._writable()
        sock = client.socket()
        if sock is not None and client.want_write() and self._writer_sock is None:
            self._writer_sock = sock
            self._loop.add_writer(sock, self._writable)

    def _readable(self) -> None:
        rc = self._s.read()
        if rc not in OK:
            self._connection_lost(_lost_reason(rc))

    def _writable(self) -> None:
        rc = self._s.write()
        if rc not in OK:
            self._connection_lost(_lost_reason(rc))

    def _connection_lost(self, reason: str) -> None:
        s = self._s
        if s.last_error is None or s.connected:
            s.last_error = reason
        s.set_connected(False)
        self.lost()

    def _close_socket(self) -> None:
        sock = self._s.client.socket()
        self._writer_sock = None
        if sock is not None:
            try:
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            except (ValueError, OSError):
                pass
        self._s.close_socket()

    async def _supervise(self) -> None:
        s = self._s
        loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        while not self._stop.is_set():
            self._lost = asyncio.Event()
            s.last_error = None
            try:
                await loop.run_in_executor(None, s.connect_blocking)
            except (OSError, ssl.SSLError, ValueError) as exc:
                await self._failed(f"connect to {s.host}:{s.port} failed: {exc}")
                continue
            started = loop.time()
            while not self._lost.is_set() and not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._lost.wait(), MISC_INTERVAL_S)
                except asyncio.TimeoutError:
                    pass
                if self._lost.is_set():
                    break
                if s.misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._connection_lost(s.last_error or "keepalive: the broker stopped answering")
                    break
                if not s.connected and loop.time() - started > s.connect_timeout_s:
                    self._connection_lost(s.last_error or
                                          f"no CONNACK from {s.host}:{s.port} within {s.connect_timeout_s}s")
                    break
            self._close_socket()
            s.set_connected(False)
            if not self._stop.is_set():
                await self._failed(s.last_error or "connection lost")

    async def _failed(self, reason: str) -> None:
        self._s.last_error = reason
        delay = self._s.backoff.next_delay_s()
        log.warning("mqtt route %s: %s; retrying in %.1fs", self._s.route, reason, delay)
        await asyncio.sleep(delay)


class ThreadDriver:
    """Runs the session on its own network thread (see module doc)."""

    def __init__(self, session: MqttSession, dispatch: Dispatch) -> None:
        self._s = session
        self.dispatch = dispatch
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopping = False
        self._wlock = threading.Lock()
        # publish() only queues; paho's register-write hook wakes the thread's select
        self._wake_r, self._wake_w = _socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        session.client.on_socket_register_write = self._wake
        session.attach(self)

    # ---- hooks the session calls ---------------------------------------------------------
    def socket_opened(self, sock: Any) -> None:
        pass                               # the thread selects on client.socket() itself

    def lost(self) -> None:
        pass                               # the thread sees the failed read/write itself

    def write_now(self) -> None:
        self._write()

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"mqtt-{self._s.route}", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (if configured), disconnect cleanly, join the network thread."""
        s = self._s
        if self._thread is None:
            return
        if s.offline is not None and s.connected:
            done = threading.Event()
            try:
                s.publish_retained(s.offline, lambda ok, at: done.set())
                done.wait(min(timeout_s, 2.0))
            except UplinkError:
                pass
        self._stopping = True
        try:
            s.disconnect()
            self._write()
        except Exception as exc:  # noqa: BLE001 - shutting down; nothing to recover
            log.debug("disconnect: %s", exc)
        self._stop.set()
        self._wake()
        self._thread.join(timeout_s)
        self._thread = None
        s.set_connected(False)

    async def async_stop(self, timeout_s: float = 5.0) -> None:
        """:meth:`stop` without blocking the loop (a no-op when not started)."""
        if self._thread is not None:
            await asyncio.to_thread(self.stop, timeout_s)

    # ---- the network thread --------------------------------------------------------------
    def _wake(self, client: mqtt.Client | None = None, userdata: object = None, sock: object = None) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def _write(self) -> MQTTErrorCode:
        with self._wlock:
            return self._s.write()

    def _run(self) -> None:
        s = self._s
        client = s.client
        while not self._stop.is_set():
            try:
                with self._wlock:
                    s.connect_blocking()
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._failed(f"connect to {s.host}:{s.port} failed: {exc}")
                continue
            started = time.monotonic()
            next_misc = started + MISC_INTERVAL_S
            rc = MQTTErrorCode.MQTT_ERR_SUCCESS
            while not self._stop.is_set() and rc in OK:
                sock = client.socket()
                if sock is None:
                    break
                wlist = [sock] if client.want_write() else []
                try:
                    r, _, _ = select.select([sock, self._wake_r], wlist, [], max(0.0, next_misc - time.monotonic()))
                except (OSError, ValueError):
                    break
                if self._wake_r in r:
                    try:
                        self._wake_r.recv(4096)
                    except (BlockingIOError, OSError):
                        pass
                if sock in r or client.has_buffered():
                    rc = s.read()
                    if rc not in OK:
                        break
                if client.want_write():
                    rc = self._write()
                if time.monotonic() >= next_misc:
                    next_misc = time.monotonic() + MISC_INTERVAL_S
                    rc = s.misc()
                    if not s.connected and time.monotonic() - started > s.connect_timeout_s:
                        s.last_error = f"no CONNACK from {s.host}:{s.port} within {s.connect_timeout_s}s"
                        break
            with self._wlock:
                s.close_socket()
            s.set_connected(False)
            if not self._stop.is_set():
                self._failed(s.last_error or "connection lost")

    def _failed(self, reason: str) -> None:
        if self._stop.is_set() or self._stopping:
            return
        self._s.last_error = reason
        delay = self._s.backoff.next_delay_s()
        log.warning("mqtt route %s: %s; retrying in %.1fs", self._s.route, reason, delay)
        self._stop.wait(delay)
