"""The `fleet` CLI end to end: help, every read command's exit code and --json content, errors on
stderr with exit codes, a command module that fails to import, login sessions and tokens, CSV
import, optimistic-concurrency conflicts, privacy purge, the barcode-scanner loop on a real
pseudo-terminal; then configuration, releases, rollouts, monitoring and statistics against a
real Mosquitto with emulated gateways and an ingest worker."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from fleet.cli import main
from fleet.clock import SystemClock
from fleet.monitoring import IngestWorker, SqlMonitorSink
from fleet.mqtt import MqttClient
from fleet.store import open_store
from fleet.upgrades import EmulatedGateway, load_public, serve_mqtt

NOW = 1_795_400_000.0


def run(capsys, argv, env, clock=lambda: NOW):
    rc = main(argv, env=env, clock=clock)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "fleet.db"
    assert main(["--db", f"sqlite:///{path}", "--no-progress", "demo-data"], env={}, clock=lambda: NOW) == 0
    return f"sqlite:///{path}"


@pytest.fixture
def env(demo_db, tmp_path):
    return {"FLEET_DB": demo_db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}


def test_help_teaches_groups_and_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for text in ("command groups:", "Stock and logistics", "examples:", "fleet device show", "exit codes:",
                 "FLEET_DB", "install", "offline", "demo-data"):
        assert text in out


def _rows(*keys, **equal):
    """A non-empty list of rows, each with ``keys`` and the ``equal`` values."""
    def check(doc):
        assert isinstance(doc, list) and doc, doc
        assert all(set(keys) <= set(r) and all(r.get(k) == v for k, v in equal.items()) for r in doc), doc
        return True
    return check


def _doc(**equal):
    """A JSON object with these values."""
    def check(doc):
        assert isinstance(doc, dict) and all(doc.get(k) == v for k, v in equal.items()), doc
        return True
    return check


# Every read command on the demo set: the exit code it must return and what its JSON must hold.
# `stock reorder` exits 1 by design when rows are below their reorder point (docs/fleet.md), and
# the demo set has such rows; every other read succeeds with real content.
READS = [
    (["control-key", "show"], 0, lambda d: len(d["key_id"]) == 16 and "BEGIN PUBLIC KEY" in d["public_pem"]),
    (["stock", "levels"], 0, _rows("in_stock")),
    (["stock", "reorder"], 1, _rows("location", warning="REORDER")),
    (["item", "list", "--state", "in_stock"], 0, _rows("serial", state="in_stock")),
    (["item", "states"], 0, lambda d: d["received"] == ["in_stock", "repair", "written_off"]),
    (["device", "show", "SN-OSL-BTN-00000"], 0, lambda d: d["serial"] == "SN-OSL-BTN-00000" and d["history"]),
    (["kit", "list"], 0, _rows("code", "template")),
    (["kit", "templates"], 0, lambda d: {t["code"] for t in d} == {"safety-alarm", "night-supervision"}),
    (["kit", "show", "K-000001"], 0, lambda d: d["code"] == "K-000001" and len(d["items"]) == 3),
    (["model", "list"], 0, lambda d: len(d) == 7 and {"code", "role"} <= set(d[0])),
    (["location", "list"], 0, lambda d: "WH-OSL" in {r["code"] for r in d}),
    (["location", "municipalities"], 0, lambda d: [r["id"] for r in d] == ["0301", "4601", "5001"]),
    (["install", "list"], 0, _rows("code", "status")),
    (["install", "show", "I-000001"], 0, lambda d: d["code"] == "I-000001" and d["devices"] and d["resident_ref"]),
    (["install", "questions"], 0, lambda d: len(d) == 9 and d[0]["key"] == "alarm_recipient"),
    (["offline"], 0, lambda d: d["total"] >= 1 and len(d["gateways"]) == d["total"]),
    (["user", "list"], 0, lambda d: "admin" in {u["name"] for u in d}),
    (["audit"], 0, _rows("action", "actor")),
    (["whoami"], 0, _doc(user="admin", role="admin", municipalities="all")),
    (["db", "info"], 0, lambda d: d["backend"] == "sqlite" and "0101_core" in d["migrations"]),
]


@pytest.mark.parametrize("argv,code,content", READS, ids=[" ".join(r[0]) for r in READS])
def test_every_read_has_json(capsys, env, argv, code, content):
    rc, out, err = run(capsys, argv + ["--json"], env)
    assert rc == code, err
    doc = json.loads(out)
    assert content(doc), doc
    rc2, out2, _ = run(capsys, ["--json"] + argv, env)  # the global flag works too
    assert rc2 == code
    assert json.loads(out2) == doc or argv[0] in ("audit", "install")


def _subparsers(parser):
    import argparse

    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def _read_commands(parser, path=()):
    """Every command path whose parser offers --json (the read commands)."""
    subs = _subparsers(parser)
    if not subs and any("--json" in a.option_strings for a in parser._actions):
        yield path
    for name, p in subs.items():
        yield from _read_commands(p, path + (name,))


def _command_path(parser, argv):
    path = ()
    for token in argv:
        subs = _subparsers(parser)
        if token not in subs:
            break
        parser, path = subs[token], path + (token,)
    return path


def test_every_read_command_is_checked():
    """Each read command has an exact expectation: in READS here, or in the end-to-end tests below
    (`privacy verify|purge` in the purge test; config/release/rollout/monitor/stats reads against Mosquitto)."""
    from fleet.cli import build_parser

    parser = build_parser()
    offered = set(_read_commands(parser))
    elsewhere = {p for p in offered if p[0] in ("privacy", "config", "release", "rollout", "monitor", "stats")}
    assert {_command_path(parser, argv) for argv, _, _ in READS} == offered - elsewhere


def test_a_failing_read_command_fails_the_read_test(capsys, env):
    """The check above can fail: a read that errors (exit 3) does not pass for a success."""
    rc, out, _ = run(capsys, ["--json", "kit", "show", "K-999999"], env)
    assert (rc, out) == (3, "")


def test_a_command_module_that_fails_to_import_is_an_error(capsys, monkeypatch):
    """A listed command module that cannot be imported stops the CLI with a clear error (it used to
    be skipped silently, so its commands just vanished from `fleet --help`)."""
    import importlib

    import fleet.cli as cli

    real = importlib.import_module

    def broken(name, *a, **kw):
        if name == "fleet.commands.stats":
            raise ImportError("No module named 'numpy'", name="numpy")
        return real(name, *a, **kw)

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    with pytest.raises(cli.CommandImportError, match="fleet.commands.stats failed to import"):
        cli.build_parser()
    assert main(["offline"], env={}) == 1
    assert "fleet: error: command module fleet.commands.stats failed to import" in capsys.readouterr().err
    monkeypatch.setattr(cli.importlib, "import_module", real)
    monkeypatch.setattr(cli, "GROUPS", cli.GROUPS + (("Missing", ("no_such_area",)),))
    with pytest.raises(cli.CommandImportError, match="no_such_area"):
        cli.build_parser()


def test_demo_data_covers_the_domain(capsys, env):
    _, out, _ = run(capsys, ["--json", "item", "list", "--limit", "10000"], env)
    states = {r["state"] for r in json.loads(out)}
    assert {"in_stock", "in_kit", "installed", "returned", "cleaning", "repair", "written_off", "received",
            "in_transit"} <= states
    _, out, _ = run(capsys, ["--json", "offline"], env)
    assert json.loads(out)["total"] >= 1
    _, out, _ = run(capsys, ["--json", "stock", "reorder"], env)
    assert any(r["warning"] == "REORDER" for r in json.loads(out))
    # a completed installation: its fall sensor's test fall confirmed the checklist's placement (wrist)
    _, out, _ = run(capsys, ["--json", "install", "show", "I-000001"], env)
    inst = json.loads(out)
    falls = {d["hw_id"] for d in inst["devices"] if d["role"] == "fall"}
    placements = {(a["placement"], a["placement_expected"]) for a in inst["test_alarms"] if a["device_id"] in falls}
    assert inst["status"] == "active" and placements == {(0, 0)}


def test_device_show_table_has_history(capsys, env):
    rc, out, _ = run(capsys, ["device", "show", "SN-OSL-BTN-00000"], env)
    assert rc == 0 and "history (newest first):" in out and "DN-OSL-2026-001" in out


def test_errors_go_to_stderr_with_exit_codes(capsys, env):
    rc, out, err = run(capsys, ["device", "show", "NOPE-123"], env)
    assert rc == 3 and out == "" and "fleet: error: no item with serial or device id 'NOPE-123'" in err
    rc, _, err = run(capsys, ["--json", "device", "show", "NOPE-123"], env)
    assert rc == 3 and json.loads(err)["error"] == "not_found"
    rc, _, err = run(capsys, ["whoami"], {**env, "FLEET_USER": ""})
    assert rc == 5 and "fleet login" in err
    rc, _, err = run(capsys, ["item", "set-state", "SN-OSL-BTN-00000", "--state", "installed", "--reason", "x"], env)
    assert rc == 2 and "cannot go from" in err


def test_role_limits(capsys, env):
    rc, _, err = run(capsys, ["audit"], {**env, "FLEET_USER": "tech.osl"})
    assert rc == 5 and "may not audit.read" in err
    rc, out, _ = run(capsys, ["--json", "install", "list"], {**env, "FLEET_USER": "tech.bgo"})
    assert rc == 0 and {r["municipality"] for r in json.loads(out)} == {"4601"}


def test_login_session_and_expiry(capsys, env, monkeypatch):
    env = {k: v for k, v in env.items() if k != "FLEET_USER"}
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("wrong\n"))
    rc, _, err = run(capsys, ["login", "sam", "--password-stdin"], env)
    assert rc == 5 and "wrong user name or password" in err
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("demo\n"))
    rc, out, _ = run(capsys, ["login", "sam", "--password-stdin", "--hours", "1"], env)
    assert rc == 0 and "logged in as sam" in out
    session = os.path.join(env["FLEET_CONFIG_DIR"], "session.json")
    assert oct(os.stat(session).st_mode & 0o777) == "0o600"
    rc, out, _ = run(capsys, ["--json", "whoami"], env, clock=lambda: NOW + 1800)
    assert rc == 0 and json.loads(out)["role"] == "support"
    rc, _, err = run(capsys, ["whoami"], env, clock=lambda: NOW + 3601)
    assert rc == 5 and "session expired" in err
    rc, _, _ = run(capsys, ["logout"], env)
    rc, _, err = run(capsys, ["whoami"], env)
    assert rc == 5


def test_postgres_needs_token_not_fleet_user(capsys, pg_dsn, tmp_path, monkeypatch):
    env = {"FLEET_DB": pg_dsn, "FLEET_CONFIG_DIR": str(tmp_path)}
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("s3cret\n"))
    assert run(capsys, ["user", "bootstrap", "root", "--password-stdin"], env)[0] == 0
    rc, _, err = run(capsys, ["whoami"], {**env, "FLEET_USER": "root"})
    assert rc == 5 and "FLEET_USER is trusted only on a local SQLite store" in err
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("s3cret\n"))
    assert run(capsys, ["login", "root", "--password-stdin"], env)[0] == 0
    rc, token, _ = run(capsys, ["user", "token", "root", "--hours", "2"], env)
    assert rc == 0
    rc, out, _ = run(capsys, ["--json", "whoami"], {"FLEET_DB": pg_dsn, "FLEET_TOKEN": token.strip(),
                                                    "FLEET_CONFIG_DIR": str(tmp_path / "none")})
    assert rc == 0 and json.loads(out)["user"] == "root"
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("x\n"))
    rc, _, err = run(capsys, ["user", "bootstrap", "second", "--password-stdin"], env)
    assert rc == 5 and "already has users" in err


def test_csv_import_cli(capsys, env, tmp_path):
    bad = tmp_path / "dn-bad.csv"
    bad.write_text("serial,model,hw_id\nSN-X-00001,WT-BTN-2,a4c1380a0001\nSN-X-00002,WT-BTN-2,not-hex\n")
    rc, _, err = run(capsys, ["item", "import", str(bad), "--to", "WH-OSL"], env)
    assert rc == 2 and "line 3" in err
    rc, out, _ = run(capsys, ["--json", "item", "list", "--location", "WH-OSL", "--limit", "10000"], env)
    assert not any(r["serial"].startswith("SN-X-") for r in json.loads(out))
    good = tmp_path / "dn-big.csv"
    good.write_text("serial,model,hw_id\n" + "".join(f"SN-Y-{i:05d},WT-BTN-2,a4c1{i:08x}\n" for i in range(2500)))
    rc, out, err = run(capsys, ["item", "import", str(good), "--to", "WH-OSL"], env)
    assert rc == 0 and "imported 2500 items" in out and "(100%)" in err  # progress on stderr


def test_conflicting_edits_via_cli(capsys, env, demo_db):
    _, out, _ = run(capsys, ["--json", "install", "list", "--status", "commissioning", "-m", "0301"], env)
    code = json.loads(out)[0]["code"]
    _, out, _ = run(capsys, ["--json", "install", "show", code], env)
    shown = json.loads(out)
    v, serial = shown["version"], next(d["serial"] for d in shown["devices"] if d["role"] != "gateway")
    rc, _, _ = run(capsys, ["install", "checklist", code, serial, "charging_routine=weekly", "--version", str(v)],
                   {**env, "FLEET_USER": "tech.osl"})
    assert rc == 0
    rc, _, err = run(capsys, ["install", "checklist", code, serial, "charging_routine=daily", "--version", str(v)],
                     {**env, "FLEET_USER": "admin"})
    assert rc == 4 and "changed by tech.osl" in err and "reload" in err


def test_deinstall_purge_verify_cli(capsys, env):
    _, out, _ = run(capsys, ["--json", "install", "list", "--status", "active", "-m", "5001"], env)
    code = json.loads(out)[0]["code"]
    _, out, _ = run(capsys, ["--json", "install", "show", code], env)
    resident = json.loads(out)["resident_ref"]
    assert run(capsys, ["install", "deinstall", code, "--to", "VAN-TRD-1"], env)[0] == 0
    rc, out, _ = run(capsys, ["privacy", "verify", code, "--resident", resident], env)
    assert rc == 1 and "FAIL" in out
    assert run(capsys, ["privacy", "purge", code, "--now"], env)[0] == 0
    rc, out, _ = run(capsys, ["privacy", "verify", code, "--resident", resident], env)
    assert rc == 0 and out.startswith("PASS")


def test_handover_report_cli(capsys, env, tmp_path):
    out_file = tmp_path / "h.html"
    rc, out, _ = run(capsys, ["install", "handover", "I-000001", "--format", "html", "-o", str(out_file)], env)
    assert rc == 0 and "<h1>Handover report — installation I-000001</h1>" in out_file.read_text()
    rc, out, _ = run(capsys, ["install", "handover", "I-000001"], env)
    assert "## Alarm routing" in out


def _read_until(fd: int, needle: bytes, timeout_s: float = 20.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout_s
    while needle not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_barcode_scanner_on_a_pty(env):
    """A USB scanner is a keyboard: here it sends an AIM symbology prefix and a configured
    suffix around the serial, then Enter. (STX/ETX framing of serial scanners is covered by
    the clean_scan unit tests; on a tty ETX would be Ctrl-C.)"""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "scan", "move", "--to", "VAN-OSL-2", "--suffix", "#"],
                            stdin=slave, stdout=slave, stderr=slave, env={**os.environ, **env}, close_fds=True)
    os.close(slave)
    try:
        assert b"Ctrl-D to finish" in _read_until(master, b"Ctrl-D")
        os.write(master, b"]C1SN-OSL-BTN-00001#\r")
        out = _read_until(master, b"VAN-OSL-2")
        assert b"\aOK   SN-OSL-BTN-00001 -> VAN-OSL-2" in out
        os.write(master, b"NO-SUCH-ITEM\r")
        out = _read_until(master, b"NO-SUCH-ITEM:")
        assert b"\a\aERR  NO-SUCH-ITEM: no item" in out
        os.write(master, b"\x04")
        out = _read_until(master, b"error(s)")
        assert b"1 ok, 1 error(s)" in out
        assert proc.wait(20) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    rc = main(["--json", "device", "show", "SN-OSL-BTN-00001"], env=env)
    assert rc == 0


# ---------------------------------------------------------------------------------------------
# Configuration, releases, rollouts, monitoring and statistics end to end: SQLite, a real
# Mosquitto, emulated gateways (fleet.upgrades.EmulatedGateway) and an ingest worker.
# ---------------------------------------------------------------------------------------------
OPS_NOW = 1_800_000_000.0
GWS = ("gw-a", "gw-b", "gw-c")



@pytest.fixture
def ops_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with open_store(url) as s, s.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
        for name, role, allm in (("admin", "admin", True), ("tech", "technician", False)):
            tx.execute("INSERT INTO app_user (name, role, all_municipalities, active, created_at) VALUES (?, ?, ?, ?, ?)",
                       (name, role, allm, True, OPS_NOW))
        for g in GWS:
            tx.execute("INSERT INTO gateway_status (gateway_id, last_seen, online, version) VALUES (?, ?, ?, ?)",
                       (g, time.time() - 3600, True, "0.1.0"))
    return url


def run_live(capsys, env, *argv):
    """One command on the wall clock (real brokers and workers run alongside)."""
    rc = main(["--no-progress", *argv], env=env, clock=time.time)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_release_rollout_and_config_end_to_end(capsys, ops_db, tmp_path, mosquitto):
    env = {"FLEET_DB": ops_db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    broker = f"{mosquitto.host}:{mosquitto.port}"
    art = tmp_path / "gateway-0.2.0.whl"
    art.write_bytes(b"wheel" * 2000)
    key = str(tmp_path / "ci")
    assert run_live(capsys, env, "release", "keygen", key)[0] == 0
    assert run_live(capsys, env, "release", "sign", str(art), "--key", key + ".key", "--target", "gateway",
               "--version", "0.2.0")[0] == 0
    rc, _, err = run_live(capsys, env, "release", "add", str(art))
    assert rc == 2 and "no trusted release key" in err
    assert run_live(capsys, env, "release", "key-add", key + ".pub", "--name", "ci")[0] == 0
    bad = tmp_path / "bad.whl"
    bad.write_bytes(art.read_bytes()[:-1] + b"X")
    rc, _, err = run_live(capsys, env, "release", "add", str(bad), "--sig", str(art) + ".sig")
    assert rc == 2 and "SHA-256" in err and "tampered" in err
    assert json.loads(run_live(capsys, env, "release", "list", "--json")[1]) == []       # nothing stored
    rc, out, _ = run_live(capsys, env, "release", "add", str(art))
    assert rc == 0 and out.strip() == "gateway@0.2.0"
    rc, out, _ = run_live(capsys, env, "release", "verify", str(art), "--json")
    assert json.loads(out)["ok"] is True

    # emulated gateways behind the broker, trusting the same key
    pub = load_public((tmp_path / "ci.pub").read_bytes())
    gws = {g: EmulatedGateway(g, [pub], lambda url: b"") for g in GWS}
    emu = MqttClient(mosquitto.host, mosquitto.port, client_id="emulated").connect()
    serve_mqtt(emu, gws)
    try:
        rc, _, err = run_live(capsys, env, "rollout", "create", "gateway@0.2.0", "--id", "r1", "--waves", "0.34,1.0")
        assert rc == 0 and "3 units in 2 waves" in err
        rc, out, err = run_live(capsys, env, "rollout", "run", "r1", "--broker", broker, "--json")
        assert rc == 0, err
        assert json.loads(out)["state"] == "completed"
        assert {g.version for g in gws.values()} == {"0.2.0"}
        st = json.loads(run_live(capsys, env, "rollout", "status", "r1", "--json")[1])
        assert st["by_state"] == {"succeeded": 3} and [w["size"] for w in st["waves_detail"]] == [1, 2]
        rc, _, err = run_live(capsys, env, "rollout", "resume", "r1")
        assert rc == 2 and "allowed now: rollback" in err

        # a second release whose install fails on the canary: the run halts, exit 1
        art2 = tmp_path / "gateway-0.3.0.whl"
        art2.write_bytes(b"wheel3" * 100)
        run_live(capsys, env, "release", "sign", str(art2), "--key", key + ".key", "--target", "gateway", "--version", "0.3.0")
        run_live(capsys, env, "release", "add", str(art2))
        for g in gws.values():
            g.fail_phase = "reboot"
        run_live(capsys, env, "rollout", "create", "gateway@0.3.0", "--id", "r2", "--waves", "0.34,1.0")
        rc, out, err = run_live(capsys, env, "rollout", "run", "r2", "--broker", broker)
        assert rc == 1 and "rollout halted" in err and "1 of 3 units were touched" in err
        units = json.loads(run_live(capsys, env, "rollout", "units", "r2", "--state", "failed", "--json")[1])
        assert len(units) == 1 and "planted failure in reboot" in units[0]["error"]
        assert {g.version for g in gws.values()} == {"0.2.0"}               # A/B rollback on the gateway
    finally:
        emu.close()

    # config: push to a fake gateway that applies it; the ingest worker stores the report
    fake = MqttClient(mosquitto.host, mosquitto.port, client_id="fake-gw-a").connect()
    fake.subscribe("wt/v1/gw/gw-a/config", lambda t, p: fake.publish_nowait(
        "wt/v1/gw/gw-a/config/applied", json.dumps({"schema": "wt.config-applied/1", "version": json.loads(json.loads(p)["body"])["version"],   # signed envelope
                                                    "status": "applied", "error": None}).encode(), qos=1, retain=True))
    worker = IngestWorker(MqttClient(mosquitto.host, mosquitto.port, client_id="ingest", manual_ack=True),
                          lambda: SqlMonitorSink(open_store(ops_db, migrate=False), close_store=True),
                          clock=SystemClock(), flush_s=0.05).start()
    try:
        assert run_live(capsys, env, "config", "assign", "gw-a", "--municipality", "0301", "--group", "night")[0] == 0
        rc, _, err = run_live(capsys, env, "config", "set", "--group", "night", "rules.bed.max_out_min", "-5")
        assert rc == 2 and "rules.bed.max_out_min = -5: must be ≥ 1 minute" in err
        assert run_live(capsys, env, "config", "set", "--group", "night", "rules.bed.max_out_min", "25")[0] == 0
        rc, out, _ = run_live(capsys, env, "config", "push", "gw-a", "--broker", broker, "--json")
        assert rc == 0 and json.loads(out)[0]["version"] == 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            st = json.loads(run_live(capsys, env, "config", "status", "gw-a", "--json")[1])[0]
            if st["drift"] == "in_sync":
                break
            time.sleep(0.1)
        assert st["drift"] == "in_sync" and st["applied_version"] == 1
        run_live(capsys, env, "config", "set", "--gateway", "gw-a", "rules.bed.max_out_min", "20")
        diff = json.loads(run_live(capsys, env, "config", "diff", "gw-a", "--json")[1])
        assert diff["changes"] == [{"key": "rules.bed.max_out_min", "change": "changed", "old": 25, "new": 20}]
        # a technician without CONFIG_WRITE is refused
        tech = {**env, "FLEET_USER": "tech"}
        rc, _, err = run_live(capsys, tech, "config", "set", "--gateway", "gw-a", "uplink.health_interval_s", "60")
        assert rc == 5 and "may not config.write" in err
    finally:
        worker.stop()
        fake.close()
    for argv in (["monitor", "devices"], ["monitor", "battery"], ["monitor", "updates"], ["monitor", "offline"],
                 ["config", "templates"], ["release", "keys"], ["rollout", "list"],
                 ["stats", "benefits", "--from", "2026-11-01", "--to", "2026-12-01"]):
        rc, out, err = run_live(capsys, env, *argv, "--json")
        assert rc == 0, (argv, err)
        json.loads(out)
    rc, out, _ = run_live(capsys, env, "stats", "benefits", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "week",
                     "--csv", "-", "--svg", str(tmp_path / "svg"))
    assert out.startswith("municipality,period_start,period_end,metric,key,value")
    assert (tmp_path / "svg" / "uptime.svg").read_text().startswith("<svg")


def test_monitor_ingest_command_runs_until_sigterm(ops_db, tmp_path, mosquitto):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "FLEET_DB": ops_db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "monitor", "ingest", "--broker",
                             f"{mosquitto.host}:{mosquitto.port}", "--id", "ingest-cli", "--flush-s", "0.05"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert "ingesting from" in proc.stderr.readline()
        pub = MqttClient(mosquitto.host, mosquitto.port, client_id="cli-load").connect()
        pub.publish("wt/v1/gw/gw-a/health", json.dumps({
            "schema": "wt.health/1", "gateway": "gw-a", "at": "2026-11-23T07:00:00.000Z", "config_version": 4,
            "devices": [{"device": "00000000000a", "role": "button", "battery_pct": 12}]}).encode())
        pub.publish("wt/v1/gw/gw-a/health", b"not json")
        pub.close()
        deadline = time.monotonic() + 20
        with open_store(ops_db, migrate=False) as s:
            while time.monotonic() < deadline:
                with s.transaction(write=False) as tx:
                    if tx.scalar("SELECT battery_pct FROM device_status WHERE device_id = ?", ("00000000000a",)):
                        break
                time.sleep(0.1)
            with s.transaction(write=False) as tx:
                assert tx.scalar("SELECT config_version FROM gateway_status WHERE gateway_id = ?", ("gw-a",)) == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "received 2, written 2" in err and "rejected 1" in err


def test_pause_and_resume_reach_a_running_rollout(capsys, ops_db, tmp_path, mosquitto):
    import threading

    env = {"FLEET_DB": ops_db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    key = str(tmp_path / "k")
    art = tmp_path / "gw.whl"
    art.write_bytes(b"w" * 300)
    for argv in (["release", "keygen", key], ["release", "key-add", key + ".pub", "--name", "k"],
                 ["release", "sign", str(art), "--key", key + ".key", "--target", "gateway", "--version", "0.2.0"],
                 ["release", "add", str(art)],
                 ["rollout", "create", "gateway@0.2.0", "--id", "rp", "--waves", "0.34,1.0"]):
        assert run_live(capsys, env, *argv)[0] == 0, argv
    gate = threading.Event()

    class Slow(EmulatedGateway):
        def handle(self, payload):
            gate.wait(20)                       # hold the canary in flight until the test says so
            return super().handle(payload)

    pub = load_public((tmp_path / "k.pub").read_bytes())
    gws = {g: Slow(g, [pub], lambda url: b"") for g in GWS}
    emu = MqttClient(mosquitto.host, mosquitto.port, client_id="emulated-slow").connect()
    serve_mqtt(emu, gws)
    rc_box: list = []
    runner = threading.Thread(target=lambda: rc_box.append(main(
        ["--no-progress", "rollout", "run", "rp", "--broker", f"{mosquitto.host}:{mosquitto.port}"],
        env=env, clock=time.time)), daemon=True)
    runner.start()

    def state():
        with open_store(ops_db, migrate=False) as s, s.transaction(write=False) as tx:
            return tx.one("SELECT state, runner_seen_at FROM rollout WHERE rollout_id = ?", ("rp",))

    def wait_for(pred, what):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pred(state()):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {state()}")

    try:
        wait_for(lambda r: r["state"] == "running" and r["runner_seen_at"], "the runner")
        rc, _, err = run_live(capsys, env, "rollout", "pause", "rp")
        assert rc == 0 and "pause requested" in err
        wait_for(lambda r: r["state"] == "paused", "pause")
        gate.set()                                   # the canary finishes while paused; nothing new is sent
        time.sleep(0.5)
        assert sum(g.installs for g in gws.values()) == 1
        rc, _, err = run_live(capsys, env, "rollout", "resume", "rp")
        assert rc == 0 and "resume requested" in err
        runner.join(30)
        assert rc_box == [0]
        assert state()["state"] == "completed" and {g.version for g in gws.values()} == {"0.2.0"}
    finally:
        gate.set()
        emu.close()
