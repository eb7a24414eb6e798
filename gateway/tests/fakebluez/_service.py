# NB: no ``from __future__ import annotations`` here: dbus-fast reads the D-Bus
# signatures from the ``Annotated`` types at class creation.
"""A fake BlueZ (``org.bluez``) served with dbus-fast on a private bus.

It implements the part of the BlueZ D-Bus API that bleak's BlueZ backend uses
(bleak/backends/bluezdbus/manager.py, scanner.py, client.py):

- ``org.freedesktop.DBus.ObjectManager.GetManagedObjects`` on ``/`` and the
  ``InterfacesAdded`` / ``InterfacesRemoved`` signals (dbus-fast emits them on export),
- ``org.bluez.Adapter1`` at ``/org/bluez/hci0``: ``SetDiscoveryFilter``,
  ``StartDiscovery``, ``StopDiscovery``, ``RemoveDevice``, properties ``Powered``
  (writable, as ``bluetoothctl power off`` does), ``Discovering``, ``Roles``…,
- ``org.bluez.AdvertisementMonitorManager1.RegisterMonitor`` for passive scanning,
- ``org.bluez.Device1``: ``Connect``, ``Disconnect``, properties ``Address``, ``RSSI``,
  ``ServiceData``, ``ManufacturerData``, ``Connected``, ``ServicesResolved``…; every
  advertisement is a ``PropertiesChanged`` signal, a new device an ``InterfacesAdded``,
- ``org.bluez.GattService1`` / ``GattCharacteristic1`` below a connected device:
  ``ReadValue``, ``WriteValue``, ``StartNotify``, ``StopNotify``, ``AcquireNotify``;
  a notification or indication is a ``PropertiesChanged`` of ``Value`` (or a packet
  on the AcquireNotify socket).

Behaviour follows bluetoothd where bleak depends on it: a second ``StartDiscovery``
from the same client is ``org.bluez.Error.InProgress``; ``StopDiscovery`` without a
session is ``org.bluez.Error.Failed``; with the adapter powered off ``StartDiscovery``
is ``org.bluez.Error.NotReady`` and powering off ends discovery and connections.

Faults for the hang tests: ``adapter.wedged = True`` models the controller that keeps
``Discovering`` true but reports no more advertisements (cleared by a power cycle
when ``wedge_cleared_by_power_cycle``); ``adapter.hang_start_discovery = True`` makes
``StartDiscovery`` never answer (until the adapter is powered off; powering it on
again clears both faults unless ``wedge_cleared_by_power_cycle`` is False).
"""
import asyncio
import os
import socket
from dataclasses import dataclass, field
from typing import Callable

from typing import Annotated

from dbus_fast import BusType, DBusError, PropertyAccess, Variant
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

_StrList = Annotated[list[str], DBusSignature("as")]
_PathList = Annotated[list[str], DBusSignature("ao")]
_ManufacturerDict = Annotated[dict[int, Variant], DBusSignature("a{qv}")]
_FdMtu = Annotated[list[int], DBusSignature("hq")]

ADAPTER_PATH = "/org/bluez/hci0"
BLUEZ = "org.bluez"
ERR_IN_PROGRESS = "org.bluez.Error.InProgress"
ERR_FAILED = "org.bluez.Error.Failed"
ERR_NOT_READY = "org.bluez.Error.NotReady"
ERR_NOT_PERMITTED = "org.bluez.Error.NotPermitted"
ERR_NOT_SUPPORTED = "org.bluez.Error.NotSupported"
ERR_DOES_NOT_EXIST = "org.bluez.Error.DoesNotExist"
ERR_NOT_CONNECTED = "org.bluez.Error.NotConnected"


def full_uuid(uuid: str) -> str:
    """'2a35' or '0x2A35' → '00002a35-0000-1000-8000-00805f9b34fb'; full UUIDs pass."""
    u = uuid.lower().removeprefix("0x")
    if len(u) == 4:
        return f"0000{u}-0000-1000-8000-00805f9b34fb"
    return u


def device_path(address: str) -> str:
    return f"{ADAPTER_PATH}/dev_{address.upper().replace(':', '_')}"


