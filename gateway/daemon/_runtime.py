"""The wired gateway (built by :func:`gateway.daemon.bootstrap`): its collaborators, and the
order they start and stop in.

Collaborators (each built by the composition root with exactly what it needs):

=========================  =====================================================================
``pipeline``               sources → ingress → registry, forwarder, ACK/TIME (``_ingest.py``)
``routes``                 MQTT routes and their drivers (``_routes.py``)
``commands``               ``wt.cmd/1`` → upgrades or remote commands (``_commands.py``)
``config_push``            ``wt.config/1`` → re-bootstrap or ``rejected`` (``_config_push.py``)
``upgrades``               ``ota`` / ``update`` (``_upgrades.py``)
``reporter``               the status snapshot and ``wt.health/1`` (``_status.py``)
``status``                 status HTTP server + zeroconf, or None (``_status.py``)
``ble``                    scanner, watchdog, GATT links, or None (``_ble.py``)
=========================  =====================================================================

Start: interrupted update rolled back → journal writer → subscriptions → routes →
forwarder → byte links → rules tick and health → status endpoint (+ zeroconf) → BLE.
Stop: BLE recovery off → byte links → BLE → periodic tasks → status endpoint → the
journal drains (rules still react) → forwarder flush → routes → writer → journal.
``async_stop`` also cleans up after a start that failed half-way.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Sequence

from gateway import __version__
from gateway.adapters.journal import JournalWriter, SqliteJournal
from gateway.adapters.status import StatusServer
from gateway.adapters.transports import LinkState
from gateway.config import GatewayConfig
from gateway.daemon._ble import BleSupervisor
from gateway.daemon._commands import CommandHandler
from gateway.daemon._config_push import ConfigPushApplier
from gateway.daemon._ingest import IngestPipeline
from gateway.daemon._links import Link, LinkTable
from gateway.daemon._routes import Routes
from gateway.daemon._status import StatusEndpoint, StatusReporter
from gateway.daemon._upgrades import UpgradeController
from gateway.domain.devices import DeviceRegistry
from gateway.domain.forwarder import Forwarder
from gateway.domain.ingress import Ingress
from gateway.domain.ports import Clock
from gateway.domain.rules import RuleEngine

log = logging.getLogger("gateway.daemon")


class Periodic:
    """Calls ``steps`` every ``interval_s`` on the loop; a failing step is logged and counted."""

    def __init__(self, name: str, interval_s: float, steps: Sequence[Callable[[], Any]], *,
                 stats: dict[str, int], first_delay_s: float | None = None) -> None:
        self.name = name
        self.interval_s = interval_s
        self.steps = list(steps)
        self._stats = stats
        self._first_delay_s = interval_s if first_delay_s is None else first_delay_s

    async def async_run(self) -> None:
        await asyncio.sleep(self._first_delay_s)
        while True:
            for step in self.steps:
                try:
                    step()
                except Exception:  # periodic work must keep running
                    self._stats["handler_errors"] += 1
                    log.exception("periodic %s failed", getattr(step, "__qualname__", step))
            await asyncio.sleep(self.interval_s)


class GatewayRuntime:
    """The wired gateway. Built by :func:`bootstrap`; run with :meth:`async_run`."""

    def __init__(self, cfg: GatewayConfig, *, loop: asyncio.AbstractEventLoop, clock: Clock,
                 journal: SqliteJournal, writer: JournalWriter, ingress: Ingress, forwarder: Forwarder,
                 registry: DeviceRegistry, engine: RuleEngine, routes: Routes, links: LinkTable,
                 pipeline: IngestPipeline, commands: CommandHandler, config_push: ConfigPushApplier,
                 upgrades: UpgradeController, reporter: StatusReporter, status: StatusEndpoint | None,
                 ble: BleSupervisor | None, periodic: Sequence[Periodic], stats: dict[str, int]) -> None:
        self.cfg = cfg
        self.loop = loop
        self.clock = clock
        self.journal = journal
        self.writer = writer
        self.ingress = ingress
        self.forwarder = forwarder
        self.registry = registry
        self.engine = engine
        self.routes = routes
        self.links = links
        self.pipeline = pipeline
        self.commands = commands
        self.config_push = config_push
        self.upgrades = upgrades
        self.reporter = reporter
        self.status = status
        self.ble = ble
        self.periodic = list(periodic)
        self.stats = stats
        self._byte_links: list[Link] = []     # serial / emulated links: started and stopped here
        self._tasks: list[asyncio.Task[Any]] = []
        self._writer_started = False
        self._links_started = False
        self._stopping = False

    # ------------------------------------------------------------ wiring after bootstrap
    def add_link(self, link: Link) -> None:
        """Register a byte link (serial, emulated, test link); the runtime starts and stops it."""
        self.links.add(link)
        self._byte_links.append(link)

    def attach_emulated(self, home: Any) -> None:
        """Wire an EmulatedHome's links and air to this gateway."""
        for link in home.links.values():
            link.on_bytes = self.pipeline.on_link_bytes
            link.on_state = self.pipeline.on_link_state
            self.add_link(link)
        home.air.on_advert = self.pipeline.on_advert

    # ------------------------------------------------------------ the inbound path (for tests and benches)
    def on_link_bytes(self, link_name: str, data: bytes) -> None:
        self.pipeline.on_link_bytes(link_name, data)

    def on_advert(self, mac: str, service_data: bytes, rssi: int | None) -> None:
        self.pipeline.on_advert(mac, service_data, rssi)

    def on_gatt_measurement(self, mac: str, uuid16: int, data: bytes) -> None:
        self.pipeline.on_gatt_measurement(mac, uuid16, data)

    def on_link_state(self, link_name: str, state: LinkState) -> None:
        self.pipeline.on_link_state(link_name, state)

    # ------------------------------------------------------------ status
    def snapshot(self) -> dict[str, Any]:
        return self.reporter.snapshot()

    def publish_health(self) -> bool:
        return self.reporter.publish_health()

    def uplink_connected(self) -> bool:
        return self.routes.connected()

    @property
    def status_server(self) -> StatusServer | None:
        return self.status.server if self.status is not None else None

    # ------------------------------------------------------------ lifecycle
    async def async_start(self) -> None:
        self.upgrades.recover_interrupted_update()
        self.writer.start()
        self._writer_started = True
        self.routes.subscribe(self.commands.topic, self.commands.on_cmd_message)
        self.routes.subscribe(self.config_push.topic, self.config_push.on_config_message)
        await self.routes.async_start()      # MQTT drivers, then the SCAIP route's SIP socket
        self._tasks.append(self.loop.create_task(self.forwarder.async_run(), name="forwarder"))
        self._links_started = True
        for link in self._byte_links:
            link.start()
        for p in self.periodic:
            self._tasks.append(self.loop.create_task(p.async_run(), name=p.name))
        # an update on trial commits (or rolls back), stored command results are published
        self._tasks.append(self.loop.create_task(self.upgrades.async_run(), name="upgrades"))
        if self.status is not None:
            await self.status.async_start(self.reporter.snapshot)
        if self.ble is not None:
            await self.ble.async_start(self.pipeline)
        log.info("gateway %s %s running: %d device(s) configured, links: %s, uplink %s:%d",
                 self.cfg.gateway.id, __version__, len(self.cfg.devices), ", ".join(self.links) or "none",
                 self.cfg.uplink.host, self.cfg.uplink.port)

    async def async_stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("gateway %s stopping", self.cfg.gateway.id)
        if self.ble is not None:
            self.ble.request_stop()
        if self._links_started:
            for link in self._byte_links:
                try:
                    await asyncio.to_thread(link.stop)   # serial links join their threads
                except Exception:
                    log.exception("stopping link %s failed", link.name)
        if self.ble is not None:
            await self.ble.async_stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.status is not None:
            await self.status.async_stop()
        if self._writer_started:
            # let queued journal writes complete while rules can still react to them (twice:
            # the rule events raised by the first round are journaled in the second)
            for _ in range(2):
                await self._journal_barrier()
        self.pipeline.begin_shutdown()
        self.forwarder.flush()
        await self.routes.async_stop()
        await asyncio.to_thread(self.writer.stop)
        self.journal.close()
        log.info("gateway %s stopped", self.cfg.gateway.id)

    async def _journal_barrier(self, timeout_s: float = 10.0) -> None:
        fut: asyncio.Future[None] = self.loop.create_future()

        def done(_: Any = None) -> None:
            if not fut.done():
                fut.set_result(None)
        try:
            self.writer.call(lambda j: None, done, on_error=lambda exc: done())
            await asyncio.wait_for(fut, timeout_s)
        except Exception:  # a stuck or closed journal must not block shutdown
            log.warning("journal did not drain within %.0f s at shutdown", timeout_s)

    async def async_run(self, stop: asyncio.Event) -> None:
        await self.async_start()
        try:
            await stop.wait()
        finally:
            await self.async_stop()
