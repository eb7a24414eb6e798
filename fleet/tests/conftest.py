"""Fleet test fixtures: a store on both backends, a fake clock, an admin actor."""
from __future__ import annotations

import pytest

from fleet.access import Actor, Role


class FakeClock:
    """Settable clock; call it like time.time."""

    def __init__(self, t: float = 1_795_400_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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


@pytest.fixture
def admin() -> Actor:
    return Actor("root", Role.ADMIN, None)

