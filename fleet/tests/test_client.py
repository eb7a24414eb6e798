"""The command line's client of the fleet service, without a server process: problem details ->
exit codes, server URLs, which session file applies, the in-process transport (streams, no
socket), the session issued for FLEET_USER (revoked), and the rule that commands reach data only
through the service except the few that stay local (docs/fleet.md lists them)."""
from __future__ import annotations

import ast
import re
import threading
import time
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.client import ServerUnavailable, error_from_problem, normalise_server, session_matches
from fleet.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_795_400_000.0


def problem(status: int, code: str, detail: str = "what is wrong", fix: str = "how to fix it", field=None):
    return {"type": f"urn:fleet:problem:{code}", "title": code, "status": status, "detail": detail,
            "instance": "/api/v1/x", "errors": [{"field": field, "problem": detail, "fix": fix}]}


@pytest.mark.parametrize("status,code,exit_code", [
    (400, "malformed_json", 2), (401, "not_authenticated", 5), (403, "access_denied", 5), (404, "not_found", 3),
    (409, "conflict", 4), (409, "invalid_transition", 2), (409, "integrity", 2), (409, "commissioning_failed", 6),
    (413, "too_large", 2), (422, "invalid", 2), (422, "config_invalid", 2), (429, "login_throttled", 5),
    (503, "busy", 75), (503, "unavailable", 69), (503, "mqtt_error", 69), (500, "internal", 1),
    (418, "teapot", 2), (502, "bad_gateway", 1),
])
def test_a_problem_detail_becomes_the_documented_exit_code(status, code, exit_code):
    exc = error_from_problem(status, problem(status, code), method="GET", path="/api/v1/x")
    assert exc.exit_code == exit_code
    assert exc.details["status"] == status
    if status < 500:
        assert exc.message.startswith("what is wrong") and exc.code == code
    else:
        assert "tell the fleet operators" in exc.message or exc.exit_code in (69, 75)


def test_the_message_is_the_servers_with_the_fix_and_every_field():
    exc = error_from_problem(422, problem(422, "invalid", "role: is not one of the allowed values",
                                          "use one of technician, support", field="role"), method="POST", path="/p")
    assert exc.message == "role: is not one of the allowed values; use one of technician, support"
    assert exc.details["field"] == "role"
    two = problem(422, "invalid")
    two["errors"] = [{"field": "a", "problem": "is required", "fix": "give a"},
                     {"field": "b", "problem": "must be a number", "fix": "write 2"}]
    exc = error_from_problem(422, two, method="POST", path="/p")
    assert exc.message == "a: is required; b: must be a number" and len(exc.details["errors"]) == 2
    # a 404 of the router itself: another version of fleet, not a missing row
    exc = error_from_problem(404, {"type": "urn:fleet:problem:not_found", "title": "no such endpoint", "status": 404,
                                   "detail": "no such endpoint"}, method="GET", path="/api/v1/new")
    assert exc.exit_code == 1 and "another version of fleet" in exc.message
    # not JSON at all (a proxy's HTML page)
    exc = error_from_problem(502, None, method="GET", path="/api/v1/x")
    assert exc.exit_code == 1 and "HTTP 502" in exc.message


@pytest.mark.parametrize("given,expected", [
    ("127.0.0.1:8080", "http://127.0.0.1:8080"), ("https://fleet.example.no/", "https://fleet.example.no"),
    ("HTTP://h:1", "http://h:1"), ("fleet.local", "http://fleet.local")])
def test_server_urls(given, expected):
    assert normalise_server(given) == expected


@pytest.mark.parametrize("bad", ["ftp://x", "http://", ":8080", "https:///x"])
def test_bad_server_urls_name_the_fix(bad):
    with pytest.raises(ValidationError, match="is not a fleet server URL; write e.g."):
        normalise_server(bad)


