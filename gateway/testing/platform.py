"""The platform simulator - the one response platform / response centre of the test kit -
plus the in-memory fakes of the uplink's ports.

:class:`PlatformSim` speaks the platform side of docs/mqtt.md (:mod:`contracts`): it
subscribes to the alarm/event (and optionally tracker and state) topics, records every
delivery, de-duplicates on ``event_id`` (counting re-deliveries), acknowledges alarms with
``wt.ack/1`` (``received`` on every delivery - the gateway re-sends until it hears it -
and optionally ``accepted`` once), and measures latency from the event's own timestamps
to arrival. It runs on any link with ``subscribe(filter, handler)`` and
``publish(topic, payload, qos=...)``: the gateway's paho adapter (tests, demo console),
:class:`FakePublisher` (unit tests), or :class:`PahoLink`, a bare paho client that
shares no code with the gateway under test (HIL benches, benchmark receivers).
Its users: ``gateway.testing.console`` (the demo console presents it),
``hil_tests.platform``, ``bench/_common.py`` and the gateway tests.

Also here: :class:`FakePublisher` (a Publisher port you PUBACK by hand),
:class:`RecordingSignal`, :class:`LoopThread`, :func:`wait_until`; :class:`FakeClock` is
re-exported from ``gateway.testing.clock`` (the one fake clock);
:class:`TcpProxy` lives in ``gateway.testing.tcp_proxy`` (re-exported).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from contracts.payloads import (AckStatus, Published, Rejected, State, decode_published, decode_state, encode_ack,
                                parse_time)
from contracts.topics import (ANY, DeviceTopics, Kind, Parsed, Topics, all_devices, gateway_topic, matches, parse,
                              source_id)
from gateway.domain.model import Event
from gateway.domain.uplink_errors import NotConnected
from gateway.testing.clock import FakeClock
from gateway.testing.tcp_proxy import TcpProxy

Handler = Callable[[str, bytes], None]

__all__ = ["Arrival", "FakeClock", "FakePublication", "FakePublisher", "LoopThread", "PahoLink", "PlatformSim",
           "RecordingSignal", "TcpProxy", "wait_until"]


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
        for f, h in list(self.handlers.items()):
            if matches(f, topic):
                h(topic, payload)


class RecordingSignal:
    def __init__(self) -> None:
        self.on: list[str] = []
        self.off: list[str] = []

    def alarm_unacknowledged(self, event: Event) -> None:
        self.on.append(event.event_id)

    def alarm_acknowledged(self, event: Event) -> None:
        self.off.append(event.event_id)


@dataclass
class Arrival:
    """One event as it reached the platform: its topic, its JSON body, the arrival time."""

    topic: str
    payload: dict[str, Any]
    arrived_at: float

    @property
    def event_id(self) -> str:
        return str(self.payload.get("event_id", ""))

    @property
    def type(self) -> str:
        return str(self.payload.get("type", ""))

    @property
    def alarm(self) -> bool:
        """Arrived on an alarm topic (``…/alarm``)."""
        where = parse(self.topic)
        return where is not None and where.kind is Kind.ALARM

    def latency_ms(self, since: str = "occurred_at") -> float | None:
        """Arrival minus the body's ``since`` timestamp (``occurred_at``, ``received_at``, ``sent_at``)."""
        t0 = parse_time(self.payload.get(since))
        return None if t0 is None else (self.arrived_at - t0) * 1000.0


def _ack_topic(where: Parsed | None, body: dict[str, Any]) -> str | None:
    """Where the ack for an alarm goes: the publisher's own ``…/ack`` (gateway or tracker)."""
    if where is not None:
        return Topics(where.gateway_id).ack if where.gateway_id is not None else DeviceTopics(source_id(where)).ack
    gw = body.get("gateway")
    return Topics(gw).ack if isinstance(gw, str) and gw else None


