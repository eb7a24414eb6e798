"""BLE transport: the gateway's only module that imports bleak (and BlueZ's D-Bus API).

Wiring (gateway/daemon/_ble.py; GATT links in :mod:`.ble_gatt`; every ``async_``
method runs on the daemon's event loop, every callback is called on that loop and must
not block)::

    cfg = BleConfig(adapter="hci0")                    # frozen; defaults live here
    scanner = BleScanner(cfg, on_advert=ingress.on_ble_advert, clock=clock)
        # on_advert(mac: str, service_data: bytes, rssi: int): BTHome service data
        # (UUID 0xFCD2, docs/protocol.md §3) of every advertisement report, raw.
    power = BlueZAdapterPower(cfg)                     # Adapter1.Powered off/on
    watchdog = BleWatchdog(scanner, power, WatchdogConfig(), clock=clock)
    task = asyncio.create_task(watchdog.async_run())   # starts the scanner and keeps it alive
    watchdog.status()                                  # for `gateway status`

    link = BleFrameLink("AA:BB:CC:DD:EE:FF", cfg, on_bytes=decoder.feed,
                        resolve=scanner.known_device)   # WT frame service, docs/protocol.md §4
        # on_bytes(data: bytes): every tx notification, raw stream bytes
    health = BleHealthClient("AA:BB:...", cfg, on_measurement=ingress.on_gatt_measurement,
                             resolve=scanner.known_device)
        # on_measurement(mac: str, uuid16: int, data: bytes), e.g. uuid16 == 0x2A35

    # usually supervised (connect, reconnect with backoff, ByteLink shape, status()):
    sup = SupervisedGattLink(link, reconnect_s=5.0, on_state=on_link_state)  # ble_links.py
    sup.start(); sup.send(frame_bytes); sup.status(); await sup.async_stop()

    # or driven directly:
    await link.async_connect(); link.send(frame_bytes); await link.async_close()
    subscribed = await health.async_connect()          # HealthChar members subscribed to

``resolve`` must be given while the scanner runs: connecting by bare address makes
bleak start a second discovery session from this process, which bluetoothd refuses
(``org.bluez.Error.InProgress``); with ``resolve`` a device not yet seen advertising
fails fast with ``BleError("connect", "not seen advertising yet")``.

Errors from bleak, dbus-fast or the socket layer never leave this module raw: they are
translated to :class:`BleError` (``op``, ``address``, ``reason``). See docs/ble.md.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError, BleakError
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError as _DBusFastError

from gateway.domain.ports import Clock, SystemClock
from gateway.adapters.transports import TransportError

log = logging.getLogger(__name__)

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
WT_FRAME_SERVICE_UUID = "5f1e0001-7a3b-4c8e-9d21-6b7c0e5a9f10"
WT_FRAME_RX_UUID = "5f1e0002-7a3b-4c8e-9d21-6b7c0e5a9f10"   # gateway → device, write w/o response
WT_FRAME_TX_UUID = "5f1e0003-7a3b-4c8e-9d21-6b7c0e5a9f10"   # device → gateway, notify


class HealthChar(enum.IntEnum):
    """Standard health measurement characteristics (docs/protocol.md §5)."""

    BLOOD_PRESSURE = 0x2A35
    TEMPERATURE = 0x2A1C
    WEIGHT = 0x2A9D
    PLX_SPOT_CHECK = 0x2A5E
    PLX_CONTINUOUS = 0x2A5F
    GLUCOSE = 0x2A18


def uuid16_to_str(uuid16: int) -> str:
    return f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb"


class ScanMode(enum.Enum):
    ACTIVE = "active"    # SetDiscoveryFilter + StartDiscovery (works on every BlueZ ≥ 5.55)
    PASSIVE = "passive"  # AdvertisementMonitor1 (BlueZ ≥ 5.56 with --experimental)


@dataclass(frozen=True)
class BleConfig:
    adapter: str = "hci0"
    mode: ScanMode = ScanMode.ACTIVE
    call_timeout_s: float = 15.0      # any single BlueZ call (start/stop scan, Powered)
    connect_timeout_s: float = 20.0   # GATT connect incl. service discovery
    write_queue_max_bytes: int = 64 * 1024
    max_tracked_devices: int = 2048   # LRU bound: phones rotate random addresses all day
    use_acquire_notify: bool = False  # WT tx via AcquireNotify socket instead of StartNotify
    pair: bool = False                # bond before use (health devices with encrypted CCCDs)

    def __post_init__(self) -> None:
        if not self.adapter.startswith("hci") or not self.adapter[3:].isdigit():
            raise ValueError(f"ble.adapter={self.adapter!r}: expected an adapter name like 'hci0'")
        for key in ("call_timeout_s", "connect_timeout_s"):
            if getattr(self, key) <= 0:
                raise ValueError(f"ble.{key}={getattr(self, key)!r}: must be > 0 seconds")
        if self.max_tracked_devices < 16:
            raise ValueError(f"ble.max_tracked_devices={self.max_tracked_devices!r}: must be >= 16")

    @property
    def adapter_path(self) -> str:
        return f"/org/bluez/{self.adapter}"


class BleError(TransportError):
    """Error of the BLE transport. ``op`` names what failed (``scan_start``,
    ``connect``, ``write``, ``power``…), ``address`` the device (or adapter),
    ``dbus_error`` the BlueZ error name when there is one."""

    def __init__(self, op: str, reason: str, *, address: str = "", dbus_error: str = "") -> None:
        where = f" {address}" if address else ""
        super().__init__(f"BLE {op}{where} failed: {reason}", link=f"ble:{address}" if address else "ble")
        self.op = op
        self.address = address
        self.reason = reason
        self.dbus_error = dbus_error


class BleTimeout(BleError):
    """A BlueZ call did not answer within its timeout (a hang, see ble_watchdog)."""


def _translate(op: str, exc: BaseException, address: str = "") -> BleError:
    if isinstance(exc, BleError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return BleTimeout(op, "no answer from BlueZ within the timeout", address=address)
    if isinstance(exc, BleakDBusError):
        return BleError(op, str(exc), address=address, dbus_error=exc.dbus_error)
    if isinstance(exc, _DBusFastError):
        return BleError(op, f"{exc.type}: {exc.text}", address=address, dbus_error=exc.type)
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return BleError(op, f"system D-Bus not reachable ({exc}); is dbus running?", address=address)
    if isinstance(exc, (BleakError, OSError, EOFError)):
        return BleError(op, str(exc) or type(exc).__name__, address=address)
    return BleError(op, f"{type(exc).__name__}: {exc}", address=address)


_BLE_ERRORS = (BleakError, _DBusFastError, OSError, EOFError, asyncio.TimeoutError)


AdvertCallback = Callable[[str, bytes, int], None]


@dataclass
class ScannerStats:
    reports: int = 0             # advertisement reports (any device)
    bthome_reports: int = 0      # of which carried BTHome service data
    callback_errors: int = 0
    starts: int = 0
    start_failures: int = 0
    last_report_monotonic: float | None = None
    last_start_monotonic: float | None = None


class BleScanner:
    """Continuous BLE scanner (AdvertSource port). Each advertisement report that
    carries BTHome service data is passed raw to ``on_advert(mac, data, rssi)``.

    ``reports`` counts reports of any device (the watchdog's liveness signal); BlueZ
    reports a device again when its RSSI or advertising data change, which BTHome
    sensors guarantee (packet id / encryption counter)."""

    def __init__(self, config: BleConfig, on_advert: AdvertCallback, *, clock: Clock | None = None) -> None:
        self._cfg = config
        self._on_advert = on_advert
        self._clock = clock or SystemClock()
        self._scanner: BleakScanner | None = None
        # mac -> (last advertisement signature, bleak device); LRU-bounded
        self._seen: OrderedDict[str, tuple[tuple[Any, ...], BLEDevice]] = OrderedDict()
        self._bthome: OrderedDict[str, None] = OrderedDict()   # macs that sent BTHome data
        self.stats = ScannerStats()

    @property
    def running(self) -> bool:
        return self._scanner is not None

    @property
    def last_report_monotonic(self) -> float | None:
        return self.stats.last_report_monotonic

    @property
    def last_start_monotonic(self) -> float | None:
        return self.stats.last_start_monotonic

    @property
    def known_advertisers(self) -> int:
        """Distinct BTHome sensors reported since this scanner object was created
        (sensors advertise all the time, so their silence means a hang)."""
        return len(self._bthome)

    def known_device(self, mac: str) -> BLEDevice | None:
        """The BlueZ device object last reported for ``mac`` (for GATT connects while
        scanning: a second discovery session from this process would be refused)."""
        entry = self._seen.get(mac.upper())
        return None if entry is None else entry[1]

    def status(self) -> dict[str, Any]:
        """For ``gateway status``."""
        st = self.stats
        age = (None if st.last_report_monotonic is None
               else round(self._clock.monotonic() - st.last_report_monotonic, 1))
        return {"adapter": self._cfg.adapter, "mode": self._cfg.mode.value, "running": self.running,
                "reports": st.reports, "bthome_reports": st.bthome_reports,
                "devices_tracked": len(self._seen), "bthome_devices": len(self._bthome),
                "starts": st.starts, "start_failures": st.start_failures,
                "callback_errors": st.callback_errors, "last_report_age_s": age}

    def _build(self) -> BleakScanner:
        if self._cfg.mode is ScanMode.PASSIVE:
            passive: BlueZScannerArgs = {
                "adapter": self._cfg.adapter,
                "or_patterns": [OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc")],
            }
            return BleakScanner(self._detected, scanning_mode="passive", bluez=passive)
        # DuplicateData=True: report every change, not only the first advert of a device
        active: BlueZScannerArgs = {"adapter": self._cfg.adapter,
                                    "filters": {"Transport": "le", "DuplicateData": True}}
        return BleakScanner(self._detected, scanning_mode="active", bluez=active)

    async def async_start(self) -> None:
        """Start discovery; raises BleError / BleTimeout (after ``call_timeout_s``)."""
        if self._scanner is not None:
            return
        scanner = self._build()
        self.stats.starts += 1
        try:
            await asyncio.wait_for(scanner.start(), self._cfg.call_timeout_s)
        except _BLE_ERRORS as exc:
            self.stats.start_failures += 1
            raise _translate("scan_start", exc, self._cfg.adapter) from exc
        self._scanner = scanner
        self.stats.last_start_monotonic = self._clock.monotonic()

    async def async_stop(self) -> None:
        """Stop discovery. Never raises: a failed or hung stop is logged and the
        scanner is considered stopped (bleak removed its callbacks first)."""
        scanner, self._scanner = self._scanner, None
        if scanner is None:
            return
        try:
            await asyncio.wait_for(scanner.stop(), self._cfg.call_timeout_s)
        except _BLE_ERRORS as exc:
            log.info("BLE scan stop on %s: %s", self._cfg.adapter, _translate("scan_stop", exc))

    def _detected(self, device: BLEDevice, adv: AdvertisementData) -> None:
        mac = device.address.upper()
        data = adv.service_data.get(BTHOME_UUID)
        signature = (adv.rssi, tuple(sorted(adv.service_data.items())),
                     tuple(sorted(adv.manufacturer_data.items())))
        prev = self._seen.get(mac)
        self._seen[mac] = (signature, device)
        self._seen.move_to_end(mac)
        if len(self._seen) > self._cfg.max_tracked_devices:
            self._seen.popitem(last=False)
        if prev is not None and prev[0] == signature:
            return  # a property change that is not an advertisement (e.g. Connected)
        self.stats.reports += 1
        self.stats.last_report_monotonic = self._clock.monotonic()
        if data is None:
            return
        self.stats.bthome_reports += 1
        self._bthome[mac] = None
        self._bthome.move_to_end(mac)
        if len(self._bthome) > self._cfg.max_tracked_devices:
            self._bthome.popitem(last=False)
        try:
            self._on_advert(mac, bytes(data), int(adv.rssi))
        except Exception:  # a consumer bug must not stop the scanner (bleak calls us from its D-Bus reader)
            self.stats.callback_errors += 1
            log.exception("on_advert failed for %s", mac)


class BlueZAdapterPower:
    """Switches the adapter off and on through BlueZ (``org.bluez.Adapter1.Powered``),
    as ``bluetoothctl power off/on`` does. Used by the watchdog after a hang."""

    def __init__(self, config: BleConfig) -> None:
        self._cfg = config
        self.cycles = 0

    async def _async_set(self, bus: MessageBus, value: bool) -> None:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path=self._cfg.adapter_path,
                interface="org.freedesktop.DBus.Properties",
                member="Set",
                signature="ssv",
                body=["org.bluez.Adapter1", "Powered", Variant("b", value)],
            )
        )
        if reply.message_type == MessageType.ERROR:
            detail = reply.body[0] if reply.body else ""
            raise BleError("power", f"{reply.error_name}: {detail}", address=self._cfg.adapter,
                           dbus_error=reply.error_name or "")

    async def async_power_cycle(self, off_s: float = 2.0) -> None:
        """Powered=False, wait ``off_s``, Powered=True. Raises BleError/BleTimeout."""
        self.cycles += 1
        bus = MessageBus(bus_type=BusType.SYSTEM)
        try:
            await asyncio.wait_for(bus.connect(), self._cfg.call_timeout_s)
            await asyncio.wait_for(self._async_set(bus, False), self._cfg.call_timeout_s)
            await asyncio.sleep(off_s)
            await asyncio.wait_for(self._async_set(bus, True), self._cfg.call_timeout_s)
        except _BLE_ERRORS as exc:
            raise _translate("power", exc, self._cfg.adapter) from exc
        finally:
            bus.disconnect()