def test_a_session_belongs_to_one_server_or_one_database():
    class Cfg:
        server, db_url = "http://a:1", "sqlite:///x.db"

    assert session_matches({"server": "http://a:1", "token": "t"}, Cfg)
    assert not session_matches({"server": "http://b:1", "token": "t"}, Cfg)
    assert not session_matches({"db": "sqlite:///x.db", "token": "t"}, Cfg)
    Cfg.server = None
    assert session_matches({"db": "sqlite:///x.db", "token": "t"}, Cfg)
    assert not session_matches({"server": "http://a:1", "db": "sqlite:///x.db", "token": "t"}, Cfg)
    assert not session_matches({"db": "sqlite:///x.db"}, Cfg) and not session_matches(None, Cfg)


def test_the_in_process_transport_streams_the_answer_as_it_is_produced():
    """A progress line reaches the caller while the app is still working (a buffered transport
    would wait for the end; here the app waits for the caller, so buffering would hang)."""
    import httpx

    from fleet.client._asgi import InProcessTransport

    seen_first = threading.Event()
    events: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                events.append(msg["type"])
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        import anyio

        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first " + body + b"\n", "more_body": True})
        await anyio.to_thread.run_sync(seen_first.wait, 10)
        await send({"type": "http.response.body", "body": b"second\n", "more_body": False})

    transport = InProcessTransport(app).start()
    try:
        with httpx.Client(transport=transport, base_url="http://fleet.local") as client:
            with client.stream("POST", "/x", content=b"hello") as r:
                lines = r.iter_lines()
                assert next(lines) == "first hello"
                seen_first.set()
                assert next(lines) == "second"
    finally:
        transport.close()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("client") / "fleet.db"
    assert main(["--db", f"sqlite:///{path}", "--no-progress", "demo-data", "--homes", "2"], env={},
                clock=lambda: NOW) == 0
    return f"sqlite:///{path}"


def test_fleet_user_gets_a_session_for_one_command_only(demo_db, tmp_path, capsys):
    from fleet.store import open_store

    def sessions() -> int:
        with open_store(demo_db, migrate=False) as s, s.transaction(write=False) as tx:
            return int(tx.scalar("SELECT count(*) FROM auth_session"))

    before = sessions()
    env = {"FLEET_DB": demo_db, "FLEET_USER": "tech.osl", "FLEET_CONFIG_DIR": str(tmp_path)}
    assert main(["--json", "install", "list"], env=env, clock=lambda: NOW) == 0
    assert sessions() == before                                 # issued by the in-process app, revoked at the end
    assert main(["whoami"], env={**env, "FLEET_USER": "nobody"}, clock=lambda: NOW) == 5
    assert "no active user 'nobody'" in capsys.readouterr().err
    assert sessions() == before


def test_an_unreachable_server_is_not_a_traceback(capsys, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"FLEET_CONFIG_DIR": str(tmp_path), "FLEET_TOKEN": "flt_x"}
    rc = main(["--server", f"127.0.0.1:{port}", "kit", "list"], env=env)
    err = capsys.readouterr().err
    assert rc == ServerUnavailable.exit_code == 69
    assert err.startswith(f"fleet: error: cannot reach the fleet server at http://127.0.0.1:{port}") and "\n" == err[-1]


# Commands that reach the database themselves (workers and set-up), by module and function;
# every other command goes through the service (fleet.commands._common.api).
LOCAL = {("db", "cmd_migrate"), ("db", "cmd_info"), ("demo", "cmd_demo"), ("serve", "cmd_serve"),
         ("user", "cmd_bootstrap"), ("rollout", "cmd_run"), ("monitor", "cmd_ingest")}
DIRECT = re.compile(r"^(session|open_store|.*Service|.*Repo|Sql\w+|sql_transactions|migrate|build|pending|applied)$")