class FakeAdapter(ServiceInterface):
    def __init__(self, bluez: "FakeBluez", address: str) -> None:
        super().__init__("org.bluez.Adapter1")
        self._bluez = bluez
        self._address = address
        self._powered = True
        self._discovering = False
        self.sessions = 0                  # discovery sessions of the (single) client
        self.filters: list[dict] = []      # every SetDiscoveryFilter argument, unpacked
        self.start_calls = 0
        self.stop_calls = 0
        self.power_log: list[bool] = []    # every Powered value written by a client
        self.wedged = False
        self.wedge_cleared_by_power_cycle = True
        self.hang_start_discovery = False
        self.plugged = True
        self._hung: list[asyncio.Future] = []

    # -- state used by the rest of the fake
    @property
    def powered(self) -> bool:
        return self._powered

    @property
    def discovering(self) -> bool:
        return self._discovering

    @property
    def receiving(self) -> bool:
        """True when an advertisement on air would reach the clients."""
        return self.plugged and self._powered and self._discovering and not self.wedged

    def _set_discovering(self, value: bool) -> None:
        if value != self._discovering:
            self._discovering = value
            self.emit_properties_changed({"Discovering": value})

    # -- D-Bus methods
    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict):
        self.filters.append({k: v.value for k, v in properties.items()})

    @dbus_method()
    async def StartDiscovery(self):
        self.start_calls += 1
        if not self._powered:
            raise DBusError(ERR_NOT_READY, "Resource Not Ready")
        if self.hang_start_discovery:
            fut = asyncio.get_running_loop().create_future()
            self._hung.append(fut)
            await fut  # answered with NotReady when the adapter is powered off
            raise DBusError(ERR_NOT_READY, "Resource Not Ready")
        if self.sessions:
            raise DBusError(ERR_IN_PROGRESS, "Operation already in progress")
        self.sessions = 1
        self._set_discovering(True)

    @dbus_method()
    def StopDiscovery(self):
        self.stop_calls += 1
        if not self._powered:
            raise DBusError(ERR_NOT_READY, "Resource Not Ready")
        if not self.sessions:
            raise DBusError(ERR_FAILED, "No discovery started")
        self.sessions = 0
        self._set_discovering(False)

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath):
        if not self._bluez._remove_device_path(device):
            raise DBusError(ERR_DOES_NOT_EXIST, "Does Not Exist")

    @dbus_method()
    def GetDiscoveryFilters(self) -> _StrList:
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"]

    # -- properties
    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self._address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return "fake-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return "fake-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Class(self) -> DBusUInt32:
        return 0

    @dbus_property()
    def Powered(self) -> DBusBool:
        return self._powered

    @Powered.setter  # type: ignore[no-redef]
    def Powered(self, value: DBusBool):
        self.power_log.append(value)
        if value == self._powered:
            return
        self._powered = value
        if not value:
            self.sessions = 0
            for fut in self._hung:
                if not fut.done():
                    fut.set_result(None)
            self._hung.clear()
            self._bluez._on_power_off()
            self._set_discovering(False)
        elif self.wedge_cleared_by_power_cycle:
            self.wedged = False
            self.hang_start_discovery = False
        self.emit_properties_changed({"Powered": value})

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Pairable(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> DBusBool:
        return self._discovering

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> _StrList:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> _StrList:
        return ["central", "peripheral"]


class FakeMonitorManager(ServiceInterface):
    """org.bluez.AdvertisementMonitorManager1 (passive scanning, BlueZ ≥ 5.56 experimental)."""

    def __init__(self, bluez: "FakeBluez") -> None:
        super().__init__("org.bluez.AdvertisementMonitorManager1")
        self._bluez = bluez
        self.monitors: list[str] = []

    @dbus_method()
    def RegisterMonitor(self, application: DBusObjectPath):
        self.monitors.append(application)
        self._bluez.adapter._set_discovering(True)

    @dbus_method()
    def UnregisterMonitor(self, application: DBusObjectPath):
        if application not in self.monitors:
            raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
        self.monitors.remove(application)
        if not self.monitors and not self._bluez.adapter.sessions:
            self._bluez.adapter._set_discovering(False)

    @dbus_property(access=PropertyAccess.READ)
    def SupportedMonitorTypes(self) -> _StrList:
        return ["or_patterns"]

    @dbus_property(access=PropertyAccess.READ)
    def SupportedFeatures(self) -> _StrList:
        return []


@dataclass
class FakeCharacteristic:
    """Device-side description of one characteristic of a :class:`FakeDevice`."""

    uuid: str
    flags: list[str]
    value: bytes = b""
    # called with (data, write type "request"/"command") when a client writes
    on_write: Callable[[bytes, str], None] | None = None
    iface: "_CharIface | None" = field(default=None, repr=False)


@dataclass
class FakeService:
    uuid: str
    characteristics: list[FakeCharacteristic]


class _ServiceIface(ServiceInterface):
    def __init__(self, uuid: str, device: str) -> None:
        super().__init__("org.bluez.GattService1")
        self._uuid = uuid
        self._device = device

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> DBusObjectPath:
        return self._device

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> _PathList:
        return []


class _CharIface(ServiceInterface):
    def __init__(self, char: FakeCharacteristic, service_path: str, mtu: int, device: "FakeDevice") -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.char = char
        self.device = device
        self._service = service_path
        self._mtu = mtu
        self.notifying = False
        self.writes: list[tuple[bytes, str]] = []
        self._acquired: socket.socket | None = None

    def deliver(self, data: bytes) -> bool:
        """The peripheral notifies/indicates ``data``; False if nobody subscribed."""
        self.char.value = bytes(data)
        if self._acquired is not None:
            try:
                self._acquired.send(bytes(data))
                return True
            except OSError:
                self._acquired = None
                return False
        if not self.notifying:
            return False
        self.emit_properties_changed({"Value": bytes(data)})
        return True

    def close(self) -> None:
        if self._acquired is not None:
            self._acquired.close()
            self._acquired = None

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        if "read" not in self.char.flags:
            raise DBusError(ERR_NOT_PERMITTED, "Read not permitted")
        return self.char.value

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict):
        kind = options["type"].value if "type" in options else "request"
        allowed = {"request": "write", "command": "write-without-response"}.get(kind)
        if allowed not in self.char.flags:
            raise DBusError(ERR_NOT_PERMITTED, "Write not permitted")
        if len(value) > self._mtu - 3:
            raise DBusError("org.bluez.Error.InvalidValueLength", "Invalid Length")
        self.writes.append((bytes(value), kind))
        if self.char.on_write is not None:
            self.char.on_write(bytes(value), kind)

    @dbus_method()
    def StartNotify(self):
        if not {"notify", "indicate"} & set(self.char.flags):
            raise DBusError(ERR_NOT_SUPPORTED, "Operation is not supported")
        if self.device.requires_pairing and not self.device.paired:
            raise DBusError(ERR_NOT_PERMITTED, "Not paired")
        if not self.notifying:
            self.notifying = True
            self.emit_properties_changed({"Notifying": True})

    @dbus_method()
    def StopNotify(self):
        if self.notifying:
            self.notifying = False
            self.emit_properties_changed({"Notifying": False})

    @dbus_method()
    def AcquireNotify(self, options: DBusDict) -> _FdMtu:
        if "notify" not in self.char.flags:
            raise DBusError(ERR_NOT_SUPPORTED, "Operation is not supported")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.close()
        self._acquired = ours
        fd = os.dup(theirs.fileno())
        theirs.close()
        return [fd, self._mtu]

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return full_uuid(self.char.uuid)

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return self._service

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self.char.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> DBusBool:
        return self.notifying

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> _StrList:
        return list(self.char.flags)

    @dbus_property(access=PropertyAccess.READ)
    def NotifyAcquired(self) -> DBusBool:
        return self._acquired is not None

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> DBusUInt16:
        return self._mtu


