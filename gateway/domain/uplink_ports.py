"""Ports of the uplink domain (typing.Protocol); adapters: gateway.adapters.mqtt, fakes in gateway.testing.platform."""
from __future__ import annotations

from typing import Any, Callable, Protocol

from gateway.domain.journal_types import AppendResult
from gateway.domain.model import Event
from gateway.domain.ports import JournalDepth

PubackCallback = Callable[[bool, float], None]
"""Called on the event loop with (ok, at): ok is True when the broker PUBACKed with a
success reason code; ``at`` is the wall-clock time the PUBACK was received (taken where
it arrived, before any hand-over to the loop)."""

MessageHandler = Callable[[str, bytes], None]
"""Called on the event loop with (topic, payload) for a subscribed message."""

ConnectionListener = Callable[[bool], None]
"""Called on the event loop with True on (re)connect, False on loss of the connection."""


class Publisher(Protocol):
    """One MQTT route (primary broker, fallback broker). Methods never block the loop."""

    route: str

    @property
    def connected(self) -> bool: ...

    @property
    def receive_maximum(self) -> int:
        """The broker's MQTT v5 Receive Maximum (65535 when it sent none): QoS 1
        publications it accepts un-acknowledged at a time."""

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None,
                on_puback: PubackCallback | None = None, urgent: bool = False) -> None:
        """Queue a publication. Raises ``gateway.domain.uplink_errors.NotConnected`` when offline.

        ``urgent``: put it on the wire now rather than with the next batch (alarms)."""

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Register a subscription (QoS 1); restored on every (re)connect."""

    def add_connection_listener(self, listener: ConnectionListener) -> None: ...


class LocalSignal(Protocol):
    """Signal to the resident on the gateway itself (buzzer, LED): the last escalation step."""

    def alarm_unacknowledged(self, event: Event) -> None:
        """The platform has not acknowledged this alarm in time."""

    def alarm_acknowledged(self, event: Event) -> None:
        """A previously signalled alarm has now been acknowledged: stop signalling it."""


class JournalFront(Protocol):
    """The asynchronous journal front the forwarder uses (gateway.adapters.journal.JournalWriter)."""

    def submit(self, event: Event, callback: Callable[[Event, AppendResult], None] | None = None) -> None: ...

    def mark_delivered(self, event_ids: list[str]) -> None: ...

    def mark_acknowledged(self, event_id: str, status: str) -> None: ...

    def call(self, fn: Callable[[Any], Any], callback: Callable[[Any], None] | None = None,
             on_error: Callable[[BaseException], None] | None = None) -> None: ...

    def next_gateway_counter(self) -> int:
        """Durable gateway counter from the reserved block (non-blocking; may raise)."""

    def depth(self) -> JournalDepth: ...
