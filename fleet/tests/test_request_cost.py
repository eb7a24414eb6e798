"""What one request costs, and what the savings must not cost (bench/fleet_api.py, docs/fleet.md).

* a device show (``GET /api/v1/items/{key}``) is two SELECTs outside a transaction once the
  token is verified: the item with everything it names in one read, then its history;
* a verified token is remembered by the worker for at most ``auth_cache_s`` seconds and
  never past its own expiry; a revocation through the worker takes effect at once, one made
  elsewhere (another worker, the CLI on the database) within ``auth_cache_s``; a lookup that
  raced a revocation is not remembered; only SHA-256 keys are kept;
* ``Store.reading()`` runs plain SELECTs (no BEGIN/COMMIT on PostgreSQL) and refuses
  anything else on both engines.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Any

import pytest

from fleet.access import AccessService, Actor, Role
from fleet.access._sql import SqlAccessRepo
from fleet.api._authcache import AuthCache, token_key
from fleet.clock import FixedClock
from fleet.errors import StoreError, ValidationError
from fleet.tests.conftest import FakeClock
from fleet.tests.factories import hexid
from fleet.tests.test_api_support import PASSWORD, app_for, auth, build_world, client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- the cache on its own ----------------------------------------------------------------------
def test_the_cache_forgets_after_its_time_and_never_outlives_the_token():
    clock = FakeClock(100.0)
    cache = AuthCache(5.0, clock.time)
    a, b = Actor("a", Role.SUPPORT), Actor("b", Role.ADMIN)
    cache.put(token_key("tok-a"), a, None, cache.generation)              # an API token without expiry
    cache.put(token_key("tok-b"), b, 102.0, cache.generation)             # a session ending at 102
    assert cache.get(token_key("tok-a")) is a and cache.get(token_key("tok-b")) is b
    clock.advance(2.0)
    assert cache.get(token_key("tok-b")) is None                          # its session ended: not 5 s
    assert cache.get(token_key("tok-a")) is a
    clock.advance(3.0)
    assert cache.get(token_key("tok-a")) is None and len(cache) == 0      # checked again after 5 s


def test_a_check_that_raced_a_revocation_is_not_kept_and_the_keys_are_hashes():
    clock = FakeClock(0.0)
    cache = AuthCache(5.0, clock.time)
    before = cache.generation                   # a request starts checking the token ...
    cache.clear()                               # ... while another revokes (a committed write)
    cache.put(token_key("tok"), Actor("a", Role.SUPPORT), None, before)
    assert cache.get(token_key("tok")) is None
    cache.put(token_key("tok"), Actor("a", Role.SUPPORT), None, cache.generation)
    assert list(cache._entries) == [hashlib.sha256(b"tok").digest()]    # never the token itself
    off = AuthCache(0.0, clock.time)
    off.put(token_key("tok"), Actor("a", Role.SUPPORT), None, off.generation)
    assert not off.enabled and off.get(token_key("tok")) is None


def test_the_cache_is_bounded():
    cache = AuthCache(5.0, FakeClock(0.0).time, max_entries=3)
    for i in range(5):
        cache.put(token_key(f"t{i}"), Actor(f"u{i}", Role.SUPPORT), None, cache.generation)
    assert len(cache) == 3 and cache.get(token_key("t0")) is None and cache.get(token_key("t4")) is not None


def test_the_cache_time_is_bounded_in_the_settings():
    from fleet.api import settings_from_env

    assert settings_from_env({"FLEET_DB": "sqlite:///x.db"}).auth_cache_s == 5.0
    assert settings_from_env({"FLEET_DB": "sqlite:///x.db", "FLEET_AUTH_CACHE_S": "0"}).auth_cache_s == 0
    for bad in ("61", "-1", "nan"):
        with pytest.raises(ValidationError, match="FLEET_AUTH_CACHE_S"):
            settings_from_env({"FLEET_DB": "sqlite:///x.db", "FLEET_AUTH_CACHE_S": bad})


# -- the cache in the service ------------------------------------------------------------------
@pytest.fixture
def world(tmp_path, clock):
    return build_world(f"sqlite:///{tmp_path / 'fleet.db'}", tmp_path, clock)


def login(api, user: str) -> dict[str, str]:
    r = api.post("/api/v1/login", json={"user": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return auth(r.json()["token"])


@contextmanager
def access(world):
    """The database seen by another worker or the CLI (not through this app)."""
    from fleet.store import open_store

    with open_store(world.url, migrate=False) as store, store.transaction() as tx:
        yield AccessService(SqlAccessRepo(tx), FixedClock(world.clock.time()))


def test_a_revocation_elsewhere_takes_effect_within_the_cache_time(world):
    api = client(app_for(world))
    assert api.app.state.fleet.settings.auth_cache_s == 5.0
    sam = login(api, "sam")
    tech = login(api, "tech.osl")
    assert api.get("/api/v1/me", headers=sam).status_code == 200             # verified and remembered
    assert api.get("/api/v1/me", headers=tech).status_code == 200
    with access(world) as acc:                                               # another worker's logout ...
        acc.revoke(sam["Authorization"].split()[1])
        acc.set_active(Actor("root", Role.ADMIN), "tech.osl", False)         # ... and a deactivation
    world.clock.advance(4.9)
    assert api.get("/api/v1/me", headers=sam).status_code == 200             # still within the 5 s
    world.clock.advance(0.1)
    r = api.get("/api/v1/me", headers=sam)
    assert r.status_code == 401 and "not recognised" in r.json()["detail"]
    assert api.get("/api/v1/me", headers=tech).status_code == 401


def test_a_revocation_through_this_worker_takes_effect_at_once(world):
    api = client(app_for(world))
    admin, sam, tech = login(api, "admin"), login(api, "sam"), login(api, "tech.osl")
    tok = api.post("/api/v1/tokens", headers=admin, json={"user": "sam", "name": "sync"}).json()
    svc = auth(tok["token"])
    for h in (sam, tech, svc):
        assert api.get("/api/v1/me", headers=h).status_code == 200
    assert api.post("/api/v1/logout", headers=sam).status_code == 204
    assert api.get("/api/v1/me", headers=sam).status_code == 401
    assert api.delete(f"/api/v1/tokens/{tok['id']}", headers=admin).status_code == 200
    assert "revoked" in api.get("/api/v1/me", headers=svc).json()["detail"]
    assert api.put("/api/v1/users/tech.osl/password", headers=admin,
                   json={"new_password": "reset by admin 1"}).status_code == 204
    assert api.get("/api/v1/me", headers=tech).status_code == 401


def test_a_session_ends_on_time_although_it_is_cached(world):
    api = client(app_for(world))
    short = auth(world.token("sam", ttl_s=2))
    assert api.get("/api/v1/me", headers=short).status_code == 200
    world.clock.advance(2)
    r = api.get("/api/v1/me", headers=short)
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_without_the_cache_every_request_checks_the_database(world):
    api = client(app_for(world, auth_cache_s=0))
    sam = login(api, "sam")
    assert api.get("/api/v1/me", headers=sam).status_code == 200
    with access(world) as acc:
        acc.revoke(sam["Authorization"].split()[1])
    assert api.get("/api/v1/me", headers=sam).status_code == 401


# -- statements per request --------------------------------------------------------------------
class _CountingTx:
    def __init__(self, tx: Any, log: list[tuple[str, bool]], in_tx: bool) -> None:
        self._tx, self._log, self._in_tx = tx, log, in_tx

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._tx, name)
        if name in ("execute", "executemany", "query", "one", "scalar", "iter", "bulk_insert", "script"):
            def counted(sql: str, *a: Any, **kw: Any) -> Any:
                self._log.append((sql, self._in_tx))
                return attr(sql, *a, **kw)
            return counted
        return attr


class _CountingStore:
    """A Store that logs every statement and whether it ran in a transaction."""

    def __init__(self, store: Any, log: list[tuple[str, bool]]) -> None:
        self._store, self._log = store, log
        self.url, self.dialect = store.url, store.dialect

    @contextmanager
    def transaction(self, *, write: bool = True):
        with self._store.transaction(write=write) as tx:
            yield _CountingTx(tx, self._log, True)

    @contextmanager
    def reading(self):
        with self._store.reading() as tx:
            yield _CountingTx(tx, self._log, False)

    def close(self) -> None:
        self._store.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_device_show_is_two_selects_outside_a_transaction(engine, request, tmp_path, clock):
    from fleet.api import ApiSettings, create_app
    from fleet.store import open_store

    url = f"sqlite:///{tmp_path / 'fleet.db'}" if engine == "sqlite" else request.getfixturevalue("pg_dsn")
    world = build_world(url, tmp_path, clock)
    log: list[tuple[str, bool]] = []
    app = create_app(ApiSettings(db_url=url, kek_file=str(world.kek_file)), clock=clock,
                     store=lambda: _CountingStore(open_store(url, migrate=False), log))
    api = client(app)
    sam = login(api, "sam")
    items = api.get("/api/v1/items", headers=sam, params={"limit": 500}).json()["items"]
    gateway = next(i for i in items if i["hw_id"] and i["hw_id"].startswith("gw-"))
    sensor = next(i for i in items if i["hw_id"] and not i["hw_id"].startswith("gw-"))
    for key in (sensor["serial"], gateway["hw_id"], sensor["hw_id"].upper()):
        log.clear()
        r = api.get(f"/api/v1/items/{key}", headers=sam)
        assert r.status_code == 200 and r.json()["history"]
        assert len(log) == 2 and not any(in_tx for _, in_tx in log), log      # token remembered: no auth query
        assert all(sql.lstrip().upper().startswith("SELECT") for sql, _ in log)
    log.clear()
    assert api.get("/api/v1/items/NO-SUCH-ITEM", headers=sam).status_code == 404
    assert len(log) == 1
    clock.advance(5)                                                          # the cache time is over
    log.clear()
    assert api.get(f"/api/v1/items/{sensor['serial']}", headers=sam).status_code == 200
    auth_reads = [sql for sql, in_tx in log if in_tx]
    assert auth_reads and len(log) - len(auth_reads) == 2                     # checked again, then the show


# -- Store.reading -----------------------------------------------------------------------------
def test_reading_runs_selects_only(store):
    with store.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
    with store.reading() as tx:
        assert tx.scalar("SELECT name FROM municipality WHERE id = ?", ("0301",)) == "Oslo"
        if store.dialect.is_postgresql:                       # autocommit: no BEGIN/COMMIT round trips
            from psycopg.pq import TransactionStatus

            assert store._conn.info.transaction_status == TransactionStatus.IDLE
        for write in (lambda: tx.execute("INSERT INTO municipality (id, name) VALUES ('4601', 'Bergen')"),
                      lambda: tx.execute("  update municipality SET name = 'x'"),
                      lambda: tx.one("SELECT * FROM municipality WHERE id = ? FOR UPDATE", ("0301",)),
                      lambda: tx.executemany("DELETE FROM municipality WHERE id = ?", [("0301",)]),
                      lambda: tx.bulk_insert("municipality", ["id", "name"], [("5001", "Trondheim")]),
                      lambda: tx.script("DELETE FROM municipality")):
            with pytest.raises(StoreError, match="read-only"):
                write()
    with store.reading() as tx:
        assert tx.query("SELECT id, name FROM municipality") == [{"id": "0301", "name": "Oslo"}]
    with store.transaction() as tx:                           # inside a transaction it joins it
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("4601", "Bergen"))
        with store.reading() as rd:
            assert rd.scalar("SELECT count(*) FROM municipality") == 2


# -- device show, one read: the same answer on every backend ------------------------------------
def test_device_show_prefers_the_serial_and_adds_a_gateways_status(backend, admin):
    from fleet.inventory import NewItem
    from fleet.tests.factories import seed

    with backend.tx() as s:
        seed(s.inventory, admin)
        s.inventory.receive_items(admin, [NewItem(hexid(9), "WT-BTN-2", hexid(8)),     # a serial like a device id
                                          NewItem("BTN-9", "WT-BTN-2", hexid(9)),
                                          NewItem("GW-9", "WT-GW-1", "gw-0000000009")], "WH-OSLO")
    status = {"last_seen": 1.0e9, "online": False, "version": "0.2.0", "config_version": 7}
    for gid in ("gw-0000000009", hexid(8)):                   # the second: a sensor's id, ignored
        if backend.fake is not None:
            backend.fake.gateways[gid] = {"gateway_id": gid, **status}
        else:
            with backend.store.transaction() as tx:
                tx.execute("INSERT INTO gateway_status (gateway_id, last_seen, online, version, config_version)"
                           " VALUES (?, ?, ?, ?, ?)", (gid, *status.values()))
    with backend.tx(write=False) as s:
        assert s.inventory.device_show(admin, hexid(9))["serial"] == hexid(9)          # the serial wins
        assert s.inventory.device_show(admin, f" {hexid(9).upper()} ")["serial"] == "BTN-9"
        btn = s.inventory.device_show(admin, hexid(8))
        gw = s.inventory.device_show(admin, "gw-0000000009")
    assert "online" not in btn and btn["location"] == "WH-OSLO" and btn["municipality"] == "0301"
    assert btn["kit"] is None and btn["installation"] is None and btn["role"] == "button"
    assert (gw["serial"], gw["online"], gw["last_seen"], gw["sw_version"], gw["config_version"]) == \
        ("GW-9", False, 1.0e9, "0.2.0", 7)
    assert gw["model_name"] and gw["radio"] and gw["firmware_family"] and len(gw["history"]) == 1