class FakeDevice(ServiceInterface):
    """A remote LE device known to the fake adapter (org.bluez.Device1)."""

    def __init__(
        self,
        bluez: "FakeBluez",
        address: str,
        *,
        name: str | None = None,
        services: list[FakeService] | None = None,
        mtu: int = 23,
    ) -> None:
        super().__init__("org.bluez.Device1")
        self._bluez = bluez
        self.address = address.upper()
        self.path = device_path(self.address)
        self.local_name = name
        self.services = services or []
        self.mtu = mtu
        self.rssi = -127
        self.service_data: dict[str, bytes] = {}
        self.manufacturer_data: dict[int, bytes] = {}
        self.connected = False
        self.services_resolved = False
        self.exported = False
        self.connect_calls = 0
        self.connect_error: tuple[str, str] | None = None
        self.paired = False
        self.trusted = False
        self.requires_pairing = False   # StartNotify refused until paired (encrypted CCCD)
        self._gatt_paths: list[str] = []
        self._chars: dict[str, _CharIface] = {}

    # -- test-side API (the peripheral's behaviour)
    def advertise(
        self,
        *,
        service_data: dict[str, bytes] | None = None,
        manufacturer_data: dict[int, bytes] | None = None,
        rssi: int = -60,
    ) -> bool:
        """One advertisement on air. Returns whether the adapter reported it.

        Like bluetoothd, the first report of a device is ``InterfacesAdded`` and later
        ones are ``PropertiesChanged`` with RSSI and the changed advertising data.
        """
        if not self._bluez.adapter.receiving and not self._bluez.monitor_active:
            return False
        if self._bluez.adapter.wedged:
            return False
        changed: dict[str, object] = {"RSSI": rssi}
        self.rssi = rssi
        if service_data is not None:
            self.service_data = {full_uuid(k): bytes(v) for k, v in service_data.items()}
            changed["ServiceData"] = self._service_data_variants()
        if manufacturer_data is not None:
            self.manufacturer_data = {int(k): bytes(v) for k, v in manufacturer_data.items()}
            changed["ManufacturerData"] = self._manufacturer_variants()
        if not self.exported:
            self._bluez._bus.export(self.path, self)
            self.exported = True
        else:
            self.emit_properties_changed(changed)
        self._bluez.adverts_reported += 1
        return True

    def notify(self, char_uuid: str, data: bytes) -> bool:
        """The connected peripheral notifies/indicates ``data`` on ``char_uuid``."""
        iface = self._chars.get(full_uuid(char_uuid))
        if iface is None or not self.connected:
            return False
        return iface.deliver(data)

    def char(self, char_uuid: str) -> _CharIface | None:
        return self._chars.get(full_uuid(char_uuid))

    def drop_connection(self) -> None:
        """The link is lost (peripheral out of range or reset)."""
        self._disconnect()

    # -- internals
    def _service_data_variants(self) -> dict:
        return {k: Variant("ay", v) for k, v in self.service_data.items()}

    def _manufacturer_variants(self) -> dict:
        return {k: Variant("ay", v) for k, v in self.manufacturer_data.items()}

    def _export_gatt(self) -> None:
        handle = 0x0010
        for svc in self.services:
            spath = f"{self.path}/service{handle:04x}"
            self._bluez._bus.export(spath, _ServiceIface(full_uuid(svc.uuid), self.path))
            self._gatt_paths.append(spath)
            handle += 1
            for ch in svc.characteristics:
                cpath = f"{spath}/char{handle:04x}"
                iface = _CharIface(ch, spath, self.mtu, self)
                ch.iface = iface
                self._bluez._bus.export(cpath, iface)
                self._gatt_paths.append(cpath)
                self._chars[full_uuid(ch.uuid)] = iface
                handle += 2

    def _unexport_gatt(self) -> None:
        for iface in self._chars.values():
            iface.close()
        for path in reversed(self._gatt_paths):
            self._bluez._bus.unexport(path)
        self._gatt_paths.clear()
        self._chars.clear()

    def _disconnect(self) -> None:
        if not self.connected:
            return
        self.connected = False
        self.services_resolved = False
        self.emit_properties_changed({"ServicesResolved": False})
        self._unexport_gatt()
        self.emit_properties_changed({"Connected": False})

    @dbus_method()
    async def Connect(self):
        await self._connect()

    async def _connect(self) -> None:
        self.connect_calls += 1
        if not self._bluez.adapter.powered:
            raise DBusError(ERR_NOT_READY, "Resource Not Ready")
        if self.connect_error is not None:
            raise DBusError(*self.connect_error)
        if self.connected:
            return
        self.connected = True
        self.emit_properties_changed({"Connected": True})
        await asyncio.sleep(0)
        self._export_gatt()
        self.services_resolved = True
        self.emit_properties_changed({"ServicesResolved": True})

    @dbus_method()
    def Disconnect(self):
        self._disconnect()

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return self.local_name or self.address.replace(":", "-")

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return self.local_name or self.address.replace(":", "-")

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> DBusObjectPath:
        return ADAPTER_PATH

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> DBusBool:
        return self.paired

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> DBusBool:
        return self.paired

    @dbus_property()
    def Trusted(self) -> DBusBool:
        return self.trusted

    @Trusted.setter  # type: ignore[no-redef]
    def Trusted(self, value: DBusBool):
        self.trusted = value
        self.emit_properties_changed({"Trusted": value})

    @dbus_method()
    async def Pair(self):
        """Just Works pairing: connects if needed, then bonds."""
        if self.paired:
            raise DBusError("org.bluez.Error.AlreadyExists", "Already Exists")
        await self._connect()
        self.paired = True
        self.emit_properties_changed({"Paired": True, "Bonded": True})

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> DBusBool:
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> DBusBool:
        return self.services_resolved

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> _StrList:
        return [full_uuid(s.uuid) for s in self.services]

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> DBusInt16:
        return self.rssi

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> DBusDict:
        return self._service_data_variants()

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> _ManufacturerDict:
        return self._manufacturer_variants()