class PlatformSim:
    """The response platform on a link. Thread-safe; acks alarms if ``auto_ack``.

    Records: ``order`` (event ids, first arrivals, in order), ``deliveries``, ``duplicates``
    (re-deliveries de-duplicated), ``rejected`` (not a wt.alarm/1 or wt.event/1),
    ``acks_sent``, ``states`` (gateway id -> last wt.state/1). With ``history`` (default)
    also ``raw`` (every delivery), ``unique`` (event id -> first delivery) and ``arrivals``
    (first arrivals as :class:`Arrival`); without it only the counts and ``order`` (a
    long-running console or bench receiver). ``on_arrival`` is called once per event id,
    ``on_duplicate`` for each re-delivery; both from the link's thread, before the ack.
    """

    def __init__(self, link: Any, *, auto_ack: bool = True, ack_status: AckStatus = AckStatus.RECEIVED,
                 accept: bool = False, by: str = "platform-sim", clock: Any = None, history: bool = True,
                 on_arrival: Callable[[Arrival], None] | None = None,
                 on_duplicate: Callable[[Arrival], None] | None = None, owns_link: bool = False) -> None:
        self.link = link
        self.auto_ack = auto_ack
        self.ack_status = ack_status
        self.accept = accept
        self.by = by
        self.clock = clock if clock is not None else time
        self.history = history
        self.on_arrival = on_arrival
        self.on_duplicate = on_duplicate
        self.raw: list[Published] = []
        self.unique: dict[str, Published] = {}
        self.arrivals: list[Arrival] = []
        self.order: list[str] = []
        self.states: dict[str, State] = {}
        self.deliveries = 0
        self.duplicates = 0
        self.rejected = 0
        self.acks_sent = 0
        self._seen: set[str] = set()
        self._cv = threading.Condition()
        self._own_link = owns_link            # start()/stop() also start and stop the link

    @classmethod
    def on_broker(cls, host: str, port: int, *, client_id: str = "platform-sim", **options: Any) -> "PlatformSim":
        """A simulator with its own bare paho connection (:class:`PahoLink`); ``start`` connects."""
        return cls(PahoLink(host, port, client_id=client_id), by=options.pop("by", client_id), owns_link=True,
                   **options)

    @staticmethod
    def filters(gateway_filter: str = ANY, *, events: bool = True, devices: bool = False,
                state: bool = False) -> tuple[str, ...]:
        kinds = (Kind.ALARM, Kind.EVENT) if events else (Kind.ALARM,)
        out = [gateway_topic(gateway_filter, k) for k in kinds]
        if devices:
            out += [all_devices(k) for k in kinds]
        if state:
            out.append(gateway_topic(gateway_filter, Kind.STATE))
        return tuple(out)

    def start(self, gateway_filter: str = ANY, *, events: bool = True, devices: bool = False, state: bool = False,
              filters: Iterable[str] | None = None, timeout_s: float = 10.0) -> "PlatformSim":
        """Subscribe (alarms and events of ``gateway_filter``; tracker topics with ``devices``;
        gateway state with ``state``; or exactly ``filters``). A simulator made by
        :meth:`on_broker` also connects and waits for its subscriptions."""
        chosen = tuple(filters) if filters is not None else self.filters(gateway_filter, events=events,
                                                                          devices=devices, state=state)
        for f in chosen:
            self.link.subscribe(f, self._on_message)
        if self._own_link:
            self.link.start(timeout_s)
        return self

    def stop(self) -> None:
        if self._own_link:
            self.link.stop()

    # ------------------------------------------------------------ receiving
    def _on_message(self, topic: str, payload: bytes) -> None:
        now = self.clock.time()
        where = parse(topic)
        if where is not None and where.kind is Kind.STATE:
            st = decode_state(source_id(where), payload, now)
            with self._cv:
                if isinstance(st, Rejected):
                    self.rejected += 1
                else:
                    self.states[st.gateway_id] = st
                self._cv.notify_all()
            return
        d = decode_published(payload)
        with self._cv:
            if isinstance(d, Rejected):
                self.rejected += 1
                return
            self.deliveries += 1
            arrival = Arrival(topic, d.body, now)
            first = d.event_id not in self._seen
            if first:
                self._seen.add(d.event_id)
                self.order.append(d.event_id)
                if self.history:
                    self.unique[d.event_id] = d
                    self.arrivals.append(arrival)
            else:
                self.duplicates += 1
            if self.history:
                self.raw.append(d)
            self._cv.notify_all()
        hook = self.on_arrival if first else self.on_duplicate
        if hook is not None:
            hook(arrival)
        if d.alarm and self.auto_ack:
            to = _ack_topic(where, d.body)
            if to is not None:
                self._send_ack(to, d.event_id, self.ack_status)
                if self.accept and first:
                    self._send_ack(to, d.event_id, AckStatus.ACCEPTED)

    # ------------------------------------------------------------ acknowledging
    def ack(self, gateway_id: str, event_id: str, status: AckStatus = AckStatus.RECEIVED) -> None:
        """Send one ``wt.ack/1`` to a gateway (e.g. ``accepted`` by a test operator)."""
        self._send_ack(Topics(gateway_id).ack, event_id, status)

    def _send_ack(self, topic: str, event_id: str, status: AckStatus) -> None:
        try:
            self.link.publish(topic, encode_ack(event_id=event_id, status=status, by=self.by, at=self.clock.time()),
                              qos=1)
        except NotConnected:
            return
        with self._cv:
            self.acks_sent += 1
            self._cv.notify_all()

    # ------------------------------------------------------------ queries
    def wait(self, predicate: Callable[["PlatformSim"], bool], timeout_s: float) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every delivery) or time runs out."""
        with self._cv:
            return self._cv.wait_for(lambda: predicate(self), timeout=timeout_s)

    def wait_for(self, pred: Callable[[Arrival], bool], timeout_s: float = 10.0, count: int = 1) -> list[Arrival]:
        """The first arrivals matching ``pred``, once there are ``count`` of them (or what
        there is when ``timeout_s`` runs out)."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while True:
                hits = [a for a in self.arrivals if pred(a)]
                left = deadline - time.monotonic()
                if len(hits) >= count or left <= 0:
                    return hits
                self._cv.wait(left)

    def has(self, ids: set[str] | list[str]) -> bool:
        return set(ids) <= self._seen

    def duplicates_after_dedup(self) -> int:
        """Always 0 by construction (the platform acts once per event id); kept for reports."""
        return len(self.order) - len(set(self.order))

    def all_arrivals(self) -> list[Arrival]:
        with self._cv:
            return list(self.arrivals)

    def alarms(self) -> list[Arrival]:
        with self._cv:
            return [a for a in self.arrivals if a.alarm]

    def latencies_ms(self, since: str = "occurred_at", *, alarms_only: bool = True) -> list[float]:
        """Latency of each first arrival (see :meth:`Arrival.latency_ms`)."""
        with self._cv:
            chosen = [a for a in self.arrivals if a.alarm or not alarms_only]
        return [ms for ms in (a.latency_ms(since) for a in chosen) if ms is not None]

    def gateway_online(self, gateway_id: str) -> bool:
        with self._cv:
            st = self.states.get(gateway_id)
            return st is not None and st.online


