"""What support staff and technicians tripped over, each fixed and held by a test: unknown
filter values, duplicate serials, unreadable times, wave numbers, the bar of an aborted
rollout, firmware in the handover report, exit codes in --help, Ctrl-D at the password
prompt, `fleet ... | head`, and a demo set whose monitoring views show something."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.cli import main

NOW = 1_795_400_000.0           # 2026-11-23 03:13:20 CET
ROOT = Path(__file__).resolve().parents[2]
EPOCH = re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b")


def run(capsys, argv, env, clock=lambda: NOW):
    rc = main(argv, env=env, clock=clock)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo-fixes") / "fleet.db"
    assert main(["--db", f"sqlite:///{path}", "--no-progress", "demo-data"], env={}, clock=lambda: NOW) == 0
    return f"sqlite:///{path}"


@pytest.fixture
def env(demo_db, tmp_path, monkeypatch):
    monkeypatch.delenv("FLEET_TZ", raising=False)
    return {"FLEET_DB": demo_db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}


@pytest.mark.parametrize("argv,suggestion", [
    (["stock", "levels", "--location", "WH-OSLO"], "did you mean WH-OSL"),
    (["stock", "levels", "--model", "WT-BTN2"], "did you mean WT-BTN-2"),
    (["item", "list", "--state", "instock"], "did you mean in_stock"),
    (["item", "list", "--location", "VAN-OSL-3"], "did you mean VAN-OSL-2 or VAN-OSL-1"),
    (["install", "list", "-m", "0302"], "did you mean 0301"),
    (["offline", "-m", "Osloo"], "did you mean Oslo"),
    (["monitor", "battery", "-m", "Bergn"], "did you mean Bergen"),
    (["location", "list", "--kind", "warehous"], "did you mean warehouse"),
])
def test_an_unknown_filter_value_is_invalid_input_with_suggestions(capsys, env, argv, suggestion):
    rc, out, err = run(capsys, argv, env)
    assert (rc, out) == (2, "")
    assert suggestion in err and "no such" in err


def test_a_filter_value_in_another_case_or_by_name_is_understood(capsys, env):
    rc, out, _ = run(capsys, ["--json", "stock", "levels", "--location", "wh-osl"], env)
    assert rc == 0 and {r["location"] for r in json.loads(out)} == {"WH-OSL"}
    rc, out, _ = run(capsys, ["--json", "offline", "-m", "Oslo"], env)
    assert rc == 0 and {g["municipality"] for g in json.loads(out)["gateways"]} <= {"0301"}


def test_help_shows_the_demo_warehouse_that_exists(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "WH-OSLO" not in out and "--location WH-OSL " in out


def test_a_duplicate_serial_is_a_sentence(capsys, env):
    rc, _, err = run(capsys, ["item", "receive", "SN-OSL-BTN-00000", "--model", "WT-BTN-2", "--to", "WH-OSL"], env)
    assert rc == 2
    assert "UNIQUE" not in err and "constraint" not in err
    assert "serial number SN-OSL-BTN-00000 is already registered: SN-OSL-BTN-00000, WT-BTN-2" in err
    assert "nothing was received (see: fleet device show SN-OSL-BTN-00000)" in err


def test_any_other_unique_clash_is_a_sentence_too_on_postgresql(capsys, pg_dsn, tmp_path, monkeypatch):
    from fleet.commands._common import explain_integrity
    from fleet.errors import IntegrityViolation
    from fleet.store import open_store

    with open_store(pg_dsn) as s:
        with pytest.raises(IntegrityViolation) as exc, s.transaction() as tx:
            tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
            tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
    assert explain_integrity(exc.value) == ("a municipality with number 0301 is already registered; nothing was "
                                            "saved (see: fleet location municipalities)")


TABLES = [["offline"], ["monitor", "battery"], ["monitor", "devices"], ["item", "list", "--limit", "5"],
          ["kit", "list"], ["install", "list"], ["audit", "--limit", "5"], ["device", "show", "SN-OSL-GW-00000"],
          ["user", "list"]]


@pytest.mark.parametrize("argv", TABLES, ids=[" ".join(a) for a in TABLES])
def test_tables_show_oslo_time_never_epoch_seconds(capsys, env, argv):
    rc, out, _ = run(capsys, argv, env)
    assert rc == 0
    assert not EPOCH.search(out), out
    assert "MINUTES_AGO" not in out
    if argv[0] != "user":
        assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d CES?T", out), out


def test_offline_says_how_long_in_words(capsys, env):
    rc, out, _ = run(capsys, ["offline"], env)
    assert rc == 0 and "SILENT_FOR" in out and re.search(r"\b\d+ (d|h|min)\b", out)
    rc, out, _ = run(capsys, ["--json", "offline"], env)
    assert all(isinstance(g["last_seen"], float) for g in json.loads(out)["gateways"])   # JSON stays machine time


def test_time_helpers():
    from fleet.commands._common import fmt_ago, fmt_time

    assert fmt_time(1_795_400_000.0) == "2026-11-23 03:13:20 CET"       # winter: UTC+1
    assert fmt_time(1_782_000_000.0).endswith("CEST")                   # summer: UTC+2
    assert [fmt_ago(NOW - s, NOW) for s in (5, 180, 3780.9 * 60, 3 * 86400 + 7200)] == \
        ["5 s", "3 min", "2 d 15 h", "3 d 2 h"]


def test_the_demo_set_fills_the_monitoring_views(capsys, env):
    rc, out, _ = run(capsys, ["--json", "offline"], env)
    assert rc == 0 and json.loads(out)["total"] >= 1
    rc, out, _ = run(capsys, ["--json", "monitor", "battery"], env)
    assert rc == 0 and json.loads(out) and all(r["battery_pct"] < 20 for r in json.loads(out))
    rc, out, _ = run(capsys, ["--json", "monitor", "devices"], env)
    assert rc == 0 and any(r["silent"] for r in json.loads(out))
    rc, out, _ = run(capsys, ["--json", "stats", "benefits", "--from", "2026-10-01", "--to", "2026-11-23",
                              "--by", "all"], env)
    stats = json.loads(out)
    assert rc == 0 and {s["municipality"] for s in stats} == {"0301", "4601", "5001"}
    assert all(s["care_alarms"] > 0 and s["acknowledged"] > 0 and s["ack_median_s"] for s in stats)
    assert sum(s["cancelled_false_alarms"] for s in stats) > 0 and sum(s["technical_alarms"] for s in stats) > 0
    assert all(s["night_checks_replaced"] for s in stats)
    rc, out, _ = run(capsys, ["--json", "monitor", "status"], env)
    assert rc == 0 and json.loads(out)["quarantine"] == []             # the demo's own messages are all clean


def test_handover_report_shows_the_running_firmware(capsys, env, tmp_path):
    rc, out, _ = run(capsys, ["install", "handover", "I-000001"], env)
    assert rc == 0
    rows = [line for line in out.splitlines() if line.startswith("| button") or line.startswith("| gateway")]
    assert rows and all(re.search(r"wt-(sensor|gateway) \d+\.\d+\.\d+", r) for r in rows), rows
    assert "CET" in out or "CEST" in out


def test_help_lists_every_exit_code(capsys):
    import importlib
    import pkgutil

    import fleet
    from fleet.errors import FleetError

    for m in pkgutil.walk_packages(fleet.__path__, "fleet."):
        if ".tests" not in m.name and not m.name.endswith("__main__"):
            try:
                importlib.import_module(m.name)
            except ImportError:
                pass

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    codes = {FleetError.exit_code} | {c.exit_code for c in subclasses(FleetError)} | {0, 2, 6, 130}
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    listed = {int(m) for m in re.findall(r"^  (\d+) ", out.split("exit codes:")[1], re.M)}
    assert codes <= listed, codes - listed
    assert {6, 69, 75} <= listed


def _pty_run(argv, env, send: bytes, expect: bytes):
    pid, fd = pty.fork()
    if pid == 0:                                            # child: the CLI on a terminal
        os.execve(sys.executable, [sys.executable, "-m", "fleet", *argv], env)
    out = b""
    deadline = time.monotonic() + 30
    while expect not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            out += os.read(fd, 4096)
    assert expect in out, out
    os.write(fd, send)
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_ctrl_d_at_the_password_prompt_exits_cleanly(demo_db, tmp_path):
    env = {**os.environ, "FLEET_DB": demo_db, "FLEET_CONFIG_DIR": str(tmp_path / "cfg"), "PYTHONPATH": str(ROOT)}
    rc, out = _pty_run(["login", "admin"], env, b"\x04", b"password for admin:")
    assert rc == 130, out
    assert "cancelled (end of input)" in out and "Traceback" not in out
    assert not (tmp_path / "cfg" / "session.json").exists()


@pytest.mark.parametrize("argv", [["item", "list", "--limit", "3"], ["--json", "audit", "--limit", "1000"]],
                         ids=["small", "large"])
def test_output_into_a_closed_pipe_prints_no_traceback(demo_db, tmp_path, argv):
    env = {**os.environ, "FLEET_DB": demo_db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    r, w = os.pipe()
    os.close(r)                                             # the reader (`head`) is already gone
    proc = subprocess.run([sys.executable, "-m", "fleet", *argv], env=env, stdout=w, stderr=subprocess.PIPE,
                          cwd=ROOT, timeout=60)
    os.close(w)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()


def test_fleet_piped_into_head(demo_db, tmp_path):
    env = {**os.environ, "FLEET_DB": demo_db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.run(f"{sys.executable} -m fleet --json audit --limit 2000 | head -n 1", shell=True, env=env,
                          capture_output=True, cwd=ROOT, timeout=60)
    assert proc.stdout.strip() == b"[" and b"Traceback" not in proc.stderr and b"Exception" not in proc.stderr


# -- rollouts -------------------------------------------------------------------------------

@pytest.fixture
def rollout_db(tmp_path):
    from fleet.store import open_store
    from fleet.upgrades import Target, generate_key, sign
    from fleet.upgrades._sql import ReleaseRepo

    url = f"sqlite:///{tmp_path / 'ro.db'}"
    priv, pub = generate_key()
    art = b"gateway-image" * 100
    with open_store(url) as s, s.transaction() as tx:
        tx.execute("INSERT INTO app_user (name, role, all_municipalities, active, created_at) VALUES (?, ?, ?, ?, ?)",
                   ("admin", "admin", True, True, NOW))
        for i in range(8):
            tx.execute("INSERT INTO gateway_status (gateway_id, last_seen, online, version) VALUES (?, ?, ?, ?)",
                       (f"gw-{i}", NOW, True, "0.1.0"))
        repo = ReleaseRepo(tx)
        repo.add_key(pub, "ci", at=NOW, by="t")
        rid = repo.add(art, sign(art, "gw.tar", Target.GATEWAY, "0.2.0", priv), at=NOW, by="t")
    return url, rid, pub


def test_waves_are_numbered_alike_and_an_aborted_rollout_shows_no_full_bar(capsys, rollout_db, tmp_path):
    url, rid, _ = rollout_db
    env = {"FLEET_DB": url, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    gws = ",".join(f"gw-{i}" for i in range(8))
    assert run(capsys, ["rollout", "create", rid, "--id", "ro-1", "--gateways", gws, "--waves", "0.25,0.5,1.0"],
               env)[0] == 0
    rc, out, _ = run(capsys, ["--json", "rollout", "status", "ro-1"], env)
    status = json.loads(out)
    rc2, out2, _ = run(capsys, ["--json", "rollout", "units", "ro-1"], env)
    units = json.loads(out2)
    assert rc == rc2 == 0
    sizes = {w["wave"]: w["size"] for w in status["waves_detail"]}
    assert sizes == {1: 2, 2: 2, 3: 4} and status["wave"] == 1
    assert {w: sum(1 for u in units if u["wave"] == w) for w in sizes} == sizes       # same numbers, same sizes
    rc, out, _ = run(capsys, ["rollout", "units", "ro-1"], env)
    assert rc == 0 and re.search(r"^gw-\d\s+1\s+queued", out, re.M)
    rc, out, _ = run(capsys, ["rollout", "list"], env)
    assert re.search(r"ro-1 .* draft\s+1\s", out)
    assert run(capsys, ["rollout", "units", "ro-1", "--state", "faild"], env)[2].count("did you mean failed") == 1
    assert run(capsys, ["rollout", "units", "ro-nope"], env)[0] == 3
    assert run(capsys, ["rollout", "abort", "ro-1"], env)[0] == 0
    rc, out, _ = run(capsys, ["rollout", "status", "ro-1"], env)
    bar = out.splitlines()[0]
    assert "0/8 done, 8 cancelled" in bar and "#" not in bar and "aborted" in bar


def test_bar_counts_outcomes_not_cancellations():
    from fleet.commands.rollout import _bar

    p = {"rollout": "r", "state": "aborted", "wave": 2, "waves": 3, "total": 10, "done": 10,
         "by_state": {"succeeded": 3, "failed": 1, "cancelled": 6}}
    assert "[############                  ] 4/10 done, 6 cancelled" in _bar(p)


def test_resume_retry_failed_sends_the_failed_units_again(capsys, rollout_db, tmp_path, mosquitto):
    """The canary fails on download, the rollout halts; after the fix `resume --retry-failed`
    queues the failed units again and a new `run` sends them with a new command id (the gateway
    would answer the old one with its old failure) and completes the rollout."""
    from fleet.mqtt import MqttClient
    from fleet.upgrades import EmulatedGateway, load_public, serve_mqtt

    url, rid, pub = rollout_db
    env = {"FLEET_DB": url, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    live = lambda *argv: run(capsys, ["--no-progress", *argv], env, clock=time.time)   # noqa: E731
    names = [f"gw-{i}" for i in range(4)]
    gws = {g: EmulatedGateway(g, [load_public(pub)], lambda u: b"", fail_phase="download")
           for g in names}
    emu = MqttClient(mosquitto.host, mosquitto.port, client_id="emulated-retry").connect()
    serve_mqtt(emu, gws)
    broker = f"{mosquitto.host}:{mosquitto.port}"
    try:
        assert live("rollout", "create", rid, "--id", "ro-r", "--gateways", ",".join(names), "--waves", "0.5,1.0")[0] == 0
        rc, _, err = live("rollout", "run", "ro-r", "--broker", broker)
        assert rc == 1 and "rollout halted" in err
        failed = json.loads(live("--json", "rollout", "units", "ro-r", "--state", "failed")[1])
        assert len(failed) == 2 and all(u["wave"] == 1 and u["attempts"] == 1 for u in failed)
        rc, _, err = live("rollout", "resume", "ro-r")              # plain resume: the same failures halt it
        assert rc == 0 and "is now halted" in err
        for g in gws.values():
            g.fail_phase = None                                     # the cause is fixed
        rc, _, err = live("rollout", "resume", "ro-r", "--retry-failed")
        assert rc == 0 and "2 failed unit(s) queued again" in err, err
        rc, out, err = live("--json", "rollout", "run", "ro-r", "--broker", broker)
        assert rc == 0, err
        assert json.loads(out)["state"] == "completed"
        units = {u["unit_key"]: u for u in json.loads(live("--json", "rollout", "units", "ro-r")[1])}
        assert all(u["state"] == "succeeded" for u in units.values())
        assert sorted(u["attempts"] for u in units.values()) == [1, 1, 2, 2]
        assert {g.version for g in gws.values()} == {"0.2.0"}
        retried = [k for g in gws.values() for k in g._seen if k.endswith(":u2")]
        assert len(retried) == 2                                                # a new cmd_id per retried unit
    finally:
        emu.close()
