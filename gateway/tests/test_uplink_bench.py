"""Smoke: the uplink benchmarks still run (tiny sizes) and print their JSON contract line.

The figures themselves are measured by running the benches in full (not in CI)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.tests._kit import ROOT


def _run(script: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                       timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_alarm_latency_bench_smoke():
    out = _run("alarm_latency.py", "--alarms", "30", "--backlog", "500", "--telemetry-rate", "200")
    assert set(out) == {"p50_ms", "p99_ms", "baseline_p99_ms", "lost"}
    assert out["lost"] == 0 and out["p50_ms"] > 0 and out["baseline_p99_ms"] > 0


@pytest.mark.slow
def test_replay_throughput_bench_smoke():
    out = _run("replay_throughput.py", "--backlog", "500", "--quiet")
    assert set(out) == {"events_per_s", "baseline_events_per_s", "lost", "duplicates"}
    assert out["lost"] == 0 and out["duplicates"] == 0 and out["events_per_s"] > 0
