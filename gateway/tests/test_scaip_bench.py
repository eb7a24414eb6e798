"""Smoke: bench/scaip_latency.py still runs (tiny sizes, SIPp centre, Mosquitto) and prints
its JSON contract line and the dead-gateway figure. The figures themselves come from a
full run (docs/scaip.md "Latency")."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.tests._kit import ROOT
from gateway.tests.sipp.peers import require


@pytest.mark.slow
def test_scaip_latency_bench_smoke(tmp_path):
    require("sipp")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "scaip_latency.py"), "--alarms", "30", "--backlog",
                        "1000", "--telemetry-rate", "200", "--workdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) == {"p50_ms", "p99_ms", "baseline_p99_ms", "lost", "duplicates_at_centre"}
    assert out["lost"] == 0 and out["duplicates_at_centre"] == 0 and out["p50_ms"] > 0 and out["baseline_p99_ms"] > 0
    assert "dead gateway: heartbeats every 300 s" in r.stdout and "60-360 s" in r.stdout
