"""Shared set-up of the fleet service tests (imported by the test_api_* modules): a demo world on
SQLite, users of every role scoped to the "other" municipality, a KEK file, tokens, a client.

Municipality A (0301, Oslo) holds the data the tests try to reach; every role also exists scoped
to municipality B (4601, Bergen) only.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleet.access import AccessService, Actor, Role
from fleet.access._sql import SqlAccessRepo
from fleet.clock import FixedClock

with warnings.catch_warnings():      # starlette's notice about httpx2 (the sync TestClient still works)
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
T0 = 1_795_400_000.0
A, B = "0301", "4601"
PASSWORD = "demo"
B_USERS = {Role.TECHNICIAN: "tech.bgo", Role.LOGISTICS: "log.bgo", Role.SUPPORT: "support.bgo",
           Role.ADMIN: "admin.bgo", Role.AUDITOR: "auditor.bgo"}
DEVICE_KEY = "00112233445566778899aabbccddeeff"
MQTT_PASSWORD = "mqtt-secret-0301"


@dataclass
class World:
    url: str
    kek_file: Path
    clock: Any
    a: dict[str, Any] = field(default_factory=dict)      # identifiers of municipality A's data

    def token(self, user: str, ttl_s: float = 3600) -> str:
        from fleet.store import open_store

        with open_store(self.url, migrate=False) as store, store.transaction() as tx:
            return AccessService(SqlAccessRepo(tx), FixedClock(self.clock.time())).issue_token(user, ttl_s=ttl_s)[0]


def make_kek(path: Path) -> Path:
    from fleet.config import Keyring

    path.write_text(Keyring.new_line("k1") + "\n")
    path.chmod(0o600)
    return path


def build_world(url: str, tmp: Path, clock) -> World:
    from fleet.demo import build
    from fleet.store import open_store

    w = World(url, make_kek(tmp / "kek"), clock)
    with open_store(url) as store:
        build(store, at=clock.time() - 3600, homes=3)
        with store.transaction() as tx:
            acc = AccessService(SqlAccessRepo(tx), FixedClock(clock.time()))
            root = Actor("setup", Role.ADMIN)
            for role, name in B_USERS.items():
                if acc.repo.get_user(name) is None:
                    acc.create_user(root, name, role, municipalities=[B], password=PASSWORD)
    return w


def client(app):
    return TestClient(app, raise_server_exceptions=False)


def app_for(world: World, **settings: Any):
    from fleet.api import ApiSettings, create_app

    return create_app(ApiSettings(db_url=world.url, kek_file=str(world.kek_file), **settings), clock=world.clock)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(tmp_path, clock) -> World:
    return build_world(f"sqlite:///{tmp_path / 'fleet.db'}", tmp_path, clock)