def _direct_uses(path: Path) -> set[tuple[str, str]]:
    """(function, what) for each call in ``path`` that opens the store or builds a service/adapter."""
    tree = ast.parse(path.read_text())
    found: set[tuple[str, str]] = set()
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "__getattr__"):
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            f = call.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if DIRECT.match(name):
                found.add((fn.name, name))
        for imp in (n for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)):
            if imp.module and (imp.module.endswith("_sql") or imp.module.endswith("_queries")
                               or imp.module.split(".")[-1] == "store"):
                found.add((fn.name, f"import {imp.module}"))
    return found


def test_commands_reach_data_only_through_the_service_except_the_local_ones():
    offenders = {}
    for path in sorted((ROOT / "fleet" / "commands").glob("*.py")):
        if path.name.startswith("_"):
            continue
        uses = {(fn, what) for fn, what in _direct_uses(path) if (path.stem, fn) not in LOCAL}
        if uses:
            offenders[path.stem] = sorted(uses)
    assert not offenders, (
        f"{offenders}: these commands open the database or build services themselves. Call the service through "
        "api(cfg) (fleet.client; add the endpoint the command needs), or, if the command is inherently local (a "
        "worker, set-up, hardware next to the machine), add it to LOCAL here and to docs/fleet.md \"Commands that "
        "stay local\" with the reason")


def test_docs_list_the_commands_that_stay_local():
    text = (ROOT / "docs" / "fleet.md").read_text()
    section = text.split("### Commands that stay local", 1)[1].split("\n## ", 1)[0]
    for cmd in ("fleet db migrate", "fleet db info", "fleet demo-data", "fleet serve", "fleet user bootstrap",
                "fleet rollout run", "fleet monitor ingest", "fleet install commission"):
        assert f"`{cmd}" in section, cmd


from fleet.tests.test_mqtt_tls import SECRET, broker  # noqa: E402,F401 - the reference TLS broker (module fixture)


def test_on_one_machine_the_service_pushes_through_the_commands_tls_broker_options(broker, tmp_path, capsys):  # noqa: F811
    """`fleet config push` with --broker mqtts://... and a password file: the in-process service pushes
    with exactly these settings (mutual TLS, the fleet's broker user); a refused login is exit 69."""
    import json as _json

    from fleet.mqtt import MqttClient, parse_url
    from fleet.store import open_store

    _, tls, pki, _ = broker
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with open_store(url) as s, s.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
        tx.execute("INSERT INTO app_user (name, role, all_municipalities, active, created_at) VALUES (?, ?, ?, ?, ?)",
                   ("admin", "admin", True, True, NOW))
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\n")
    env = {"FLEET_DB": url, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    assert main(["config", "assign", "gw-aaa", "--municipality", "0301"], env=env) == 0
    opts = ["--broker", f"mqtts://fleet@localhost:{tls}", "--broker-ca", str(pki.ca), "--broker-cert",
            str(pki.client_cert), "--broker-key", str(pki.client_key)]
    got: list[bytes] = []
    gw = MqttClient.from_settings(parse_url(f"mqtts://gw-aaa@localhost:{tls}", password="gw-a-pw", ca_file=pki.ca,
                                            cert_file=pki.client_cert, key_file=pki.client_key),
                                  client_id="gw-aaa-cfg").connect()
    try:
        gw.subscribe("wt/v1/gw/gw-aaa/config", lambda t, p: got.append(p))
        capsys.readouterr()
        rc = main(["--json", "--no-progress", "config", "push", "gw-aaa", *opts, "--broker-password-file", str(pw)],
                  env=env)
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert _json.loads(out.out)[0]["version"] == 1
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got and b"gw-aaa" in got[-1], got              # the signed, retained configuration, over TLS
    finally:
        gw.close()
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    rc = main(["--no-progress", "config", "push", "gw-aaa", *opts, "--broker-password-file", str(bad)], env=env)
    err = capsys.readouterr().err
    assert rc == 69 and "refused" in err and "wrong" not in err and SECRET not in err