class FakeBluez:
    """``async with FakeBluez(address) as bluez:`` serves org.bluez on ``address``."""

    def __init__(self, bus_address: str, *, adapter_address: str = "00:1A:7D:DA:71:13") -> None:
        self._bus_address = bus_address
        self._bus: MessageBus = None  # type: ignore[assignment]
        self.adapter = FakeAdapter(self, adapter_address)
        self.monitors = FakeMonitorManager(self)
        self.devices: dict[str, FakeDevice] = {}
        self.adverts_reported = 0
        self._beacons: list[asyncio.Task] = []

    @property
    def monitor_active(self) -> bool:
        a = self.adapter
        return bool(self.monitors.monitors) and a.plugged and a.powered and not a.wedged

    async def start(self) -> "FakeBluez":
        self._bus = MessageBus(
            bus_address=self._bus_address, bus_type=BusType.SYSTEM, negotiate_unix_fd=True
        )
        await self._bus.connect()
        self._bus.export(ADAPTER_PATH, self.adapter)
        self._bus.export(ADAPTER_PATH, self.monitors)
        await self._bus.request_name(BLUEZ)
        return self

    async def stop(self) -> None:
        for t in self._beacons:
            t.cancel()
        await asyncio.gather(*self._beacons, return_exceptions=True)
        self._beacons.clear()
        if self._bus is not None:
            self._bus.disconnect()
            await self._bus.wait_for_disconnect()

    async def __aenter__(self) -> "FakeBluez":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def add_device(
        self,
        address: str,
        *,
        name: str | None = None,
        services: list[FakeService] | None = None,
        mtu: int = 23,
        known: bool = False,
    ) -> FakeDevice:
        """A device in range. ``known=True`` exports it at once (a cached/bonded
        device); otherwise it appears (InterfacesAdded) with its first advertisement."""
        dev = FakeDevice(self, address, name=name, services=services, mtu=mtu)
        self.devices[dev.address] = dev
        if known:
            self._bus.export(dev.path, dev)
            dev.exported = True
        return dev

    def start_beacon(
        self,
        device: FakeDevice,
        interval_s: float,
        payload: Callable[[int], dict[str, bytes]],
        *,
        rssi: int = -60,
    ) -> None:
        """Advertise ``payload(n)`` (service data) every ``interval_s`` seconds."""

        async def run() -> None:
            n = 0
            while True:
                device.advertise(service_data=payload(n), rssi=rssi - (n % 3))
                n += 1
                await asyncio.sleep(interval_s)

        self._beacons.append(asyncio.get_running_loop().create_task(run()))

    def unplug_adapter(self) -> None:
        """The USB dongle is pulled: hci0 and its devices leave the bus (InterfacesRemoved)."""
        self.adapter.sessions = 0
        self.adapter._discovering = False
        self.adapter.plugged = False
        for dev in self.devices.values():
            dev._disconnect()
            if dev.exported:
                self._bus.unexport(dev.path)
                dev.exported = False
        self._bus.unexport(ADAPTER_PATH)

    def plug_adapter(self) -> None:
        """The dongle is back: hci0 reappears (InterfacesAdded), powered, not scanning."""
        self.adapter.plugged = True
        self.adapter.wedged = False
        self.adapter.hang_start_discovery = False
        self._bus.export(ADAPTER_PATH, self.adapter)
        self._bus.export(ADAPTER_PATH, self.monitors)

    def _remove_device_path(self, path: str) -> bool:
        for addr, dev in list(self.devices.items()):
            if dev.path == path and dev.exported:
                dev._disconnect()
                self._bus.unexport(dev.path)
                dev.exported = False
                return True
        return False

    def _on_power_off(self) -> None:
        for dev in self.devices.values():
            dev._disconnect()
