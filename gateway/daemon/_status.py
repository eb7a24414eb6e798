"""What the gateway tells about itself: the status snapshot, ``wt.health/1``, and the local
endpoint (HTTP + zeroconf) that serves it.

- :class:`StatusReporter` builds the ``wt.status/1`` snapshot (``gateway status``, the
  HTTP endpoint, the HIL benches) from the collaborators it is given, and publishes the
  ``wt.health/1`` digest of it on the primary route every ``uplink.health_interval_s``.
  With a SCAIP centre the snapshot has ``uplink.scaip`` (the route's whole status:
  reports with their last ``snu``, heartbeat state, counters) and the health payload its
  digest (:func:`scaip_health`).
- :class:`StatusEndpoint` is the status HTTP server (gateway/adapters/status.py) and the
  zeroconf advertisement of its port (gateway/adapters/discovery.py). The port is known
  only once the server listens, so the advertiser is made then, by the factory the
  composition root gives; a zeroconf failure is logged and the gateway keeps running.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Protocol

from contracts.payloads import dumps
from contracts.topics import Topics
from gateway import __version__
from gateway.adapters.journal import JournalWriter
from gateway.adapters.status import SnapshotFn, StatusServer, health_payload
from gateway.daemon._ble import BleSupervisor
from gateway.daemon._links import LinkTable
from gateway.domain.devices import DeviceRegistry
from gateway.domain.forwarder import Forwarder
from gateway.domain.ingress import Ingress
from gateway.domain.ports import Clock
from gateway.domain.remote import RemoteCommands
from gateway.domain.rules import RuleEngine
from gateway.domain.uplink_errors import UplinkError
from gateway.domain.uplink_ports import Publisher
from gateway.errors import GatewayError

log = logging.getLogger("gateway.daemon")


class Advertiser(Protocol):
    """The zeroconf advertisement (gateway.adapters.discovery.GatewayAdvertiser)."""

    async def async_start(self) -> None:
        """Raises a GatewayError (DiscoveryError) when it cannot advertise."""

    async def async_stop(self) -> None: ...


class DeviceSettingsStatus(Protocol):
    """The device settings sync's part of the snapshot (gateway/daemon/_device_settings.py)."""

    def status(self) -> dict[str, Any]: ...

    def state_of(self, device_id: str) -> str | None: ...


class StatusEndpoint:
    """The local status HTTP endpoint and, if given a factory, its zeroconf advertisement."""

    def __init__(self, host: str, port: int, *, advertiser: Callable[[int], Advertiser] | None = None) -> None:
        self.host = host
        self._port = port
        self._make_advertiser = advertiser
        self.server: StatusServer | None = None
        self.advertiser: Advertiser | None = None

    @property
    def port(self) -> int | None:
        """The port it listens on (the real one when configured as 0); None until started."""
        return self.server.port if self.server is not None else None

    def url(self) -> str | None:
        return f"http://{self.host}:{self.server.port}/status" if self.server is not None else None

    async def async_start(self, snapshot: SnapshotFn) -> None:
        self.server = StatusServer(snapshot, self.host, self._port)
        await self.server.async_start()
        if self._make_advertiser is None:
            return
        try:
            self.advertiser = self._make_advertiser(self.server.port)
            await self.advertiser.async_start()
        except GatewayError as exc:  # discovery is a convenience: log, keep running
            log.warning("zeroconf advertisement disabled: %s", exc)
            self.advertiser = None

    async def async_stop(self) -> None:
        if self.advertiser is not None:
            await self.advertiser.async_stop()
            self.advertiser = None
        if self.server is not None:
            await self.server.async_stop()


