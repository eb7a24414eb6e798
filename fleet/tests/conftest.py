"""Fleet test fixtures: one fake clock, a store on both backends, an admin actor, and the
services wired over a store transaction (SQL adapters) or over the in-memory fakes."""
from __future__ import annotations

import pytest

from fleet.access import Actor, Role

T0 = 1_795_400_000.0


class FakeClock:
    """The fleet tests' one fake clock: a :class:`fleet.clock.Clock` (``.time()``) that can also be
    called like ``time.time`` (the CLI's ``clock=``). Time moves only when a test moves it."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_clock():
    """More clocks, e.g. ``make_clock(0.0)`` for a test that counts from zero."""
    return FakeClock


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'fleet.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("pg_dsn")


@pytest.fixture
def store(store_url):
    from fleet.store import open_store

    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(sqlite_url):
    from fleet.store import open_store

    s = open_store(sqlite_url)
    yield s
    s.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request, tmp_path, clock):
    """The services over each backend: the in-memory fakes, SQLite, PostgreSQL (fleet.tests.factories.World)."""
    from fleet.store import open_store
    from fleet.tests.factories import World

    if request.param == "memory":
        yield World(clock)
        return
    url = f"sqlite:///{tmp_path / 'world.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_dsn")
    s = open_store(url)
    yield World(clock, s)
    s.close()


@pytest.fixture
def fake(clock):
    """The services over the in-memory fakes only."""
    from fleet.tests.factories import World

    return World(clock)


@pytest.fixture
def admin() -> Actor:
    return Actor("root", Role.ADMIN, None)


@pytest.fixture(autouse=True, scope="session")
def fleet_control_key(tmp_path_factory):
    """The fleet's control key for every fleet test (``FLEET_CONTROL_KEY_FILE``): pushes and
    commands are signed (fleet/control); a test that needs another sets its own."""
    import os

    from fleet.control import ENV_KEY_FILE, generate_key_files

    if os.environ.get(ENV_KEY_FILE):
        yield os.environ[ENV_KEY_FILE]
        return
    priv, _pub = generate_key_files(tmp_path_factory.mktemp("control") / "fleet-control.key")
    os.environ[ENV_KEY_FILE] = str(priv)
    try:
        yield str(priv)
    finally:
        os.environ.pop(ENV_KEY_FILE, None)
