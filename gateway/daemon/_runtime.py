"""The wired gateway (built by :func:`gateway.daemon.bootstrap`): byte links → ingress →
forwarder, rules, registry, status, health, BLE; lifecycle ``async_start`` / ``async_stop``."""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from typing import Any, Callable

from gateway import __version__
from gateway.codec.enums import FeedbackState, MsgType
from gateway.codec.payloads import Time
from gateway.config import GatewayConfig
from gateway.daemon._fleet import FleetControl
from gateway.daemon._upgrades import UpgradeControl
from gateway.domain.devices import DeviceRegistry
from gateway.domain.config_push import ConfigPush
from gateway.domain.ingress import Ingress, IngressResult
from gateway.adapters.journal import JournalWriter, SqliteJournal
from gateway.adapters.mains import MainsInput
from gateway.domain.model import Event
from gateway.domain.ports import Clock
from gateway.domain.remote import RemoteCommands
from gateway.domain.rules import RuleEngine
from gateway.adapters.status import StatusServer, health_payload
from gateway.adapters.transports import LinkState
from gateway.domain.payload import AckStatus, Topics
from gateway.domain.forwarder import Forwarder
from gateway.domain.uplink_errors import UplinkError
from gateway.domain.uplink_ports import Publisher

log = logging.getLogger("gateway.daemon")