class StatusReporter:
    """The snapshot and the health publication."""

    def __init__(self, *, gateway_id: str, journal_path: Path, clock: Clock, forwarder: Forwarder,
                 writer: JournalWriter, links: LinkTable, ble: BleSupervisor | None, registry: DeviceRegistry,
                 engine: RuleEngine, ingress: Ingress, remote: RemoteCommands, stats: dict[str, int],
                 config_version: Callable[[], int], status: StatusEndpoint | None, primary: Publisher,
                 control: Callable[[], dict[str, Any]] | None = None,
                 device_settings: DeviceSettingsStatus | None = None) -> None:
        self._gateway_id = gateway_id
        self._journal_path = journal_path
        self._clock = clock
        self._forwarder = forwarder
        self._writer = writer
        self._links = links
        self._ble = ble
        self._registry = registry
        self._engine = engine
        self._ingress = ingress
        self._remote = remote
        self._stats = stats
        self._config_version = config_version
        self._status = status
        self._primary = primary
        self._control = control
        self._device_settings = device_settings
        self._health_topic = Topics(gateway_id).health
        self.started_mono = clock.monotonic()
        self.started_at = clock.time()

    def snapshot(self) -> dict[str, Any]:
        up = self._forwarder.status().to_dict()
        depth = self._writer.depth()
        links = self._links.status()
        ble_link = self._ble.link_status() if self._ble is not None else None
        if ble_link is not None:
            links.append(ble_link)
        return {
            "schema": "wt.status/1",
            "gateway": self._gateway_id,
            "version": __version__,
            "at": self._clock.time(),
            "uptime_s": round(self._clock.monotonic() - self.started_mono, 1),
            "uplink": {k: up[k] for k in ("connected", "route", "routes", "backlog", "inflight",
                                          "alarms_unacknowledged", "alarms_held", "scaip")},
            "journal": {"total": depth.total, "undelivered": depth.undelivered, "alarms_pending": depth.alarms_pending,
                        "shed": depth.shed, "bytes_used": depth.bytes_used, "path": str(self._journal_path)},
            "links": links,
            "devices": self._devices(),
            "last_alarms": up["last_alarms"],
            "rules": {"raised": self._engine.raised, "errors": self._engine.errors,
                      "active": [r.name for r in self._engine.rules]},
            "ingress": {"rejects": self._ingress.counters.snapshot(), "duplicates": self._ingress.duplicates},
            "stats": dict(self._stats),
            "test_mode": self._remote.test_devices(),
            "test_mode_status": self._remote.test_mode_status(),       # active, until, devices (docs/mqtt.md)
            "control": self._control() if self._control is not None else None,   # signed control messages
            "device_settings": self._device_settings.status() if self._device_settings is not None else None,
            "config_version": self._config_version(),
            "status_port": self._status.port if self._status is not None else None,
            "ble": self._ble.status() if self._ble is not None else None,
        }

    def _devices(self) -> list[dict[str, Any]]:
        """The registry's devices, each with the state of its settings (None: the configuration
        gives it none; gateway/domain/device_settings.py)."""
        devices = self._registry.snapshot()
        if self._device_settings is not None:
            for d in devices:
                d["settings"] = self._device_settings.state_of(d["device"])
        return devices

    def publish_health(self) -> bool:
        """``wt.health/1`` on the primary route; False when it is not connected."""
        if not self._primary.connected:
            return False
        snap = self.snapshot()
        doc = health_payload(snap)
        if snap["uplink"].get("scaip"):
            doc["uplink"]["scaip"] = scaip_health(snap["uplink"]["scaip"])
        try:
            self._primary.publish(self._health_topic, dumps(doc), qos=1)
        except UplinkError as exc:
            log.debug("health not published: %s", exc)
            return False
        self._stats["health_published"] += 1
        return True


def scaip_health(st: dict[str, Any]) -> dict[str, Any]:
    """The SCAIP route's digest in ``wt.health/1`` (``uplink.scaip``, docs/mqtt.md)."""
    hb = st.get("heartbeat") or {}
    counters = st.get("counters") or {}
    return {"state": "healthy" if st.get("healthy") else "unhealthy", "last_snu": st.get("last_snu"),
            "open": st.get("open", 0),
            "heartbeat": {k: hb.get(k) for k in ("interval_s", "alive", "missed", "last_answered_s_ago", "hbi",
                                                 "last_snu")},
            "escalated": counters.get("escalated", 0), "refused": counters.get("refused", 0),
            "unknown_ref": counters.get("unknown_ref", 0)}
