"""BLE in the running gateway: the BTHome scanner with its watchdog, and a supervised
GATT link per device configured with ``link = "ble-gatt"`` / ``"ble-health"``.

Built by the composition root when ``[ble] enabled = true``, with the validated bleak
settings (:class:`~gateway.adapters.transports.ble.BleConfig`: a bad adapter name fails
there, before anything is opened). What BLE feeds — adverts, GATT bytes, GATT health
values, link states — is the :class:`BleSink` given to :meth:`BleSupervisor.async_start`
(the ingest pipeline), so the BLE watchdog's status can be read by a rule that is built
before the pipeline exists.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from gateway.config import DeviceLink, DeviceSection
from gateway.daemon._links import LinkTable
from gateway.domain.ports import Clock
from gateway.adapters.transports import LinkState
from gateway.adapters.transports.ble_links import SupervisedGattLink
from gateway.adapters.transports.ble_watchdog import BleWatchdog, WatchdogStatus

if TYPE_CHECKING:   # the bleak adapter is imported when BLE starts: a gateway without BLE never loads bleak
    from gateway.adapters.transports.ble import BleConfig

log = logging.getLogger("gateway.daemon")

_SCANNER_KEYS = ("reports", "bthome_devices")


class BleSink(Protocol):
    """Where BLE delivers (gateway/daemon/_ingest.py IngestPipeline)."""

    def on_advert(self, mac: str, service_data: bytes, rssi: int | None) -> None: ...

    def on_link_bytes(self, link_name: str, data: bytes) -> None: ...

    def on_gatt_measurement(self, mac: str, uuid16: int, data: bytes) -> None: ...

    def on_link_state(self, link_name: str, state: LinkState) -> None: ...


class BleSupervisor:
    """Starts and stops the scanner, its watchdog and the GATT links; reports their status."""

    def __init__(self, settings: BleConfig, devices: Sequence[DeviceSection], *, links: LinkTable,
                 clock: Clock) -> None:
        self._settings = settings
        self._gatt_devices = [d for d in devices if d.link in (DeviceLink.BLE_GATT, DeviceLink.BLE_HEALTH)]
        self._links = links
        self._clock = clock
        # (scanner, watchdog) while running; a test may set it to fakes with .status()
        self.receiver: tuple[Any, Any] | None = None
        self._gatt: list[SupervisedGattLink] = []
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ status
    def watchdog_status(self) -> WatchdogStatus | None:
        """The watchdog's status (the BLE receiver rule reads it), None while not running."""
        if self.receiver is None:
            return None
        _, watchdog = self.receiver
        return watchdog.status()

    def link_status(self) -> dict[str, Any] | None:
        """The ``ble`` entry of the snapshot's link list."""
        if self.receiver is None:
            return None
        scanner, watchdog = self.receiver
        return {"name": "ble", "kind": "ble", "state": watchdog.status().state.value,
                **{k: v for k, v in scanner.status().items() if k in _SCANNER_KEYS}}

    def status(self) -> dict[str, Any] | None:
        """The snapshot's ``ble`` section."""
        if self.receiver is None:
            return None
        scanner, watchdog = self.receiver
        return {"watchdog": watchdog.status().to_dict(),
                **{k: v for k, v in scanner.status().items() if k in _SCANNER_KEYS}}

    # ------------------------------------------------------------ lifecycle
    async def async_start(self, sink: BleSink) -> None:
        from gateway.adapters.transports.ble import BleScanner, BlueZAdapterPower
        from gateway.adapters.transports.ble_gatt import BleFrameLink, BleHealthClient

        scanner = BleScanner(self._settings, sink.on_advert, clock=self._clock)
        watchdog = BleWatchdog(scanner, BlueZAdapterPower(self._settings), clock=self._clock)
        self.receiver = (scanner, watchdog)
        self._task = asyncio.get_running_loop().create_task(watchdog.async_run(), name="ble")
        for dev in self._gatt_devices:
            mac = ":".join(dev.id[i:i + 2] for i in range(0, 12, 2)).upper()
            session: Any
            if dev.link is DeviceLink.BLE_GATT:
                name = f"ble:{mac}"
                session = BleFrameLink(mac, self._settings, on_bytes=functools.partial(sink.on_link_bytes, name),
                                       resolve=scanner.known_device)
            else:
                name = f"ble-health:{mac}"
                session = BleHealthClient(mac, self._settings, on_measurement=sink.on_gatt_measurement,
                                          resolve=scanner.known_device)
            link = SupervisedGattLink(session, on_state=sink.on_link_state, clock=self._clock, name=name)
            self._gatt.append(link)
            self._links.add(link)
            link.start()

    def request_stop(self) -> None:
        """First step of shutdown: the watchdog stops recovering (no adapter power cycle now)."""
        if self.receiver is not None:
            self.receiver[1].request_stop()

    async def async_stop(self) -> None:
        self.request_stop()
        for link in self._gatt:
            try:
                await link.async_stop()
            except Exception:
                log.exception("stopping link %s failed", link.name)
        self._gatt.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.receiver is not None:
            await self.receiver[0].async_stop()