class GatewayRuntime(FleetControl, UpgradeControl):
    """The wired gateway. Built by :func:`bootstrap`; run with :meth:`async_run`."""

    def __init__(self, cfg: GatewayConfig, *, loop: asyncio.AbstractEventLoop, clock: Clock,
                 journal: SqliteJournal, writer: JournalWriter, ingress: Ingress, forwarder: Forwarder,
                 primary: Publisher, fallback: Publisher | None, registry: DeviceRegistry,
                 engine: RuleEngine, mains: MainsInput, advertise: bool) -> None:
        self.cfg = cfg
        self.loop = loop
        self.clock = clock
        self.journal = journal
        self.writer = writer
        self.ingress = ingress
        self.forwarder = forwarder
        self.primary = primary
        self.fallback = fallback
        self.alarm_lane: Publisher | None = None
        self.registry = registry
        self.engine = engine
        self.mains = mains
        self.links: dict[str, Any] = {}
        self.status_server: StatusServer | None = None
        self.advertiser: Any = None
        self._advertise = advertise
        self._ble: tuple[Any, Any] | None = None
        self._tasks: list[asyncio.Task] = []
        self.started_mono = clock.monotonic()
        self.started_at = clock.time()
        self.stats: dict[str, int] = {"events": 0, "acks_sent": 0, "duplicates": 0, "health_published": 0,
                                      "feedback_sent": 0, "handler_errors": 0, "time_sent": 0}
        self.on_event_stored: list[Callable[[Event, bool], None]] = []
        self._stopping = False
        self._journal_closing = False
        # fleet configuration push (wt.config/1): set by async_main
        self.config_loader: Callable[[dict[str, Any]], GatewayConfig] | None = None
        self.applied_push: ConfigPush | None = None
        self.pending_report: tuple[ConfigPush, str, str | None] | None = None
        self.reload_request: tuple[GatewayConfig, ConfigPush] | None = None
        self.reload_event = asyncio.Event()
        self.failed_pushes: dict[tuple[int, str | None], str] = {}   # pushes that could not start
        self._upgrade_init()
        self.remote = RemoteCommands(
            cfg.gateway.id, __version__, clock, paired=lambda d: d in cfg.device_keys,
            known_role=lambda d: (dev.role.name.lower() if (dev := cfg.device(d)) is not None else None))

    # ------------------------------------------------------------ links
    def add_link(self, link: Any) -> None:
        """Register a byte link (serial, emulated, BLE frame link) by its name."""
        self.links[link.name] = link

    def attach_emulated(self, home: Any) -> None:
        """Wire an EmulatedHome's links and air to this gateway."""
        for link in home.links.values():
            link.on_bytes = self.on_link_bytes
            link.on_state = self.on_link_state
            self.add_link(link)
        home.air.on_advert = self.on_advert

    def on_link_bytes(self, link_name: str, data: bytes) -> None:
        try:
            self._handle(self.ingress.feed(link_name, data))
        except Exception:  # one bad chunk must never stop the gateway
            self.stats["handler_errors"] += 1
            log.exception("handling bytes from %s failed", link_name)

    def on_advert(self, mac: str, service_data: bytes, rssi: int | None) -> None:
        try:
            self._handle(self.ingress.advert(mac, service_data, rssi))
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("handling an advert from %s failed", mac)

    def on_link_state(self, link_name: str, state: LinkState) -> None:
        log.info("link %s is %s", link_name, state.value)
        if state is not LinkState.UP:
            self.ingress.forget_link(link_name)

    def _handle(self, res: IngressResult) -> None:
        mono = self.clock.monotonic()
        for upd in res.device_updates:
            self.registry.apply(upd, mono=mono)
            if upd.reset_cause is not None:   # only a HELLO carries the reset cause
                self._send_time(upd.device_id, upd.link)
                self._upgrade_on_hello(upd.device_id, upd.fw_version)
        for msg in res.messages:
            self._upgrade_on_message(msg)
        for link_name, data in res.replies:
            self._send(link_name, data)
        for event in res.events:
            self.stats["events"] += 1
            if not event.test and self.remote.is_test(event.device_id):
                event = dataclasses.replace(event, test=True)   # commissioning: recorded, not dispatched
            link = res.event_links.get(event.event_id)
            self.forwarder.submit(event, functools.partial(self._stored, link=link))

    def _stored(self, event: Event, is_new: bool, link: str | None) -> None:
        """The event is durable: ACK the device (only now), then let the rules see it."""
        if link is not None and link in self.links and event.seq is not None:   # adverts get no ACK
            try:
                self._send(link, self.ingress.ack_frame(event, duplicate=not is_new))
                self.stats["acks_sent"] += 1
            except ValueError:
                log.exception("cannot build the ACK for %s", event.event_id)
        if not is_new:
            self.stats["duplicates"] += 1
            return
        if self._journal_closing:
            log.warning("event %s stored during shutdown; rules not applied to it", event.event_id)
            return
        self.engine.on_event(event)
        for cb in self.on_event_stored:
            cb(event, is_new)

    def _send_time(self, device_id: str, link_name: str) -> None:
        """Answer a HELLO with TIME (authenticated for a keyed device): the device gets wall
        time, and a device on a new OTA image confirms it only after hearing from us."""
        if link_name not in self.links:
            return
        try:
            self._send(link_name, self.ingress.downlink(device_id, MsgType.TIME, Time(int(self.clock.time()))))
            self.stats["time_sent"] += 1
        except (ValueError, OSError) as exc:
            log.warning("TIME to %s on %s not sent: %s", device_id, link_name, exc)

    def _send(self, link_name: str, data: bytes) -> None:
        link = self.links.get(link_name)
        if link is None:
            log.warning("no link %s for a %d-byte downlink", link_name, len(data))
            return
        link.send(data)

    # ------------------------------------------------------------ platform feedback
    def on_platform_ack(self, event_id: str, status: AckStatus, event: Event | None) -> None:
        state = {AckStatus.RECEIVED: FeedbackState.RECEIVED, AckStatus.ACCEPTED: FeedbackState.ACCEPTED}.get(status)
        if state is not None and event is not None:
            self._feedback(event, state)

    def on_alarm_escalated(self, event: Event, step: int) -> None:
        self._feedback(event, FeedbackState.DELIVERY_FAILING)

    def _feedback(self, event: Event, state: FeedbackState) -> None:
        if event.seq is None or event.device_id == self.cfg.gateway.id:
            return
        link = self.ingress.link_for(event.device_id)
        if link is None or link not in self.links:
            return
        self._send(link, self.ingress.feedback_frame(event.device_id, event.seq, state))
        self.stats["feedback_sent"] += 1

    # ------------------------------------------------------------ status / health
    def _routes(self) -> list[Publisher]:
        return [r for r in (self.alarm_lane, self.primary, self.fallback) if r is not None]

    def uplink_connected(self) -> bool:
        return any(r is not None and r.connected for r in (self.primary, self.fallback))

    def ble_watchdog_status(self) -> Any:
        """The BLE watchdog's WatchdogStatus, or None while BLE is not running."""
        return self._ble[1].status() if self._ble is not None else None

    def snapshot(self) -> dict[str, Any]:
        up = self.forwarder.status().to_dict()
        depth = self.writer.depth()
        links = [ln.status() for ln in self.links.values() if hasattr(ln, "status")]
        if self._ble is not None:
            links.append({"name": "ble", "kind": "ble", "state": self._ble[1].status().state.value,
                          **{k: v for k, v in self._ble[0].status().items() if k in ("reports", "bthome_devices")}})
        return {
            "schema": "wt.status/1",
            "gateway": self.cfg.gateway.id,
            "version": __version__,
            "at": self.clock.time(),
            "uptime_s": round(self.clock.monotonic() - self.started_mono, 1),
            "uplink": {k: up[k] for k in ("connected", "route", "routes", "backlog", "inflight",
                                          "alarms_unacknowledged", "alarms_held")},
            "journal": {"total": depth.total, "undelivered": depth.undelivered, "alarms_pending": depth.alarms_pending,
                        "shed": depth.shed, "bytes_used": depth.bytes_used, "path": str(self.cfg.journal_path)},
            "links": links,
            "devices": self.registry.snapshot(),
            "last_alarms": up["last_alarms"],
            "rules": {"raised": self.engine.raised, "errors": self.engine.errors,
                      "active": [r.name for r in self.engine.rules]},
            "ingress": {"rejects": self.ingress.counters.snapshot(), "duplicates": self.ingress.duplicates},
            "stats": dict(self.stats),
            "test_mode": self.remote.test_devices(),
            "config_version": self.applied_push.version if self.applied_push else 0,
            "status_port": self.status_server.port if self.status_server else None,
            "ble": ({"watchdog": self._ble[1].status().to_dict(), **{k: v for k, v in self._ble[0].status().items()
                                                                   if k in ("reports", "bthome_devices")}}
                    if self._ble is not None else None),
        }

    def publish_health(self) -> bool:
        if not self.primary.connected:
            return False
        payload = health_payload(self.snapshot())
        try:
            self.primary.publish(Topics(self.cfg.gateway.id).health, json.dumps(payload).encode(), qos=1)
        except UplinkError as exc:
            log.debug("health not published: %s", exc)
            return False
        self.stats["health_published"] += 1
        return True

    # ------------------------------------------------------------ lifecycle
    async def async_start(self) -> None:
        if self.cfg.slots_path.joinpath("state.json").exists() and self.slots().recover():
            log.warning("an unconfirmed gateway update was pending at start: rolled back to slot %s", self.slots().active)
        self.writer.start()
        for route in (self.primary, self.fallback):   # the alarm lane does not take commands
            if route is not None:
                route.subscribe(Topics(self.cfg.gateway.id).cmd, self.on_cmd_message)
                route.subscribe(Topics(self.cfg.gateway.id).config, self.on_config_message)
        for route in self._routes():
            if hasattr(route, "start"):
                route.start()
        self._tasks.append(self.loop.create_task(self.forwarder.async_run(), name="forwarder"))
        for link in list(self.links.values()):
            link.start()
        self._tasks.append(self.loop.create_task(self._every(self.cfg.supervision.tick_s, self._tick_rules),
                                                 name="rules"))
        self._tasks.append(self.loop.create_task(self._every(self.cfg.uplink.health_interval_s, self.publish_health,
                                                             first_delay_s=min(2.0, self.cfg.uplink.health_interval_s)),
                                                 name="health"))
        if self.cfg.status.enabled:
            self.status_server = StatusServer(self.snapshot, self.cfg.status.host, self.cfg.status.port)
            await self.status_server.async_start()
        if self.cfg.ble.enabled:
            await self._start_ble()
        if self._advertise and self.cfg.discovery.enabled and self.status_server is not None:
            from gateway.adapters.discovery import DiscoveryError, GatewayAdvertiser

            try:
                self.advertiser = GatewayAdvertiser(self.cfg.gateway.id, __version__, self.status_server.port,
                                                    service_type=self.cfg.discovery.service_type,
                                                    interfaces=self.cfg.discovery.interfaces)
                await self.advertiser.async_start()
            except DiscoveryError as exc:  # discovery is a convenience: log, keep running
                log.warning("zeroconf advertisement disabled: %s", exc)
                self.advertiser = None
        log.info("gateway %s %s running: %d device(s) configured, links: %s, uplink %s:%d",
                 self.cfg.gateway.id, __version__, len(self.cfg.devices), ", ".join(self.links) or "none",
                 self.cfg.uplink.host, self.cfg.uplink.port)

    async def _start_ble(self) -> None:
        from gateway.config import DeviceLink
        from gateway.adapters.transports.ble import (BleConfig, BleFrameLink, BleHealthClient, BlueZAdapterPower,
                                                     BleScanner, ScanMode)
        from gateway.adapters.transports.ble_links import SupervisedGattLink
        from gateway.adapters.transports.ble_watchdog import BleWatchdog

        bcfg = BleConfig(adapter=self.cfg.ble.adapter, mode=ScanMode(self.cfg.ble.scan_mode.value), pair=self.cfg.ble.pair)
        scanner = BleScanner(bcfg, self.on_advert, clock=self.clock)
        watchdog = BleWatchdog(scanner, BlueZAdapterPower(bcfg), clock=self.clock)
        self._ble = (scanner, watchdog)
        self._tasks.append(self.loop.create_task(watchdog.async_run(), name="ble"))
        for dev in self.cfg.devices:
            mac = ":".join(dev.id[i:i + 2] for i in range(0, 12, 2)).upper()
            session: Any
            if dev.link is DeviceLink.BLE_GATT:
                name = f"ble:{mac}"
                session = BleFrameLink(mac, bcfg, on_bytes=functools.partial(self.on_link_bytes, name),
                                       resolve=scanner.known_device)
            elif dev.link is DeviceLink.BLE_HEALTH:
                name = f"ble-health:{mac}"
                session = BleHealthClient(mac, bcfg, on_measurement=self.on_gatt_measurement,
                                          resolve=scanner.known_device)
            else:
                continue
            link = SupervisedGattLink(session, on_state=self.on_link_state, clock=self.clock, name=name)
            self.add_link(link)
            link.start()

    def on_gatt_measurement(self, mac: str, uuid16: int, data: bytes) -> None:
        try:
            self._handle(self.ingress.gatt_measurement(mac, uuid16, data))
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("handling a GATT measurement from %s failed", mac)

    def _tick_rules(self) -> None:
        self.engine.tick()
        self._upgrade_tick()
        self._flush_pending_report()

    async def _every(self, interval_s: float, fn: Callable[[], Any], first_delay_s: float | None = None) -> None:
        await asyncio.sleep(interval_s if first_delay_s is None else first_delay_s)
        while True:
            try:
                fn()
            except Exception:  # periodic work must keep running
                self.stats["handler_errors"] += 1
                log.exception("periodic %s failed", getattr(fn, "__name__", fn))
            await asyncio.sleep(interval_s)

    async def async_stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("gateway %s stopping", self.cfg.gateway.id)
        if self._ble is not None:
            self._ble[1].request_stop()
        for link in list(self.links.values()):
            try:
                if hasattr(link, "async_stop"):
                    await link.async_stop()          # GATT links live on the loop
                else:
                    await asyncio.to_thread(link.stop)   # serial links join their threads
            except Exception:
                log.exception("stopping link %s failed", getattr(link, "name", link))
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._ble is not None:
            await self._ble[0].async_stop()
        if self.advertiser is not None:
            await self.advertiser.async_stop()
        if self.status_server is not None:
            await self.status_server.async_stop()
        # let queued journal writes complete while rules can still react to them (twice: the
        # rule events raised by the first round are journaled in the second)
        for _ in range(2):
            await self._journal_barrier()
        self._journal_closing = True
        self.forwarder.flush()
        for route in self._routes():
            try:
                if hasattr(route, "async_stop"):
                    await route.async_stop()          # loop-driven link
                if hasattr(route, "stop"):
                    await asyncio.to_thread(route.stop)   # thread-driven link (no-op otherwise)
            except Exception:
                log.exception("stopping route %s failed", getattr(route, "route", route))
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


