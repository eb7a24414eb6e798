"""What ``gateway status`` says about the uplink, and the route of a gateway without MQTT.

Invariant: the status is a snapshot built from what the forwarder's collaborators report
(routes, journal depth, replay pump, alarm book, SCAIP leg) and changes nothing; ``connected``
and ``route`` describe the routes that carry alarms — with MQTT off (only :class:`NoRoute`)
the SCAIP centre's health is the gateway's connection.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from gateway.domain.alarm_book import AlarmBook
from gateway.domain.alarms import AlarmRecord
from gateway.domain.ports import JournalDepth
from gateway.domain.uplink_errors import NotConnected
from gateway.domain.uplink_ports import Publisher

if TYPE_CHECKING:
    from gateway.domain.centre_leg import CentreLeg

__all__ = ["NoRoute", "UplinkStatus", "build_status", "mqtt_routes"]


@dataclass(frozen=True)
class UplinkStatus:
    connected: bool
    route: str | None
    routes: dict[str, bool]
    backlog: int
    inflight: int
    alarms_unacknowledged: int
    alarms_held: int
    shed: int
    journal_total: int
    last_alarms: tuple[AlarmRecord, ...] = ()
    scaip: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["last_alarms"] = [asdict(a) for a in self.last_alarms]
        return d


class NoRoute:
    """The MQTT route of a gateway without MQTT (``uplink.enabled = false``): never connected,
    takes nothing. Given to whatever needs *a* primary route (health, replies, the pump)."""

    route = "none"
    connected = False
    receive_maximum = 65535

    def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        raise NotConnected("MQTT is off on this gateway (uplink.enabled = false)", route=self.route)

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        pass

    def add_connection_listener(self, listener: Callable[[bool], None]) -> None:
        pass


def mqtt_routes(*routes: Publisher | None) -> list[Publisher]:
    """The given MQTT routes that exist, in order (None and :class:`NoRoute` left out)."""
    return [p for p in routes if p is not None and not isinstance(p, NoRoute)]


def build_status(*, depth: JournalDepth, primary: Publisher, routes: Sequence[Publisher],
                 centre: CentreLeg | None, pump_inflight: int, book: AlarmBook) -> UplinkStatus:
    """The snapshot: ``routes`` are the MQTT routes (primary, fallback) that exist."""
    by_name = {p.route: p.connected for p in routes}
    up = next((p.route for p in routes if p.connected), None)
    connected = primary.connected
    scaip = None
    if centre is not None:
        healthy = centre.route.healthy
        by_name[centre.route.route] = healthy
        if up is None and healthy:
            up = centre.route.route
        if not routes:
            connected = healthy
        scaip = centre.status()
    n = book.counts()
    return UplinkStatus(
        connected=connected, route=up, routes=by_name, backlog=depth.undelivered, scaip=scaip,
        inflight=pump_inflight + n.in_flight, alarms_unacknowledged=n.unacknowledged, alarms_held=n.held,
        shed=depth.shed, journal_total=depth.total, last_alarms=book.records())
