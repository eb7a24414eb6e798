"""The command line against a real `fleet serve` process on PostgreSQL (``--server`` / FLEET_SERVER):
login, reads with --json, writes, refusals across municipalities as messages with their exit
codes, an expired token, a progress bar fed by the server, local-only commands refused without a
database, and an unreachable server. The command line is given a database URL that cannot be
opened: every command here works without it, so none of them opened the database."""
from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
import uuid

import pytest

from fleet.cli import main
from fleet.tests.test_api_postgres import _free_port, _prepare, _serve, _stop, _wait_ready
from fleet.tests.test_api_support import PASSWORD

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
NO_DB = "postgresql://nobody@127.0.0.1:1/none"          # nothing listens there: opening it would fail


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A `fleet serve` (1 worker) as its own database role over a demo set; its URL."""
    psycopg = pytest.importorskip("psycopg")
    from psycopg.conninfo import make_conninfo

    from fleet.tests.conftest import FakeClock

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
    roles = {"owner": owner, "service": service, "schema": schema,
             **{f"{r}_dsn": make_conninfo(base, user=n, options=f"-csearch_path={schema}")
                for r, n in (("owner", owner), ("service", service))}}
    tmp = tmp_path_factory.mktemp("client-server")
    proc = None
    try:
        _prepare(roles, FakeClock(time.time()))
        proc, url = _serve(roles["service_dsn"], 1, tmp)
        _wait_ready(url, proc)
        yield url
    finally:
        if proc is not None:
            _stop(proc)
            log = (tmp / "serve-1.log").read_text()
            assert "Traceback" not in log, log[-3000:]
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.execute(f"DROP OWNED BY {owner}, {service}")
        admin.execute(f"DROP ROLE {owner}")
        admin.execute(f"DROP ROLE {service}")
        admin.close()


def run(capsys, argv, env, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(["--no-progress", *argv], env=env, clock=time.time)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def env_for(server, tmp_path):
    """``env_for(user)``: FLEET_SERVER, a database URL nobody can open, and a fresh config dir."""
    def make(name: str) -> dict[str, str]:
        return {"FLEET_SERVER": server, "FLEET_DB": NO_DB, "FLEET_CONFIG_DIR": str(tmp_path / name)}
    return make


def login(capsys, monkeypatch, env, user: str) -> None:
    rc, out, err = run(capsys, ["login", user, "--password-stdin"], env, stdin=PASSWORD + "\n",
                       monkeypatch=monkeypatch)
    assert rc == 0 and f"logged in as {user}" in out, err


def test_login_reads_and_writes_through_the_server(capsys, monkeypatch, env_for, server):
    env = env_for("tech")
    rc, _, err = run(capsys, ["whoami"], env)
    assert rc == 5 and f"not logged in on {server}" in err
    rc, _, err = run(capsys, ["login", "tech.osl", "--password-stdin"], env, stdin="wrong\n", monkeypatch=monkeypatch)
    assert rc == 5 and "wrong user name or password" in err
    login(capsys, monkeypatch, env, "tech.osl")
    session = os.path.join(env["FLEET_CONFIG_DIR"], "session.json")
    assert stat.S_IMODE(os.stat(session).st_mode) == 0o600
    saved = json.load(open(session))
    assert saved["server"] == server and "db" not in saved and saved["token"].startswith("flt_")

    rc, out, _ = run(capsys, ["--json", "whoami"], env)
    assert rc == 0 and json.loads(out) == {"user": "tech.osl", "role": "technician", "municipalities": ["0301"]}
    rc, out, _ = run(capsys, ["--json", "install", "list"], env)          # a read: only the user's municipality
    rows = json.loads(out)
    assert rc == 0 and rows and {r["municipality"] for r in rows} == {"0301"}
    rc, out, _ = run(capsys, ["install", "show", rows[0]["code"]], env)   # the table, Oslo times
    assert rc == 0 and "devices:" in out and ("CET" in out or "CEST" in out)

    # a write, and what it left: through the service, with the duplicate explained
    rc, out, err = run(capsys, ["item", "receive", "SN-CLI-00001", "--model", "WT-BTN-2", "--hw-id", "a4c1c1100001",
                                "--to", "WH-OSL"], env)
    assert rc == 0 and "received SN-CLI-00001 at WH-OSL" in out, err
    rc, out, _ = run(capsys, ["--json", "device", "show", "SN-CLI-00001"], env)
    shown = json.loads(out)
    assert rc == 0 and (shown["state"], shown["location"]) == ("in_stock", "WH-OSL")
    assert shown["history"][0]["actor"] == "tech.osl"
    rc, _, err = run(capsys, ["item", "receive", "SN-CLI-00001", "--model", "WT-BTN-2", "--to", "WH-OSL"], env)
    assert rc == 2 and "serial number SN-CLI-00001 is already registered: SN-CLI-00001, WT-BTN-2, in_stock" in err
    rc, _, err = run(capsys, ["stock", "levels", "--location", "WH-OSLO"], env)     # filters checked by the server's data
    assert rc == 2 and "did you mean WH-OSL" in err

    # a delivery note of 25,000 rows: the server reports progress while it writes (every 20,000 rows)
    csv = tmp = os.path.join(env["FLEET_CONFIG_DIR"], "dn.csv")
    with open(tmp, "w") as f:
        f.write("serial,model,hw_id\n" + "".join(f"SN-DN-{i:06d},WT-BTN-2,a4c2{i:08x}\n" for i in range(25_000)))
    rc = main(["item", "import", csv, "--to", "WH-OSL", "--ref", "DN-CLI-1"], env=env, clock=time.time)
    out = capsys.readouterr()
    assert rc == 0 and "imported 25000 items into WH-OSL" in out.out, out.err
    assert "(80%)" in out.err and "(100%)" in out.err                     # 20,000 then 25,000 rows

    rc, out, _ = run(capsys, ["logout"], env)
    assert rc == 0 and not os.path.exists(session)
    rc, _, err = run(capsys, ["whoami"], env)
    assert rc == 5


def test_refusals_across_municipalities_are_messages_with_exit_codes(capsys, monkeypatch, env_for):
    admin = env_for("admin")
    login(capsys, monkeypatch, admin, "admin")
    rc, out, _ = run(capsys, ["--json", "install", "list", "-m", "4601"], admin)
    bergen = json.loads(out)[0]["code"]
    rc, _, err = run(capsys, ["user", "add", "admin.bgo", "--role", "admin", "-m", "4601", "--password-stdin"], admin,
                     stdin=PASSWORD + "-bgo\n", monkeypatch=monkeypatch)
    assert rc == 0, err

    tech = env_for("tech-osl")
    login(capsys, monkeypatch, tech, "tech.osl")
    # a Bergen installation, read by an Oslo technician: the server does not reveal that it exists
    rc, out, err = run(capsys, ["install", "show", bergen], tech)
    assert (rc, out) == (3, "") and "not found in your municipalities" in err and "Traceback" not in err
    rc, _, err = run(capsys, ["--json", "install", "show", bergen], tech)
    assert rc == 3 and json.loads(err)["error"] == "not_found" and json.loads(err)["status"] == 404
    # a role without the permission: 403 -> exit 5, the server's sentence
    rc, _, err = run(capsys, ["audit"], tech)
    assert rc == 5 and "tech.osl (technician) may not audit.read; ask an admin for a role that allows it" in err

    # an admin of Bergen only: fleet-wide changes are refused (403), Oslo's rows are not found (404)
    bgo = env_for("admin-bgo")
    rc, _, err = run(capsys, ["login", "admin.bgo", "--password-stdin"], bgo, stdin=PASSWORD + "-bgo\n",
                     monkeypatch=monkeypatch)
    assert rc == 0, err
    rc, _, err = run(capsys, ["privacy", "purge"], bgo)
    assert rc == 5 and "scoped to municipalities; this needs a user for all municipalities" in err
    rc, _, err = run(capsys, ["user", "scope", "tech.osl", "--add", "4601"], bgo)
    assert rc == 3 and "no user 'tech.osl' in your municipalities" in err
    rc, _, err = run(capsys, ["install", "list", "-m", "Oslo"], bgo)          # a filter outside the scope
    assert rc == 5 and "admin.bgo is not scoped to municipality 0301; ask an admin to add it" in err
    rc, out, _ = run(capsys, ["--json", "install", "list"], bgo)
    assert rc == 0 and {r["municipality"] for r in json.loads(out)} == {"4601"}


def test_an_expired_token_is_refused_with_the_way_out(capsys, monkeypatch, env_for):
    admin = env_for("admin-tok")
    login(capsys, monkeypatch, admin, "admin")
    t0 = time.time()
    rc, token, err = run(capsys, ["user", "token", "tech.osl", "--hours", str(6 / 3600)], admin)   # 6 seconds
    assert rc == 0 and "acting as tech.osl" in err
    scripted = {**env_for("script"), "FLEET_TOKEN": token.strip()}
    rc, out, _ = run(capsys, ["--json", "whoami"], scripted)
    assert rc == 0 and json.loads(out)["user"] == "tech.osl"
    time.sleep(max(0.0, t0 + 6.5 - time.time()))
    rc, out, err = run(capsys, ["--json", "whoami"], scripted)
    assert (rc, out) == (5, "") and json.loads(err)["message"].startswith("API token expired")
    rc, _, err = run(capsys, ["whoami"], {**scripted, "FLEET_TOKEN": "flt_not-a-token"})
    assert rc == 5 and "session token not recognised; run `fleet login USER` again" in err
    rc, _, err = run(capsys, ["whoami"], {**env_for("user"), "FLEET_USER": "admin"})       # only on one machine
    assert rc == 5 and "FLEET_USER is not accepted by a fleet server" in err


def test_local_commands_need_the_database_not_the_server(capsys, env_for):
    env = {k: v for k, v in env_for("local").items() if k != "FLEET_DB"}
    for argv, what in ((["rollout", "run", "r1"], "fleet rollout run"), (["monitor", "ingest"], "fleet monitor ingest"),
                       (["db", "migrate"], "fleet db migrate"), (["demo-data"], "fleet demo-data"),
                       (["user", "bootstrap", "root"], "fleet user bootstrap")):
        rc, out, err = run(capsys, argv, env)
        assert (rc, out) == (2, "") and f"{what}" in err and "--db / FLEET_DB" in err, (argv, err)


def test_an_unreachable_server_is_exit_69_with_where_it_was_looked_for(capsys, tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"              # nothing listens
    env = {"FLEET_SERVER": url, "FLEET_DB": NO_DB, "FLEET_CONFIG_DIR": str(tmp_path), "FLEET_TOKEN": "flt_x"}
    t0 = time.monotonic()
    rc, out, err = run(capsys, ["offline"], env)
    assert (rc, out) == (69, "") and f"cannot reach the fleet server at {url}" in err and "--server" in err
    assert time.monotonic() - t0 < 10
    rc, _, err = run(capsys, ["--json", "offline"], env)
    assert rc == 69 and json.loads(err)["error"] == "server_unavailable"
    rc, _, err = run(capsys, ["--server", "ftp://x", "offline"], env)
    assert rc == 2 and "is not a fleet server URL" in err


def test_fleet_api_bench_smoke(tmp_path):
    """bench/fleet_api.py still runs (tiny: 3,000 items, 1 s phases) and ends with its JSON line; the
    figures themselves come from a full run (docs/fleet.md, "Scale")."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "bench" / "fleet_api.py"), "--items", "3000", "--gateways", "300",
                        "--clients", "10", "--duration", "1", "--warmup", "0.5"],
                       capture_output=True, text=True, timeout=300, cwd=root)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"show_p99_ms", "offline_list_p99_ms", "rps_1_worker", "rps_2_workers", "errors"} <= set(out)
    assert out["errors"] == 0 and out["rps_1_worker"] > 0 and out["rps_2_workers"] > 0
    assert "CPU % of one core: server" in r.stderr and "load generator" in r.stderr
