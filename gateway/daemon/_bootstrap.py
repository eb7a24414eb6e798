"""The composition root: :func:`bootstrap` builds and wires every part of the gateway.

Every collaborator is built here and given exactly what it needs in its constructor;
nothing is looked up later. The one cycle in the graph — BLE feeds the ingest pipeline,
the pipeline feeds the rules, and a rule watches the BLE receiver — is closed by handing
BLE its sink when it starts (``BleSupervisor.async_start(pipeline)``), as the status
endpoint gets the snapshot it serves (its port is in the snapshot).

Settings that only an adapter can judge are checked before anything is opened: the
directories and the status port (:func:`preflight`), the BLE settings (bleak's
``BleConfig``: ``ble.adapter = "hci-0"`` fails here), the TLS CA bundle. A bad setting
raises :class:`DaemonError` naming the key, and no file, socket or thread is left open.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable

from gateway import __version__
from gateway.adapters.journal import JournalWriter, RetentionPolicy, SqliteJournal
from gateway.adapters.mains import MainsInput, mains_input_from_config
from gateway.config import GatewayConfig
from gateway.daemon._ble import BleSupervisor
from gateway.daemon._commands import CommandHandler
from gateway.daemon._config_push import ConfigPushApplier, PushState
from gateway.daemon._device_settings import SettingsSync
from gateway.daemon._errors import DaemonError
from gateway.daemon._ingest import DeviceFeedback, IngestPipeline
from gateway.daemon._links import LinkTable
from gateway.daemon._logging import install_log_limits
from gateway.daemon._preflight import preflight
from gateway.daemon._routes import Routes, build_routes
from gateway.daemon._runtime import GatewayRuntime, Periodic
from gateway.daemon._status import Advertiser, StatusEndpoint, StatusReporter
from gateway.daemon._update_health import UpdateHealthCheck
from gateway.daemon._upgrades import UpgradeController
from gateway.domain.devices import DeviceRegistry
from gateway.domain.forwarder import Forwarder
from gateway.domain.ingress import Ingress
from gateway.domain.ports import Clock, SystemClock
from gateway.domain.remote import RemoteCommands
from gateway.domain.rules import RuleEngine, build_rules
from gateway.domain.signal import LoggingLocalSignal
from gateway.domain.uplink_ports import Publisher

log = logging.getLogger("gateway.daemon")

STATS = ("events", "acks_sent", "duplicates", "health_published", "feedback_sent", "handler_errors", "time_sent")


def bootstrap(cfg: GatewayConfig, *, clock: Clock | None = None, loop: asyncio.AbstractEventLoop | None = None,
              publisher: Publisher | None = None, fallback_publisher: Publisher | None = None,
              mains: MainsInput | None = None, serial: bool = True, advertise: bool = True,
              pushes: PushState | None = None, request_exit: Callable[[int], None] | None = None) -> GatewayRuntime:
    """Wire the gateway from a validated config. Real adapters unless fakes are passed:
    ``publisher``/``fallback_publisher`` replace the MQTT routes (their owner runs them),
    ``clock`` the system clock, ``mains`` the mains input; ``serial=False`` opens no serial
    port, ``advertise=False`` no zeroconf. ``pushes``: the fleet configuration state of the
    main loop (gateway/daemon/_config_push.py); without it pushes are answered ``rejected``.
    ``request_exit(code)``: ends the process with ``code`` (an update restarts into another slot).
    Must be called with the event loop running (or given ``loop``). Raises DaemonError
    before opening anything if a setting cannot work here."""
    preflight(cfg)
    loop = loop or asyncio.get_running_loop()
    clock = clock or SystemClock()
    ble_settings = _ble_settings(cfg)
    routes = build_routes(cfg, loop, clock, publisher=publisher, fallback_publisher=fallback_publisher)
    journal = SqliteJournal(cfg.journal_path, max_telemetry_bytes=int(cfg.journal.max_telemetry_mb * 1024 * 1024),
                            clock=clock, retention=RetentionPolicy.from_config(cfg.journal))
    try:
        return _wire(cfg, loop=loop, clock=clock, journal=journal, routes=routes, ble_settings=ble_settings,
                     mains=mains if mains is not None else mains_input_from_config(cfg.mains),
                     serial=serial, advertise=advertise, pushes=pushes if pushes is not None else PushState(),
                     request_exit=request_exit)
    except BaseException:
        journal.close()
        raise


def _wire(cfg: GatewayConfig, *, loop: asyncio.AbstractEventLoop, clock: Clock, journal: SqliteJournal,
          routes: Routes, ble_settings: Any, mains: MainsInput, serial: bool, advertise: bool,
          pushes: PushState, request_exit: Callable[[int], None] | None) -> GatewayRuntime:
    gw = cfg.gateway.id
    stats = dict.fromkeys(STATS, 0)
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe)
    # Ingress (replay windows, downlink seq blocks) and the rule engine (gateway counter,
    # pending rule timers) go through the writer's queued API, never the journal directly:
    # the event loop must not wait for an fsync on the alarm path. Safety: a state write is
    # queued before the event's append in the same FIFO writer, so it is committed in the
    # same transaction or an earlier one; the device ACK waits for the append's commit
    # (docs/architecture.md "Alarm hot path").
    ingress = Ingress(gw, cfg.device_keys, writer, clock, allow_unencrypted_alarms=cfg.ble.allow_unencrypted_alarms,
                      known_devices=[d.id for d in cfg.devices] or None)
    registry = DeviceRegistry(cfg.devices, default_silent_after_s=cfg.supervision.silent_after_s,
                              started_at=clock.monotonic())
    links = LinkTable()
    feedback = DeviceFeedback(gateway_id=gw, ingress=ingress, links=links, stats=stats)
    forwarder = Forwarder(
        gateway_id=gw, journal=writer, primary=routes.primary, fallback=routes.fallback, alarm_lane=routes.lane,
        clock=clock, local_signal=LoggingLocalSignal(), ack_timeout_s=cfg.uplink.ack_timeout_s,
        on_platform_ack=feedback.on_platform_ack, on_alarm_escalated=feedback.on_alarm_escalated,
        journal_recovery=journal.recovery, centre=routes.centre_factory, centre_first=routes.centre_first)
    ble = BleSupervisor(ble_settings, cfg.devices, links=links, clock=clock) if ble_settings is not None else None
    engine = RuleEngine(gw, build_rules(cfg, registry, mains, routes.connected, clock,
                                        ble_status=ble.watchdog_status if ble is not None else None),
                        writer, forwarder, clock, state=writer, ids=forwarder.event_ids)   # one id issuer
    remote = RemoteCommands(
        gw, __version__, clock, paired=lambda d: d in cfg.device_keys,
        known_role=lambda d: (dev.role.name.lower() if (dev := cfg.device(d)) is not None else None))
    status = None
    if cfg.status.enabled:
        status = StatusEndpoint(cfg.status.host, cfg.status.port,
                                advertiser=_advertiser(cfg) if advertise and cfg.discovery.enabled else None)
    upgrades = UpgradeController(
        gateway_id=gw, settings=cfg.upgrades, slots_path=cfg.slots_path,
        is_configured=lambda d: cfg.device(d) is not None, ingress=ingress, links=links, registry=registry,
        routes=routes, clock=clock, loop=loop, data_dir=Path(cfg.gateway.data_dir), request_exit=request_exit,
        trusted_keys=cfg.release_key_specs, device_role=lambda d: (dev.role.name.lower() if (dev := cfg.device(d)) else None),
        health=UpdateHealthCheck(gateway_id=gw, uplink_connected=routes.connected, journal_path=cfg.journal_path,
                                 status=status, clock=clock, routes=routes, snapshot=lambda: reporter.snapshot()))
    settings = SettingsSync(cfg.devices, ingress=ingress, links=links, clock=clock)   # devices.<id>.placement → CONFIG
    pipeline = IngestPipeline(ingress=ingress, registry=registry, forwarder=forwarder, on_new_event=engine.on_event,
                              links=links, upgrades=upgrades, is_test=remote.test_mark, clock=clock, stats=stats,
                              settings=settings)
    gate = pushes.control_gate(cfg, clock)    # signed control messages only (gateway/daemon/_control.py)
    commands = CommandHandler(gateway_id=gw, upgrades=upgrades, remote=remote, routes=routes, stats=stats, gate=gate)
    config_push = ConfigPushApplier(gateway_id=gw, current=cfg, state=pushes, routes=routes, gate=gate)
    reporter = StatusReporter(
        gateway_id=gw, journal_path=cfg.journal_path, clock=clock, forwarder=forwarder, writer=writer, links=links,
        ble=ble, registry=registry, engine=engine, ingress=ingress, remote=remote, stats=stats,
        config_version=pushes.applied_version, status=status, primary=routes.primary, control=gate.status,
        device_settings=settings)
    periodic = [
        Periodic("rules", cfg.supervision.tick_s, [engine.tick, upgrades.tick, settings.tick,
                                                           config_push.flush_pending], stats=stats),
        Periodic("health", cfg.uplink.health_interval_s, [reporter.publish_health], stats=stats,
                 first_delay_s=min(2.0, cfg.uplink.health_interval_s)),
    ]
    rt = GatewayRuntime(cfg, loop=loop, clock=clock, journal=journal, writer=writer, ingress=ingress,
                        forwarder=forwarder, registry=registry, engine=engine, routes=routes, links=links,
                        pipeline=pipeline, commands=commands, config_push=config_push, upgrades=upgrades,
                        reporter=reporter, status=status, ble=ble, periodic=periodic, stats=stats)
    if serial:
        from gateway.adapters.transports.serial_link import SerialLink

        for path in cfg.serial.ports:
            rt.add_link(SerialLink(path, loop, pipeline.on_link_bytes, baud=cfg.serial.baud,
                                   reconnect_s=cfg.serial.reconnect_s, on_state=pipeline.on_link_state))
    return rt


def _ble_settings(cfg: GatewayConfig) -> Any:
    """bleak's validated BleConfig for ``[ble]``, None when BLE is off. DaemonError if refused."""
    if not cfg.ble.enabled:
        return None
    from gateway.adapters.transports.ble import BleConfig, ScanMode

    try:
        return BleConfig(adapter=cfg.ble.adapter, mode=ScanMode(cfg.ble.scan_mode.value), pair=cfg.ble.pair)
    except ValueError as exc:
        raise DaemonError(f"{exc}; fix [ble] in the configuration", what="ble") from None


def _advertiser(cfg: GatewayConfig) -> Callable[[int], Advertiser]:
    """The zeroconf advertisement of the status port (known once the server listens)."""
    def make(status_port: int) -> Advertiser:
        from gateway.adapters.discovery import GatewayAdvertiser

        return GatewayAdvertiser(cfg.gateway.id, __version__, status_port, service_type=cfg.discovery.service_type,
                                 interfaces=cfg.discovery.interfaces)
    return make


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    install_log_limits()    # repetitive lines (rejects, reconnects) rate-limited: gateway/daemon/_logging.py
