"""Fakes and fault-injection helpers for tests and benches (no paho import).

- :class:`FakeClock`, :class:`FakePublisher` (a Publisher port you PUBACK by hand),
  :class:`RecordingSignal`.
- :class:`TcpProxy`: a loopback TCP proxy in front of a real broker that can pass,
  blackhole (swallow bytes, as a dead link does) or delay traffic, and cut connections.
- :class:`PlatformSim`: the response platform on a real link (any Publisher-like object
  with ``subscribe``/``publish``, e.g. :class:`gateway.adapters.mqtt.MqttLink`):
  records every publication, de-duplicates on ``event_id`` and acks alarms.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.domain.model import Event

from gateway.domain.uplink_errors import NotConnected
from gateway.domain.payload import AckStatus, Published, decode_published, encode_ack


class FakeClock:
    def __init__(self, t: float = 1_790_000_000.0, mono: float = 1000.0) -> None:
        self.t, self.mono = t, mono

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def advance(self, s: float) -> None:
        self.t += s
        self.mono += s


@dataclass
class FakePublication:
    topic: str
    payload: bytes
    retain: bool
    user_properties: dict[str, str] | None
    on_puback: Callable[[bool, float], None] | None
    acked: bool = False


class FakePublisher:
    """In-memory Publisher port; ``puback()`` completes publications in order."""

    def __init__(self, route: str = "primary", connected: bool = True, clock: Any = None) -> None:
        self.route = route
        self.clock = clock
        self.receive_maximum = 65535
        self._connected = connected
        self.published: list[FakePublication] = []
        self.handlers: dict[str, Callable[[str, bytes], None]] = {}
        self.listeners: list[Callable[[bool], None]] = []

    @property
    def connected(self) -> bool:
        return self._connected

    def set_connected(self, up: bool) -> None:
        self._connected = up
        for cb in list(self.listeners):
            cb(up)

    def add_connection_listener(self, listener: Callable[[bool], None]) -> None:
        self.listeners.append(listener)

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        self.handlers[topic_filter] = handler

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None,
                on_puback: Callable[[bool, float], None] | None = None, urgent: bool = False) -> None:
        if not self._connected:
            raise NotConnected(f"fake route {self.route} is disconnected", route=self.route)
        self.published.append(FakePublication(topic, payload, retain, user_properties, on_puback))

    def unacked(self) -> list[FakePublication]:
        return [p for p in self.published if not p.acked]

    def puback(self, n: int | None = None, ok: bool = True) -> int:
        done = 0
        for p in list(self.published):
            if n is not None and done >= n:
                break
            if not p.acked:
                p.acked = True
                done += 1
                if p.on_puback is not None:
                    p.on_puback(ok, self.clock.time() if self.clock is not None else time.time())
        return done

    def decoded(self) -> list[Published]:
        out = []
        for p in self.published:
            d = decode_published(p.payload)
            if isinstance(d, Published):
                out.append(d)
        return out

    def deliver(self, topic: str, payload: bytes) -> None:
        """Simulate an incoming message on a subscribed topic."""
        for f, h in self.handlers.items():
            if f == topic:
                h(topic, payload)


class RecordingSignal:
    def __init__(self) -> None:
        self.on: list[str] = []
        self.off: list[str] = []

    def alarm_unacknowledged(self, event: Event) -> None:
        self.on.append(event.event_id)

    def alarm_acknowledged(self, event: Event) -> None:
        self.off.append(event.event_id)


class TcpProxy:
    """Loopback TCP proxy with fault modes; real sockets, one thread per connection.

    ``blackhole()``: from now on every byte in either direction is swallowed (the link is
    dead but no FIN/RST is seen — like a cut uplink); new connections are accepted and
    swallowed too. ``heal()``: blackholed connections are closed (they are dead anyway)
    and new ones forward normally. ``delay_s``: added latency per chunk. ``cut()``:
    close all current connections.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((host, 0))
        self._srv.listen(64)
        self.host, self.port = self._srv.getsockname()
        self._blackholed = False
        self.delay_s = 0.0
        self._conns: list[tuple[socket.socket, socket.socket | None, bool]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        with self._lock:
            self._blackholed = True
            self._conns = [(a, b, True) for a, b, _ in self._conns]

    def heal(self) -> None:
        with self._lock:
            self._blackholed = False
            dead = [(a, b) for a, b, bh in self._conns if bh]
            self._conns = [c for c in self._conns if not c[2]]
        for a, b in dead:
            for s in (a, b):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for a, b, _ in conns:
            for s in (a, b):
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    except OSError:
                        pass

    def close(self) -> None:
        self._closed = True
        try:
            self._srv.close()
        except OSError:
            pass
        self.cut()

    def _is_blackholed(self, a: socket.socket) -> bool:
        with self._lock:
            return any(c[0] is a and c[2] for c in self._conns)

    def _accept(self) -> None:
        while not self._closed:
            try:
                a, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                bh = self._blackholed
            b = None
            if not bh:
                try:
                    b = socket.create_connection(self.target, timeout=5)
                except OSError:
                    a.close()
                    continue
            with self._lock:
                self._conns.append((a, b, bh))
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket | None) -> None:
        socks = [a] + ([b] if b is not None else [])
        try:
            while not self._closed:
                r, _, _ = select.select(socks, [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    if b is None or self._is_blackholed(a):
                        continue        # swallowed
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass


@dataclass
class PlatformSim:
    """The response platform on a real broker link. Thread-safe; acks alarms if ``auto_ack``."""

    link: Any
    auto_ack: bool = True
    ack_status: AckStatus = AckStatus.RECEIVED
    raw: list[Published] = field(default_factory=list)
    unique: dict[str, Published] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    rejected: int = 0
    _cv: threading.Condition = field(default_factory=threading.Condition)

    def start(self, gateway_filter: str = "+") -> "PlatformSim":
        for leaf in ("alarm", "event"):
            self.link.subscribe(f"wt/v1/gw/{gateway_filter}/{leaf}", self._on_message)
        return self

    def _on_message(self, topic: str, payload: bytes) -> None:
        d = decode_published(payload)
        with self._cv:
            if not isinstance(d, Published):
                self.rejected += 1
                return
            self.raw.append(d)
            if d.event_id not in self.unique:
                self.unique[d.event_id] = d
                self.order.append(d.event_id)
            self._cv.notify_all()
        if d.alarm and self.auto_ack:
            gw = topic.split("/")[3]
            self.ack(gw, d.event_id, self.ack_status)

    def ack(self, gateway_id: str, event_id: str, status: AckStatus = AckStatus.RECEIVED) -> None:
        try:
            self.link.publish(f"wt/v1/gw/{gateway_id}/ack",
                              encode_ack(event_id=event_id, status=status, by="platform-sim", at=time.time()), qos=1)
        except NotConnected:
            pass

    def wait_for(self, predicate: Callable[["PlatformSim"], bool], timeout_s: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: predicate(self), timeout=timeout_s)

    def has(self, ids: set[str] | list[str]) -> bool:
        return set(ids) <= self.unique.keys()

    def duplicates_after_dedup(self) -> int:
        """Always 0 by construction of ``unique``; kept for reports: len(order) - len(set(order))."""
        return len(self.order) - len(set(self.order))


class LoopThread:
    """An asyncio loop on a background thread, so synchronous tests can drive loop-owned
    domain objects: ``call(fn)`` runs ``fn()`` on the loop and returns its result."""

    def __init__(self) -> None:
        import asyncio

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def dispatch(self, fn: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def call(self, fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        async def run() -> Any:
            return fn()
        return self._asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout_s)

    @staticmethod
    def call_on(loop: Any, fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        """Run ``fn()`` on ``loop`` (running in another thread); re-raise its exception."""
        import asyncio

        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout_s)

    def spawn(self, coro_factory: Callable[[], Any]) -> Any:
        async def make() -> Any:
            return self.loop.create_task(coro_factory())
        return self._asyncio.run_coroutine_threadsafe(make(), self.loop).result(10)

    def stop(self) -> None:
        async def cancel_all() -> None:
            for t in self._asyncio.all_tasks(self.loop):
                if t is not self._asyncio.current_task():
                    t.cancel()
        try:
            self._asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
        except Exception:  # noqa: BLE001 - best effort teardown
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Test helper: poll ``predicate`` until true or timeout (tests only)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
