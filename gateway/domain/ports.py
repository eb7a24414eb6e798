"""Ports owned by the gateway domain (typing.Protocol). Adapters implement them.

Concurrency model of the daemon (see docs/architecture.md): one asyncio event loop owns
the domain (ingress, rules, forwarding decisions). Adapters whose libraries block
(pyserial reads, SQLite commits with fsync) run in their own thread and hand results to
the loop with ``loop.call_soon_threadsafe``. MQTT: the primary connection's paho socket
is driven by the event loop itself (``add_reader``/``add_writer``); only the alarms-only
lane runs paho's network loop on its own thread (``mqtt-primary``), handing PUBACKs to
the loop. Every port method below is non-blocking and safe to call from the loop thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from gateway.domain.model import Event


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock epoch seconds (UTC)."""

    def monotonic(self) -> float:
        """Monotonic seconds for timeouts and intervals."""


class SystemClock:
    import time as _time

    def time(self) -> float:
        return self._time.time()

    def monotonic(self) -> float:
        return self._time.monotonic()


@dataclass(frozen=True)
class JournalDepth:
    total: int
    alarms_pending: int       # alarms not yet acknowledged by the platform
    undelivered: int          # events not yet PUBACKed by the broker
    shed: int                 # telemetry events shed (oldest first) since the journal was created
    bytes_used: int


class Journal(Protocol):
    """Durable event store (gateway/adapters/journal). Alarms never evicted; telemetry bounded."""

    def append(self, event: Event) -> bool:
        """Store durably (blocking until committed). False if ``event_id`` already stored."""

    def contains(self, event_id: str) -> bool: ...

    def mark_delivered(self, event_ids: Iterable[str]) -> None:
        """The broker PUBACKed these (QoS 1)."""

    def mark_acknowledged(self, event_id: str, status: str) -> None:
        """The platform acknowledged (wt.ack/1 status)."""

    def undelivered(self, limit: int, after_rowid: int = 0) -> list[tuple[int, Event]]:
        """(rowid, event) in journal order, not yet delivered."""

    def depth(self) -> JournalDepth: ...

    def next_gateway_counter(self) -> int:
        """Durable counter for gateway-raised event ids; never reused."""

    def get_state(self, key: str) -> bytes | None: ...

    def set_state(self, key: str, value: bytes) -> None: ...


class EventSink(Protocol):
    """Where ingress and rules hand events (gateway/domain/forwarder.py implements it).

    ``submit`` returns at once. For alarms it publishes immediately (fast path) while the
    journal write proceeds concurrently; ``on_stored(event, is_new)`` is called on the
    event loop once the event is durable — only then may the device be ACKed.
    """

    def submit(self, event: Event, on_stored: Callable[[Event, bool], None] | None = None) -> None: ...


class FrameLink(Protocol):
    """A byte-stream link to one or more devices (serial port, GATT WT frame service, pty)."""

    name: str

    def send(self, data: bytes) -> None:
        """Queue bytes for transmission; never blocks the loop."""


class AdvertSource(Protocol):
    """BLE advertisements from advertising sensors (gateway/adapters/transports/ble.py BleScanner).

    Constructed with ``on_advert(mac, service_data, rssi)``: ``mac`` upper-case
    ``AA:BB:CC:DD:EE:FF``, ``service_data`` the raw BTHome service data (UUID 0xFCD2,
    docs/protocol.md §3), ``rssi`` in dBm; called on the event loop for every report.
    """

    async def async_start(self) -> None:
        """Start scanning; raises gateway.adapters.transports.TransportError on failure."""

    async def async_stop(self) -> None:
        """Stop scanning; never raises."""
