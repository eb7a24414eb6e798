"""Authentication on the service: login back-off per user name and per address, the same answer
and the same work for unknown and known names, password change / reset / deactivation, scoped
and revocable API tokens, expired and revoked tokens, and no passwordless first admin."""
from __future__ import annotations

import statistics
import time

import pytest

from fleet.access import Actor, LoginPolicy, Role
from fleet.tests.test_api_support import A, B, PASSWORD, app_for, auth, client, world  # noqa: F401 - fixture


def login(api, user, password, **kw):
    return api.post("/api/v1/login", json={"user": user, "password": password}, **kw)


def test_unknown_and_known_user_names_get_the_same_answer_and_take_the_same_time(world):  # noqa: F811
    """No user enumeration: the body is identical and scrypt runs in both cases (no lockout here)."""
    api = client(app_for(world, login_policy=LoginPolicy(user_limit=10_000, address_limit=10_000)))
    known = login(api, "tech.osl", "wrong password")
    unknown = login(api, "no.such.user", "wrong password")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == {**unknown.json(), "instance": known.json()["instance"]} and \
        known.json()["detail"] == "wrong user name or password"
    times: dict[str, list[float]] = {"known": [], "unknown": [], "nopassword": []}
    with world_store(world) as acc:      # a user without a password (created before passwords were required)
        acc.create_user(Actor("setup", Role.ADMIN), "nopw.user", "technician", municipalities=[A])
    for _ in range(15):                                     # interleaved, so load on the box hits both alike
        for name, user in (("known", "tech.osl"), ("unknown", "no.such.user"), ("nopassword", "nopw.user")):
            t = time.perf_counter()
            assert login(api, user, "wrong password").status_code == 401
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("login medians (ms):", {k: round(v * 1000, 1) for k, v in med.items()})
    assert med["unknown"] > 0.5 * med["known"] and med["nopassword"] > 0.5 * med["known"]   # scrypt ran
    assert abs(med["unknown"] - med["known"]) < 0.25 * med["known"]
    assert abs(med["nopassword"] - med["known"]) < 0.25 * med["known"]


def world_store(world):  # noqa: F811
    from contextlib import contextmanager

    from fleet.access import AccessService
    from fleet.access._sql import SqlAccessRepo
    from fleet.clock import FixedClock
    from fleet.store import open_store

    @contextmanager
    def cm():
        with open_store(world.url, migrate=False) as store, store.transaction() as tx:
            yield AccessService(SqlAccessRepo(tx), FixedClock(world.clock.time()))
    return cm()


