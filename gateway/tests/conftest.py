"""Fixtures shared by the gateway tests (the repository's conftest.py adds the real peers:
``mosquitto``, ``mosquitto_factory``, ``pg_dsn``, ``micropython_bin``).

Plain helpers are in ``gateway/tests/_kit.py``; the test kit (fake clock, stimuli,
waiting, platform simulator, emulator) in ``gateway/testing``.
"""
from __future__ import annotations

import pytest

from gateway.testing.clock import FakeClock
from gateway.tests._kit import FakeJournal, FakeSink, OfflineGateway
from gateway.tests.fakebluez.fixtures import system_bus  # noqa: F401  (fixture: a private D-Bus with fake BlueZ)


@pytest.fixture
def clock() -> FakeClock:
    """A clock that stands still until the test moves it (``advance``/``set``)."""
    return FakeClock()


@pytest.fixture
def journal() -> FakeJournal:
    """An in-memory journal (events, state, gateway counter)."""
    return FakeJournal()


@pytest.fixture
def sink() -> FakeSink:
    """An event sink that records submissions."""
    return FakeSink()


@pytest.fixture
def offline_gateway(tmp_path):
    """Factory: ``offline_gateway(gateway_id="gw-test", **config_sections)`` → an
    :class:`~gateway.tests._kit.OfflineGateway` (real bootstrap, fake clock and route), closed
    after the test."""
    made: list[OfflineGateway] = []

    def make(gateway_id: str = "gw-test", **sections) -> OfflineGateway:
        gw = OfflineGateway(tmp_path, gateway_id, **sections)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()