class PahoLink:
    """A bare paho MQTT v5 client with the link interface of :class:`PlatformSim`.

    For a platform that must share no code with the gateway under test (HIL benches,
    benchmark receivers in their own process). Subscriptions registered before
    :meth:`start` are made on every (re)connect; ``start`` returns once they are SUBACKed.
    """

    def __init__(self, host: str, port: int, *, client_id: str, keepalive_s: int = 30) -> None:
        self.host, self.port, self.client_id, self.keepalive_s = host, port, client_id, keepalive_s
        self._handlers: list[tuple[str, Handler]] = []
        self._subscribed = threading.Event()
        self._client: Any = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        self._handlers.append((topic_filter, handler))
        if self.connected:
            self._client.subscribe(topic_filter, qos=1)

    def start(self, timeout_s: float = 10.0) -> "PahoLink":
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(0)          # acks are never held back behind a window
        pending: set[int] = set()

        def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
            filters = sorted({f for f, _ in self._handlers})
            if not filters:
                self._subscribed.set()
                return
            _, mid = client.subscribe([(f, 1) for f in filters])
            pending.add(mid)

        def on_subscribe(client: Any, userdata: Any, mid: int, reason_codes: Any, props: Any = None) -> None:
            pending.discard(mid)
            if not pending:
                self._subscribed.set()

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, self._dispatch
        c.connect(self.host, self.port, keepalive=self.keepalive_s)
        c.loop_start()
        self._client = c
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"platform could not connect and subscribe to {self.host}:{self.port}")
        return self

    def _dispatch(self, client: Any, userdata: Any, msg: Any) -> None:
        called: list[Handler] = []
        for f, h in self._handlers:
            if h not in called and matches(f, msg.topic):
                called.append(h)
                h(msg.topic, msg.payload)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            c.disconnect()
            c.loop_stop()


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