def test_repeated_failures_lock_the_user_name_with_growing_back_off(world):  # noqa: F811
    api = client(app_for(world))
    for _ in range(5):
        assert login(api, "tech.osl", "guess").status_code == 401
    r = login(api, "tech.osl", PASSWORD)                     # even the right password waits
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 30
    assert r.json()["type"] == "urn:fleet:problem:login_throttled"
    for _ in range(5):                                        # an unknown name is locked exactly alike
        login(api, "ghost.user", "guess")
    ghost = login(api, "ghost.user", "guess")
    assert ghost.status_code == 429 and ghost.json()["detail"] == r.json()["detail"]
    assert login(api, "tech.bgo", PASSWORD).status_code == 200      # other users are not affected
    world.clock.advance(31)
    assert login(api, "tech.osl", "guess again").status_code == 401
    r = login(api, "tech.osl", PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 60   # doubled
    world.clock.advance(61)
    assert login(api, "tech.osl", PASSWORD).status_code == 200         # success clears the user's count
    assert login(api, "tech.osl", "typo").status_code == 401
    metrics = api.get("/metrics").text
    assert 'fleet_login_failures_total{reason="throttled"}' in metrics


def test_one_address_spraying_many_names_is_locked(world):  # noqa: F811
    api = client(app_for(world, login_policy=LoginPolicy(address_limit=8)))
    for i in range(8):
        assert login(api, f"user{i}", "guess").status_code == 401
    assert login(api, "admin", PASSWORD).status_code == 429            # this address waits
    other = client(app_for(world, login_policy=LoginPolicy(address_limit=8), trusted_proxies=("testclient",)))
    r = login(other, "admin", PASSWORD, headers={"X-Forwarded-For": "192.0.2.7"})
    assert r.status_code == 200                                        # another client behind the proxy


def test_password_change_reset_and_deactivation(world):  # noqa: F811
    api = client(app_for(world))
    tech = auth(login(api, "tech.osl", PASSWORD).json()["token"])
    admin = auth(login(api, "admin", PASSWORD).json()["token"])
    r = api.put("/api/v1/me/password", headers=tech, json={"current_password": "nope", "new_password": "x" * 12})
    assert r.status_code == 403
    r = api.put("/api/v1/me/password", headers=tech, json={"current_password": PASSWORD, "new_password": "short"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "new_password"
    r = api.put("/api/v1/me/password", headers=tech, json={"current_password": PASSWORD,
                                                           "new_password": "long enough phrase"})
    assert r.status_code == 204
    assert login(api, "tech.osl", "long enough phrase").status_code == 200
    assert api.put("/api/v1/users/tech.osl/password", headers=admin,
                   json={"new_password": "reset by admin 1"}).status_code == 204
    assert api.get("/api/v1/me", headers=tech).status_code == 401           # the reset ended the sessions
    tech = auth(login(api, "tech.osl", "reset by admin 1").json()["token"])
    r = api.put("/api/v1/users/tech.osl/active", headers=admin, json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert api.get("/api/v1/me", headers=tech).status_code == 401
    assert login(api, "tech.osl", "reset by admin 1").status_code == 401
    assert api.put("/api/v1/users/admin/active", headers=admin, json={"active": False}).status_code == 422
    actions = [a["action"] for a in api.get("/api/v1/audit", headers=admin,
                                            params={"entity": "user", "entity_id": "tech.osl"}).json()["items"]]
    assert {"user.password_change", "user.password_reset", "user.deactivate"} <= set(actions)


def test_scoped_api_tokens_narrow_the_user_and_can_be_revoked(world):  # noqa: F811
    api = client(app_for(world))
    admin = auth(login(api, "admin", PASSWORD).json()["token"])
    r = api.post("/api/v1/tokens", headers=admin, json={"user": "sam", "name": "alarm-centre sync",
                                                        "permissions": ["monitor.read"], "municipalities": [A]})
    assert r.status_code == 201
    tok, tid = r.json()["token"], r.json()["id"]
    assert tok.startswith("flk_")
    svc = auth(tok)
    me = api.get("/api/v1/me", headers=svc).json()
    assert me["permissions"] == ["monitor.read"] and me["municipalities"] == [A]
    off = api.get("/api/v1/monitoring/offline-gateways", headers=svc)
    assert off.status_code == 200 and {g["municipality"] for g in off.json()["items"]} <= {A}
    assert api.get("/api/v1/items", headers=svc).status_code == 403                 # sam may, the token may not
    assert api.get("/api/v1/monitoring/offline-gateways", headers=svc,
                   params={"municipality": B}).status_code in (403, 404)
    listed = api.get("/api/v1/tokens", headers=admin).json()["items"]
    assert [t["id"] for t in listed] == [tid] and "token" not in listed[0]            # never shown again
    r = api.post("/api/v1/tokens", headers=admin, json={"user": "tech.osl", "name": "x", "permissions": ["user.admin"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "permissions"    # beyond the role
    r = api.post("/api/v1/tokens", headers=admin, json={"user": "tech.osl", "name": "x", "municipalities": [B]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "municipalities"  # beyond the scope
    assert api.delete(f"/api/v1/tokens/{tid}", headers=admin).json()["revoked_at"] is not None
    r = api.get("/api/v1/me", headers=svc)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_expired_api_token_and_garbage_tokens_are_401(world):  # noqa: F811
    api = client(app_for(world))
    admin = auth(login(api, "admin", PASSWORD).json()["token"])
    tok = api.post("/api/v1/tokens", headers=admin, json={"user": "sam", "name": "short",
                                                          "expires_at": world.clock.time() + 60}).json()["token"]
    assert api.get("/api/v1/me", headers=auth(tok)).status_code == 200
    world.clock.advance(61)
    assert "expired" in api.get("/api/v1/me", headers=auth(tok)).json()["detail"]
    for bad in ("flt_" + "A" * 43, "flk_" + "B" * 43, "x" * 500, "' OR 1=1 --"):
        r = api.get("/api/v1/me", headers=auth(bad))
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert api.get("/api/v1/me", headers={"Authorization": "Basic YWRtaW46ZGVtbw=="}).status_code == 401


def test_bootstrap_refuses_a_passwordless_admin(tmp_path, capsys, monkeypatch):
    """`fleet user bootstrap` without a terminal used to create an admin nobody could log in as."""
    import io
    import sys

    from fleet.cli import main

    env = {"FLEET_DB": f"sqlite:///{tmp_path / 'b.db'}", "FLEET_CONFIG_DIR": str(tmp_path)}
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))                 # not a terminal, nothing piped
    assert main(["user", "bootstrap", "root"], env=env) == 2
    assert "needs a password" in capsys.readouterr().err
    pw = tmp_path / "pw"
    pw.write_text("first admin passphrase\n")
    assert main(["user", "bootstrap", "root", "--password-file", str(pw)], env=env) == 0
    from fleet.api import ApiSettings, create_app

    api = client(create_app(ApiSettings(db_url=env["FLEET_DB"])))
    assert login(api, "root", "first admin passphrase").status_code == 200
