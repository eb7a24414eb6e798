"""The `fleet` CLI end to end: help, --json on reads, errors on stderr with exit codes,
login sessions and tokens, CSV import, optimistic-concurrency conflicts, privacy purge,
and the barcode-scanner loop on a real pseudo-terminal."""
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


@pytest.mark.parametrize("argv", [
    ["stock", "levels"], ["stock", "reorder"], ["item", "list", "--state", "in_stock"], ["item", "states"],
    ["device", "show", "SN-OSL-BTN-00000"], ["kit", "list"], ["kit", "templates"], ["kit", "show", "K-000001"],
    ["model", "list"], ["location", "list"], ["location", "municipalities"], ["install", "list"],
    ["install", "show", "I-000001"], ["install", "questions"], ["offline"], ["user", "list"], ["audit"],
    ["whoami"], ["db", "info"],
])
def test_every_read_has_json(capsys, env, argv):
    rc, out, err = run(capsys, argv + ["--json"], env)
    assert rc in (0, 1), err          # stock reorder exits 1 when something is below its reorder point
    json.loads(out)
    rc2, out2, _ = run(capsys, ["--json"] + argv, env)  # the global flag works too
    assert json.loads(out2) == json.loads(out) or argv[0] in ("audit", "install")


def test_demo_data_covers_the_domain(capsys, env):
    _, out, _ = run(capsys, ["--json", "item", "list", "--limit", "10000"], env)
    states = {r["state"] for r in json.loads(out)}
    assert {"in_stock", "in_kit", "installed", "returned", "cleaning", "repair", "written_off", "received",
            "in_transit"} <= states
    _, out, _ = run(capsys, ["--json", "offline"], env)
    assert json.loads(out)["total"] >= 1
    _, out, _ = run(capsys, ["--json", "stock", "reorder"], env)
    assert any(r["warning"] == "REORDER" for r in json.loads(out))


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
