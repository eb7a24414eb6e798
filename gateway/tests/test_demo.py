"""`gateway demo` end to end (real Mosquitto, emulated home, uplink outage): the summary."""
from __future__ import annotations

import json
import subprocess

from gateway.tests._kit import GATEWAY_EXE as GATEWAY


def test_demo_short_with_outage_loses_nothing(tmp_path):
    p = subprocess.run([GATEWAY, "demo", "--duration", "10", "--outage", "3", "--no-discovery", "--json",
                        "--data-dir", str(tmp_path / "gw")],
                       capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stdout + p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["lost"] == 0 and summary["lost_ids"] == []
    assert summary["duplicates_shown"] == 0
    assert summary["alarms"] >= 8 and summary["alarms_acknowledged"] == summary["alarms"]
    assert summary["device_acks_missing"] == 0
    assert summary["backlog_at_restore"] >= 2           # the outage really held events back
    assert summary["delivered"] == summary["device_events"] + summary["gateway_events"]
    out = p.stdout
    for kind in ("button_press", "fall_detected", "door_at_night", "geofence_exit", "bed_not_returned",
                 "dose_missed", "low_battery", "mains_lost", "uplink_lost"):
        assert f" {kind} " in out, f"{kind} not shown:\n{out}"
    assert "latency" in out and "UPLINK CUT" in out and "result             OK" in out


def test_demo_rejects_bad_arguments():
    p = subprocess.run([GATEWAY, "demo", "--duration", "0"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--duration" in p.stderr


def test_demo_ctrl_c_stops_everything(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([GATEWAY, "demo", "--duration", "60", "--no-discovery", "--data-dir", str(tmp_path / "gw")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "ALARM" in line:               # the chain is up and alarms flow
            break
    assert any("ALARM" in ln for ln in lines), "".join(lines)
    mosq = next(ln for ln in lines if "started Mosquitto on" in ln).split()[-1]
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest and "Traceback" not in rest
    host, port = mosq.rsplit(":", 1)
    from gateway.testing.broker import port_open
    assert not port_open(host, int(port))          # the demo's broker was stopped
