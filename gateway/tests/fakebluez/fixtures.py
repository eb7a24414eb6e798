"""pytest fixtures: ``system_bus`` — a private dbus-daemon exported as the system bus.

Import into a test module with ``from gateway.tests.fakebluez.fixtures import system_bus``.
A missing dbus-daemon FAILS the test with the install command (it never skips): the BLE
transport has no other test against bleak's real BlueZ code path.
"""
from __future__ import annotations

import pytest

from ._daemon import DbusDaemonMissing, PrivateBus


@pytest.fixture
def system_bus(monkeypatch):
    try:
        bus = PrivateBus().start()
    except DbusDaemonMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    # bleak authenticates with the uid of the process unless told otherwise
    monkeypatch.delenv("BLEAK_DBUS_AUTH_UID", raising=False)
    yield bus.address
    bus.stop()
