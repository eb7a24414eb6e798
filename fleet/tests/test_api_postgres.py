"""The service on real PostgreSQL: the audit log is append-only by database privilege (migrations
as an owner role, the service as a role without UPDATE/DELETE/TRUNCATE on it and without DDL),
and a real `fleet serve` process on a free loopback port, with one and two workers."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fleet.tests.test_api_support import PASSWORD

pytestmark = pytest.mark.postgres
DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet-service.md"


def grants_sql(schema: str, service: str) -> str:
    block = re.search(r"```sql fleet-service-grants\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/fleet-service.md lost its grants block"
    return block.group(1).format(schema=schema, service=service)


@pytest.fixture
def roles():
    """An owner role and a service role (unique names) and a schema owned by the owner; dropped after."""
    psycopg = pytest.importorskip("psycopg")
    from psycopg.conninfo import make_conninfo

    base = os.environ.get("WT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {base}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {base}")
    sfx = uuid.uuid4().hex[:10]
    owner, service, schema = f"fleet_owner_{sfx}", f"fleet_service_{sfx}", f"fleet_{sfx}"
    admin.execute(f"CREATE ROLE {owner} LOGIN")
    admin.execute(f"CREATE ROLE {service} LOGIN")
    admin.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {owner}")
    dsn = {r: make_conninfo(base, user=r, options=f"-csearch_path={schema}") for r in (owner, service)}
    try:
        yield {"owner": owner, "service": service, "schema": schema, "owner_dsn": dsn[owner],
               "service_dsn": dsn[service]}
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.execute(f"DROP OWNED BY {owner}, {service}")
        admin.execute(f"DROP ROLE {owner}")
        admin.execute(f"DROP ROLE {service}")
        admin.close()


def _prepare(roles, clock):
    """Migrations as the owner, the documented grants, then the demo data written by the service role."""
    import psycopg

    from fleet.demo import build
    from fleet.store import open_store

    open_store(roles["owner_dsn"]).close()                              # migrations run as the owner
    with psycopg.connect(roles["owner_dsn"], autocommit=True) as c:
        c.execute(grants_sql(roles["schema"], roles["service"]))
    with open_store(roles["service_dsn"], migrate=False) as store:      # the service writes the data
        build(store, at=clock.time() - 3600, homes=2)


def test_audit_log_is_append_only_by_privilege(roles, clock):
    import psycopg

    from fleet.api import ApiSettings, create_app
    from fleet.tests.test_api_support import auth, client

    _prepare(roles, clock)
    api = client(create_app(ApiSettings(db_url=roles["service_dsn"]), clock=clock))
    assert api.get("/readyz").json()["status"] == "ready"
    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    assert api.get("/api/v1/installations/I-000001", headers=admin).status_code == 200     # audited read
    r = api.post("/api/v1/items", headers=admin, json={"serial": "SN-PG-1", "model": "WT-BTN-2", "location": "WH-OSL"})
    assert r.status_code == 201                                                              # the service works
    with psycopg.connect(roles["service_dsn"], autocommit=True) as svc:
        n = svc.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        assert n > 0
        for sql in ("UPDATE audit_log SET actor = 'nobody'", "DELETE FROM audit_log", "TRUNCATE audit_log",
                    "TRUNCATE item_movement", "DROP TABLE audit_log", "ALTER TABLE audit_log DISABLE TRIGGER ALL",
                    "CREATE TABLE scratch (x int)", "DELETE FROM schema_migrations"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                svc.execute(sql)
        assert svc.execute("SELECT count(*) FROM audit_log").fetchone()[0] == n
        actions = [r[0] for r in svc.execute("SELECT action FROM audit_log WHERE actor = 'admin' ORDER BY id")]
        assert actions[-3:] == ["auth.login", "installation.read", "item.receive"]
    with psycopg.connect(roles["owner_dsn"], autocommit=True) as own:       # even the owner: triggers refuse
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            own.execute("DELETE FROM audit_log")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(dsn: str, workers: int, tmp_path, **env_extra: str):
    port = _free_port()
    env = {**os.environ, "FLEET_DB": dsn, **env_extra}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "serve", "--listen", f"127.0.0.1:{port}",
                             "--workers", str(workers), "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"serve-{workers}.log", "w"),
                            start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(url: str, proc, timeout_s: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "fleet serve exited"
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("fleet serve did not become ready")


def _stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_real_fleet_serve_process_on_postgresql(roles, clock, tmp_path, workers):
    import httpx

    _prepare(roles, clock)
    proc, url = _serve(roles["service_dsn"], workers, tmp_path, FLEET_AUTH_CACHE_S="1")
    try:
        _wait_ready(url, proc)
        with httpx.Client(base_url=url, timeout=10) as c:
            tok = c.post("/api/v1/login", json={"user": "tech.osl", "password": PASSWORD}).json()["token"]
            h = {"Authorization": f"Bearer {tok}"}
            for _ in range(20):                       # spread over the workers; any worker knows the token
                r = c.get("/api/v1/installations", headers=h)
                assert r.status_code == 200 and {i["municipality"] for i in r.json()["items"]} == {"0301"}
            bad = c.post("/api/v1/items", headers={**h, "content-type": "application/json"}, content=b'{"serial": ')
            assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
            huge = c.post("/api/v1/items", headers={**h, "content-type": "application/json"}, content=b" " * (2 << 20))
            assert huge.status_code == 413
            foreign = c.get("/api/v1/installations", headers=h, params={"municipality": "4601"})
            assert foreign.status_code == 404
            assert c.get("/healthz").json() == {"status": "ok"}
            metrics = c.get("/metrics").text
            assert 'route="/api/v1/installations"' in metrics
            c.post("/api/v1/logout", headers=h)
            assert c.get("/api/v1/me", headers=h).status_code == 401     # this connection's worker: at once
        time.sleep(1.1)                                                  # every worker within FLEET_AUTH_CACHE_S
        for _ in range(2 * workers):
            with httpx.Client(base_url=url, timeout=10) as fresh:        # a new connection: any worker
                assert fresh.get("/api/v1/me", headers=h).status_code == 401
    finally:
        _stop(proc)
    log = (tmp_path / f"serve-{workers}.log").read_text()
    assert "Traceback" not in log, log[-2000:]
