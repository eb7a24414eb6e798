"""`gateway demo --scaip`: the emulated home against a SIPp alarm receiving centre (and the
MQTT console), press -> centre reply latency per alarm, an outage of both paths survived;
without sipp a clear message."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from gateway.tests._kit import GATEWAY_EXE as GATEWAY
from gateway.tests.sipp.peers import require


@pytest.mark.slow
def test_demo_scaip_with_outage_delivers_every_alarm_to_the_centre(tmp_path):
    require("sipp")
    p = subprocess.run([GATEWAY, "demo", "--scaip", "--duration", "10", "--outage", "3", "--no-discovery", "--json",
                        "--data-dir", str(tmp_path / "gw")], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["lost"] == 0
    assert summary["alarms"] >= 8 and summary["centre_alarms"] == summary["alarms"]
    assert summary["alarms_acknowledged"] == summary["alarms"]
    assert summary["outage_alarms"] >= 2                   # the outage's alarms reached the centre afterwards
    assert summary["centre_latency_ms_median"] is not None
    out = p.stdout
    assert "started the SIPp alarm centre" in out and "the alarm centre is unreachable too" in out
    for kind in ("button_press", "fall_detected", "door_at_night", "geofence_exit", "bed_not_returned"):
        assert f"centre snu 0  {kind}" in out, f"{kind} not answered by the centre:\n{out}"
    assert "press -> centre reply" in out and "result             OK" in out


def test_demo_scaip_without_sipp_says_what_to_install(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}            # no sipp (nor anything else) on PATH
    p = subprocess.run([GATEWAY, "demo", "--scaip", "--duration", "5", "--no-discovery"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "gateway demo: sipp is not installed (Debian package sip-tester" in p.stderr
    assert "Traceback" not in p.stderr
