"""Composition root: :func:`bootstrap` wires real or fake adapters from a validated config."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable

from gateway import __version__
from gateway.config import GatewayConfig
from gateway.daemon._errors import DaemonError
from gateway.daemon._runtime import GatewayRuntime
from gateway.domain.devices import DeviceRegistry
from gateway.domain.ingress import Ingress
from gateway.adapters.journal import JournalWriter, SqliteJournal
from gateway.adapters.mains import MainsInput, mains_input_from_config
from gateway.domain.ports import Clock, SystemClock
from gateway.domain.rules import RuleEngine, build_rules
from gateway.domain.forwarder import Forwarder
from gateway.domain.signal import LoggingLocalSignal
from gateway.domain.uplink_ports import Publisher

log = logging.getLogger("gateway.daemon")


def preflight(cfg: GatewayConfig) -> None:
    """Check what the config cannot: directories writable, status port free. Opens nothing
    that stays open; raises DaemonError naming the resource and the fix."""
    data_dir = Path(cfg.gateway.data_dir)
    for d, key in ((data_dir, "gateway.data_dir"), (cfg.journal_path.parent, "journal.path")):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DaemonError(f"{key}: cannot create {d} ({exc.strerror}); create it or point {key} elsewhere",
                              what=key) from None
        if not os.access(d, os.W_OK):
            raise DaemonError(f"{key}: {d} is not writable by this user; fix the permissions or change {key}",
                              what=key)
    if cfg.status.enabled and cfg.status.port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((cfg.status.host, cfg.status.port))
            except OSError as exc:
                raise DaemonError(f"status.port: {cfg.status.host}:{cfg.status.port} is not available ({exc.strerror}); "
                                  "is another gateway running? set status.port = 0 to pick a free port",
                                  what="status.port") from None


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


def bootstrap(cfg: GatewayConfig, *, clock: Clock | None = None, loop: asyncio.AbstractEventLoop | None = None,
              publisher: Publisher | None = None, fallback_publisher: Publisher | None = None,
              mains: MainsInput | None = None, serial: bool = True, advertise: bool = True) -> GatewayRuntime:
    """Wire the gateway from a validated config. Real adapters unless fakes are passed:
    ``publisher``/``fallback_publisher`` replace the MQTT routes, ``clock`` the system
    clock, ``mains`` the mains input. Must be called with the event loop running (or
    given ``loop``). Raises DaemonError before opening anything if preflight fails."""
    preflight(cfg)
    loop = loop or asyncio.get_running_loop()
    clock = clock or SystemClock()
    journal = SqliteJournal(cfg.journal_path, max_telemetry_bytes=int(cfg.journal.max_telemetry_mb * 1024 * 1024),
                            clock=clock)
    writer = JournalWriter(journal, dispatch=_dispatcher(loop))
    # Ingress (replay windows, downlink seq blocks) and the rule engine (gateway counter,
    # pending rule timers) go through the writer's queued API, never the journal directly:
    # the event loop must not wait for an fsync on the alarm path. Safety: a state write is
    # queued before the event's append in the same FIFO writer, so it is committed in the
    # same transaction or an earlier one; the device ACK waits for the append's commit
    # (docs/architecture.md "Alarm hot path").
    ingress = Ingress(cfg.gateway.id, cfg.device_keys, writer, clock,
                      allow_unencrypted_alarms=cfg.ble.allow_unencrypted_alarms,
                      known_devices=[d.id for d in cfg.devices] or None)
    primary = publisher if publisher is not None else make_route(cfg, loop, clock, route="primary")
    lane = make_route(cfg, loop, clock, route="primary", alarm_lane=True) if publisher is None else None
    fallback = fallback_publisher
    if fallback is None and cfg.uplink.fallback.enabled:
        fallback = make_route(cfg, loop, clock, route="fallback")
    registry = DeviceRegistry(cfg.devices, default_silent_after_s=cfg.supervision.silent_after_s,
                              started_at=clock.monotonic())
    mains = mains if mains is not None else mains_input_from_config(cfg.mains)
    holder: dict[str, GatewayRuntime] = {}
    forwarder = Forwarder(
        gateway_id=cfg.gateway.id, journal=writer, primary=primary, fallback=fallback, clock=clock,
        local_signal=LoggingLocalSignal(), ack_timeout_s=cfg.uplink.ack_timeout_s,
        on_platform_ack=lambda i, s, e: holder["rt"].on_platform_ack(i, s, e),
        on_alarm_escalated=lambda e, step: holder["rt"].on_alarm_escalated(e, step),
        journal_recovery=journal.recovery, alarm_lane=lane)
    engine_rules = build_rules(cfg, registry, mains, lambda: holder["rt"].uplink_connected(), clock,
                               ble_status=lambda: holder["rt"].ble_watchdog_status())
    engine = RuleEngine(cfg.gateway.id, engine_rules, writer, forwarder, clock, state=writer)
    rt = GatewayRuntime(cfg, loop=loop, clock=clock, journal=journal, writer=writer, ingress=ingress,
                        forwarder=forwarder, primary=primary, fallback=fallback, registry=registry,
                        engine=engine, mains=mains, advertise=advertise)
    rt.alarm_lane = lane
    holder["rt"] = rt
    if serial:
        from gateway.adapters.transports.serial_link import SerialLink

        for path in cfg.serial.ports:
            rt.add_link(SerialLink(path, loop, rt.on_link_bytes, baud=cfg.serial.baud,
                                   reconnect_s=cfg.serial.reconnect_s, on_state=rt.on_link_state))
    return rt


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


