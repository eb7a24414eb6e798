"""The gateway's routes: the MQTT routes (paho adapter) and the SCAIP centre (SIP adapter) —
building them, running them, replying on them.

An MQTT route is a :class:`~gateway.domain.uplink_ports.Publisher` port. ``primary`` (the
broker of ``[uplink]``) and the optional ``fallback`` take commands and config pushes;
the ``lane`` is a second connection to the primary broker for alarms only (its own
network thread: alarms never queue behind telemetry) and takes no commands. With
``uplink.enabled = false`` there is no MQTT: ``primary`` is a
:class:`~gateway.domain.uplink_status.NoRoute` (never connected), and the SCAIP centre is
the only route.

The SCAIP centre (``[scaip]``, docs/scaip.md) is a :class:`~gateway.adapters.sip.ScaipRoute`
over a :class:`~gateway.adapters.sip.SipUserAgent`. Its settings are checked here, before
anything is opened (a URI the UA cannot use raises :class:`DaemonError`); the route itself
is made by the forwarder, which is its listener (:attr:`Routes.centre_factory`), and is
started (its SIP socket bound) and closed with the MQTT routes.

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
from gateway.domain.scaip import CentreRoute, ScaipListener
from gateway.domain.uplink_errors import UplinkError
from gateway.domain.uplink_ports import MessageHandler, Publisher
from gateway.domain.uplink_status import NoRoute

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


CentreFactory = Callable[[ScaipListener], Any]


class Routes:
    """The routes of one gateway and the drivers of those it owns. ``centre_factory``
    builds the SCAIP route for its listener (the forwarder); the route it made is
    :attr:`centre`. ``centre_first``: ``[scaip] role = "primary"``."""

    def __init__(self, primary: Publisher, fallback: Publisher | None = None, lane: Publisher | None = None,
                 drivers: Sequence[RouteDriver] = (), centre_factory: CentreFactory | None = None,
                 centre_first: bool = True) -> None:
        self.primary = primary
        self.fallback = fallback
        self.lane = lane
        self._drivers = list(drivers)
        self._make_centre = centre_factory
        self.centre_first = centre_first
        self.centre: Any = None          # the ScaipRoute, once the forwarder made it

    @property
    def centre_factory(self) -> Callable[[ScaipListener], CentreRoute] | None:
        """Give this to the forwarder (``Forwarder(centre=...)``); None without ``[scaip]``."""
        return self._build_centre if self._make_centre is not None else None

    def _build_centre(self, listener: ScaipListener) -> CentreRoute:
        assert self._make_centre is not None
        self.centre = self._make_centre(listener)
        return self.centre

    @property
    def mqtt(self) -> bool:
        """This gateway has MQTT (``uplink.enabled``)."""
        return not isinstance(self.primary, NoRoute)

    @property
    def command_routes(self) -> list[Publisher]:
        """Routes that take commands and config pushes (not the alarm lane)."""
        return [r for r in (self.primary, self.fallback) if r is not None]

    def connected(self) -> bool:
        """True while the primary or the fallback broker is connected; without MQTT, while
        the SCAIP centre answers heartbeats."""
        if not self.mqtt and self.centre is not None:
            return bool(self.centre.healthy)
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

    async def async_start(self) -> None:
        """Start the MQTT routes, then bind the SCAIP route's SIP socket (DaemonError if it cannot)."""
        self.start()
        if self.centre is not None:
            from gateway.adapters.sip import SipError

            try:
                await self.centre.async_start()
            except SipError as exc:
                raise DaemonError(f"scaip: {exc}; check scaip.local_port and scaip.transport",
                                  what="scaip.local_port") from None

    async def async_stop(self) -> None:
        for d in self._drivers:
            try:
                await d.async_stop()
            except Exception:  # one stuck route must not keep the others open
                log.exception("stopping a route failed")
        if self.centre is not None:
            try:
                await self.centre.async_close()
            except Exception:
                log.exception("stopping the SCAIP route failed")


# ---------------------------------------------------------------- building (the paho adapter)

def build_routes(cfg: GatewayConfig, loop: asyncio.AbstractEventLoop, clock: Clock, *,
                 publisher: Publisher | None = None, fallback_publisher: Publisher | None = None) -> Routes:
    """Real MQTT routes from ``[uplink]``, except those passed in (owned by the caller).
    With a ``publisher`` there is no alarm lane: the fake stands for the primary broker.
    Without MQTT (``uplink.enabled = false``, no ``publisher``) the primary is a NoRoute.
    The SCAIP centre of ``[scaip]`` is checked here and built later by the forwarder."""
    centre = build_centre(cfg, clock)
    centre_first = cfg.scaip.role.value == "primary"
    if publisher is None and not cfg.uplink.enabled:
        return Routes(NoRoute(), centre_factory=centre, centre_first=centre_first)
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
    return Routes(primary, fallback, lane, drivers, centre_factory=centre, centre_first=centre_first)


def build_centre(cfg: GatewayConfig, clock: Clock) -> CentreFactory | None:
    """The SCAIP route's maker from ``[scaip]`` (None when disabled). The SIP user agent is
    built now — no socket yet — so a setting it refuses fails before anything is opened."""
    s = cfg.scaip
    if not s.enabled:
        return None
    from gateway.adapters.sip import ScaipRoute, ScaipSettings, SipAccount, SipUserAgent, Timers, Transport, UaConfig

    t1 = s.t1_ms / 1000.0
    ua_cfg = UaConfig(
        target=s.centre, local_user=s.cid, transport=Transport(s.transport.value),
        outbound_proxy=s.proxy or None, local_port=s.local_port,
        account=SipAccount(s.username, s.password, s.realm or None) if s.username else None,
        timers=Timers(t1=t1, t2=8 * t1, t4=10 * t1),
        tls_ca_file=s.tls.ca or None, tls_server_name=s.tls.server_name or None,
        tls_cert_file=s.tls.cert or None, tls_key_file=s.tls.key or None,
        user_agent=f"wt-gateway/{__version__}")
    try:
        ua = SipUserAgent(ua_cfg)
    except ValueError as exc:
        raise DaemonError(f"scaip: {exc}; fix [scaip] in the configuration", what="scaip.centre") from None
    settings = ScaipSettings(
        cid=s.cid, heartbeat_interval_s=s.heartbeat_interval_s, heartbeat_adjustable=s.heartbeat_adjustable,
        hbi_intervals_s={i + 1: v for i, v in enumerate(s.hbi_intervals_s)}, reply_timeout_s=s.reply_timeout_s,
        escalate_after_s=s.escalate_after_s, send_info=s.send_info)

    def make(listener: ScaipListener) -> ScaipRoute:
        return ScaipRoute(ua, settings, listener=listener, clock=clock)
    return make


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
