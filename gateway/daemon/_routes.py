"""The gateway's MQTT routes: building them (paho adapter), running them, replying on them.

A route is a :class:`~gateway.domain.uplink_ports.Publisher` port. ``primary`` (the
broker of ``[uplink]``) and the optional ``fallback`` take commands and config pushes;
the ``lane`` is a second connection to the primary broker for alarms only (its own
network thread: alarms never queue behind telemetry) and takes no commands.

Lifecycle is declared, not probed: a route this gateway built comes with a
:class:`RouteDriver` that knows how that connection runs (the primary and fallback on
the event loop, the lane on its own thread). A route passed in by the caller
(``bootstrap(publisher=...)``, a fake) has no driver: its owner runs it.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from gateway import __version__
from gateway.config import GatewayConfig
from gateway.daemon._errors import DaemonError
from gateway.domain.ports import Clock
from gateway.domain.uplink_errors import UplinkError
from gateway.domain.uplink_ports import MessageHandler, Publisher

log = logging.getLogger("gateway.daemon")


class RouteDriver(Protocol):
    """Runs one MQTT connection this gateway owns."""

    def start(self) -> None: ...

    async def async_stop(self) -> None: ...


class _LoopDriven:
    """A link driven by the event loop (paho's socket on ``add_reader``/``add_writer``)."""

    def __init__(self, link: Any) -> None:
        self._link = link

    def start(self) -> None:
        self._link.start()

    async def async_stop(self) -> None:
        await self._link.async_stop()


class _ThreadDriven:
    """A link with its own network thread (the alarm lane): stopping joins the thread."""

    def __init__(self, link: Any) -> None:
        self._link = link

    def start(self) -> None:
        self._link.start()

    async def async_stop(self) -> None:
        await asyncio.to_thread(self._link.stop)


class Routes:
    """The routes of one gateway and the drivers of those it owns."""

    def __init__(self, primary: Publisher, fallback: Publisher | None = None, lane: Publisher | None = None,
                 drivers: Sequence[RouteDriver] = ()) -> None:
        self.primary = primary
        self.fallback = fallback
        self.lane = lane
        self._drivers = list(drivers)

    @property
    def command_routes(self) -> list[Publisher]:
        """Routes that take commands and config pushes (not the alarm lane)."""
        return [r for r in (self.primary, self.fallback) if r is not None]

    def connected(self) -> bool:
        """True while the primary or the fallback broker is connected."""
        return any(r.connected for r in self.command_routes)

    def subscribe(self, topic: str, handler: MessageHandler) -> None:
        for route in self.command_routes:
            route.subscribe(topic, handler)

    def reply(self, topic: str, payload: bytes, *, retain: bool = False, what: str = "reply") -> bool:
        """Publish on the first connected command route (QoS 1). False if none took it."""
        for route in self.command_routes:
            if route.connected:
                try:
                    route.publish(topic, payload, qos=1, retain=retain)
                    return True
                except UplinkError as exc:
                    log.warning("%s not published on %s: %s", what, getattr(route, "route", "?"), exc)
        return False

    def start(self) -> None:
        for d in self._drivers:
            d.start()

    async def async_stop(self) -> None:
        for d in self._drivers:
            try:
                await d.async_stop()
            except Exception:  # one stuck route must not keep the others open
                log.exception("stopping a route failed")


# ---------------------------------------------------------------- building (the paho adapter)

def build_routes(cfg: GatewayConfig, loop: asyncio.AbstractEventLoop, clock: Clock, *,
                 publisher: Publisher | None = None, fallback_publisher: Publisher | None = None) -> Routes:
    """Real MQTT routes from ``[uplink]``, except those passed in (owned by the caller).
    With a ``publisher`` there is no alarm lane: the fake stands for the primary broker."""
    drivers: list[RouteDriver] = []     # started and stopped in this order: lane, primary, fallback
    if publisher is None:
        primary = make_route(cfg, loop, clock, route="primary")
        lane = make_route(cfg, loop, clock, route="primary", alarm_lane=True)
        drivers += [_ThreadDriven(lane), _LoopDriven(primary)]
    else:
        primary, lane = publisher, None
    fallback = fallback_publisher
    if fallback is None and cfg.uplink.fallback.enabled:
        fallback = make_route(cfg, loop, clock, route="fallback")
        drivers.append(_LoopDriven(fallback))
    return Routes(primary, fallback, lane, drivers)


def make_route(cfg: GatewayConfig, loop: asyncio.AbstractEventLoop, clock: Clock, *, route: str,
               alarm_lane: bool = False) -> Publisher:
    """The real MQTT route (paho adapter) for ``primary`` or ``fallback``: driven by the event
    loop itself. ``alarm_lane=True``: the primary broker's second connection for alarms
    only, in its own network thread (alarms never queue behind telemetry)."""
    from gateway.adapters.mqtt import alarm_lane_link, gateway_link

    section = cfg.uplink if route == "primary" else cfg.uplink.fallback
    common: dict[str, Any] = dict(host=section.host, port=section.port, tls=_tls_settings(section.tls),
                                  keepalive_s=cfg.uplink.keepalive_s,
                                  username=section.tls.username or None, password=section.tls.password or None)
    if alarm_lane:
        return alarm_lane_link(gateway_id=cfg.gateway.id, clock=clock, route=route,
                               dispatch=_dispatcher(loop), **common)
    return gateway_link(gateway_id=cfg.gateway.id, version=__version__, clock=clock, route=route,
                        loop=loop, **common)


def _dispatcher(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], None]], None]:
    """Adapter threads hand callbacks to the loop through this."""
    def dispatch(fn: Callable[[], None]) -> None:
        loop.call_soon_threadsafe(fn)
    return dispatch


def _tls_settings(tls_cfg: Any) -> Any:
    from gateway.adapters.mqtt import TlsSettings

    if not tls_cfg.enabled:
        return None
    ca = tls_cfg.ca or _system_ca_bundle()
    return TlsSettings(ca_file=Path(ca), cert_file=Path(tls_cfg.cert) if tls_cfg.cert else None,
                       key_file=Path(tls_cfg.key) if tls_cfg.key else None)


def _system_ca_bundle() -> str:
    import ssl

    paths = ssl.get_default_verify_paths()
    for p in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if p and os.path.exists(p):
            return p
    raise DaemonError("uplink.tls.ca: no system CA bundle found; set ca to the broker's CA file", what="uplink.tls.ca")
