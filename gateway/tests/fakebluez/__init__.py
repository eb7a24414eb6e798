"""Fake BlueZ on a private D-Bus daemon, for testing the BLE transport through bleak's
real BlueZ backend (see docs/ble.md, "Testing")."""
from ._daemon import INSTALL_HINT, DbusDaemonFailed, DbusDaemonMissing, PrivateBus, find_dbus_daemon
from ._service import (
    ADAPTER_PATH,
    FakeAdapter,
    FakeBluez,
    FakeCharacteristic,
    FakeDevice,
    FakeService,
    device_path,
    full_uuid,
)

__all__ = [
    "ADAPTER_PATH",
    "INSTALL_HINT",
    "DbusDaemonFailed",
    "DbusDaemonMissing",
    "FakeAdapter",
    "FakeBluez",
    "FakeCharacteristic",
    "FakeDevice",
    "FakeService",
    "PrivateBus",
    "device_path",
    "find_dbus_daemon",
    "full_uuid",
]
