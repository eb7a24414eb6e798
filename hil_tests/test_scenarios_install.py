"""A technician's full installation through the fleet CLI, ending with one test alarm per device.

Stock, kit and installation are registered with the fleet CLI (its ``main`` entry, in
process: one interpreter start per command would cost more than the scenario); the
commissioning step is the real ``fleet install commission`` command as a subprocess, talking
MQTT to the bench's broker. The gateway daemon handles the fleet's ``pair`` / ``test_mode``
commands; the button and the fall sensor (a SisFall fall replayed) raise their test alarms.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.testing.stimuli import button_presses
from gateway.testing.waiting import wait_until
from hil_tests.conftest import IDS, Transcript, device
from hil_tests.emulated import GATEWAY_ID
from hil_tests.stimuli import sisfall_replay

pytestmark = pytest.mark.hil

ROUTING = {"response_centre": "arc-oslo", "staff_group": "home-care-zone-3", "relatives": [], "escalation_s": [120]}
ANSWERS = ['alarm_recipient=response centre', 'responder=home care night team', 'supervision_checks_count=2',
           'supervision_check_times=23:00,03:00', 'care_plan_updated=yes', 'charging_routine=home care, Mondays',
           'relatives_agreement=none', 'technical_settings={"window": "20:30-06:00", "delay_min": 30}',
           'placement=waist']   # the fall sensor replays a SisFall recording made at the waist (its default detector)


def _fleet(db: str, *args: str) -> str:
    """A fleet CLI command as the technician."""
    return _fleet_as(db, "tech", *args)


def test_technician_installation_with_a_test_alarm_per_device(emulated_bench, sisfall_dir, tmp_path,
                                                               hil_metrics, update_golden):
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    pw = tmp_path / "root.pw"
    pw.write_text("hil-bench-root-password\n")
    _fleet_as(db, "", "user", "bootstrap", "root", "--password-file", str(pw))   # the first admin of an empty database
    # the warehouse: catalog, stock, a kit (as the logistics staff / technician would)
    admin = lambda *a: _fleet_as(db, "root", *a)   # noqa: E731
    admin("location", "municipality-add", "0301", "Oslo")
    admin("location", "add", "WH-OSLO", "warehouse", "--name", "Oslo store", "-m", "0301")
    admin("location", "add", "HOME-0042", "home", "-m", "0301")
    admin("model", "add", "WT-GW-1", "Home gateway", "--role", "gateway", "--radio", "serial", "--firmware", "wt-gateway")
    admin("model", "add", "WT-BTN-2", "Alarm button", "--role", "button", "--radio", "serial", "--firmware", "wt-sensor")
    admin("model", "add", "WT-FALL-1", "Fall sensor", "--role", "fall", "--radio", "serial", "--firmware", "wt-sensor")
    admin("kit", "template-add", "safety-alarm", "Safety alarm", "gateway=1", "button=1", "fall=1")
    _fleet_as(db, "root", "user", "add", "tech", "--role", "technician", "-m", "0301", "--password-stdin",
              stdin="hil-bench-tech-password\n")
    for serial, model, hw in (("SN-GW-0001", "WT-GW-1", GATEWAY_ID), ("SN-BTN-0001", "WT-BTN-2", IDS["button-1"]),
                              ("SN-FALL-0001", "WT-FALL-1", IDS["fall-1"])):
        admin("item", "receive", serial, "--model", model, "--hw-id", hw, "--to", "WH-OSLO", "--state", "in_stock")
    kit = _fleet(db, "kit", "assemble", "safety-alarm", "SN-GW-0001", "SN-BTN-0001", "SN-FALL-0001").split()[1]
    # the technician at the home: installation, checklist per device
    _fleet(db, "install", "create", "--resident", "R-HIL001", "--location", "HOME-0042", "--kit", kit,
           "--consent", "consent", "--consent-date", "2026-11-20", "--routing", json.dumps(ROUTING))
    code = json.loads(_fleet(db, "--json", "install", "list"))[0]["code"]
    for serial in ("SN-BTN-0001", "SN-FALL-0001"):
        version = json.loads(_fleet(db, "--json", "install", "show", code))["version"]
        _fleet(db, "install", "checklist", code, serial, *ANSWERS, "--version", str(version))
    # the home: gateway + button + fall sensor on the bench; test alarms come 8 s / ~11.5 s after boot
    fall = sisfall_replay(sisfall_dir / "SA01" / "F01_SA01_R01.txt", tmp_path / "fall.mg", before_s=3, after_s=5,
                          lead_s=5)
    bench = emulated_bench([device("button-1", pins={"button": button_presses(first_ms=8000, n=1, every_ms=1)}),
                            device("fall-1", acc=fall.path, cfg={"cancel_s": 2})])
    env = {**os.environ, "FLEET_USER": "tech", "FLEET_DB": db}
    t0 = time.time()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("fleet")), "--no-progress", "install", "commission",
                             code, "--mqtt", f"mqtt://127.0.0.1:{bench.broker.port}", "--timeout", "45",
                             "--skip-discovery", "--skip-config"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # test mode must be on before the first stimulus (8 s after the firmware started)
        wait_until(lambda: set((bench.gw.status() or {}).get("test_mode", [])) >= {IDS["button-1"], IDS["fall-1"]},
                   12, "the gateway in test mode for both devices")
        assert time.time() < bench.firmware["button-1"].wall(8000), "commissioning started too late for the stimuli"
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"commission exit {proc.returncode}\n{out}\n{err}\n{bench.debug()}"
    hil_metrics.figure("commission_s", round(time.time() - t0, 1))
    shown = json.loads(_fleet(db, "--json", "install", "show", code))
    assert shown["status"] == "active", shown
    # the fall sensor's test fall confirmed the checklist's placement (waist: the detector it runs)
    assert "placement waist confirmed" in out, out
    assert {(a["placement"], a["placement_expected"]) for a in shown["test_alarms"]
            if a["device_id"] == IDS["fall-1"]} == {(2, 2)}, shown["test_alarms"]
    alarms = bench.alarms()
    assert {a.type for a in alarms} == {"button_press", "fall_detected"}, [a.payload for a in alarms]
    assert all(a.payload["test"] is True for a in alarms)
    # after commissioning the devices are live again (test mode off)
    wait_until(lambda: not (bench.gw.status() or {}).get("test_mode"), 10, "test mode off")
    t = Transcript(bench).arrivals(sorted(alarms, key=lambda a: a.type), volatile=("peak_cg",))
    t.note(f"fleet installation {shown['status']}")
    t.check("installation", update_golden)


@contextlib.contextmanager
def _stdin(text: str):
    """Feed ``text`` to a command that reads a password from stdin (``--password-stdin``)."""
    old, sys.stdin = sys.stdin, io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = old


def _fleet_as(db: str, user: str, *args: str, stdin: str = "") -> str:
    """One fleet CLI command in process (its ``main``), as ``user`` ("" = nobody); stdout returned.
    A non-zero exit fails the scenario with the command's stderr."""
    from fleet.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _stdin(stdin):
        rc = main(["--db", db, "--no-progress", *args], env={"FLEET_USER": user} if user else {})
    assert rc == 0, f"fleet {' '.join(args)} → exit {rc}: {err.getvalue()}"
    return out.getvalue()
