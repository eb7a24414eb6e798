"""fleet.config / fleet.upgrades / fleet.monitoring domain modules import no paho or DB driver;
fleet.mqtt is the only fleet module that imports paho."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("psycopg", "sqlite3", "paho", "zeroconf", "bleak", "serial")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["fleet.config", "fleet.upgrades", "fleet.monitoring", "fleet.config._sql",
                                    "fleet.upgrades._sql", "fleet.monitoring._queries", "fleet.monitoring._stats",
                                    "fleet.commands.config", "fleet.commands.rollout", "fleet.commands.monitor"])
def test_domain_imports_no_driver(module):
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} pulls in {out}"


def test_only_fleet_mqtt_imports_paho():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "fleet").rglob("*.py")
                 if "tests" not in p.parts and p.name != "mqtt.py"
                 and any(line.lstrip().startswith(("import paho", "from paho")) for line in p.read_text().splitlines())]
    assert offenders == []
