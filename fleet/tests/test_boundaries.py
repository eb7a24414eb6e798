"""The fleet's layers, checked: domain and service modules import no database driver, paho or
zeroconf (in a fresh interpreter); SQL lives only in the SQL adapters; `fleet --help` stays light;
fleet.mqtt is the only module that imports paho."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("psycopg", "sqlite3", "paho", "zeroconf", "bleak", "serial")
ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "fleet"

DOMAIN = ["fleet.inventory", "fleet.installations", "fleet.access", "fleet.store", "fleet.cli", "fleet.demo",
          "fleet.config", "fleet.upgrades", "fleet.monitoring", "fleet.clock", "fleet.control",
          "fleet.inventory._service", "fleet.inventory._memory", "fleet.inventory._sql",
          "fleet.installations._service", "fleet.installations._memory", "fleet.installations._sql",
          "fleet.access._service", "fleet.access._memory", "fleet.access._sql",
          "fleet.config._sql", "fleet.upgrades._sql", "fleet.monitoring._queries", "fleet.monitoring._stats",
          "fleet.commands.config", "fleet.commands.rollout", "fleet.commands.monitor"]

# Where SQL may be written: the SQL adapters of each package, the store itself, and
# the seed SQL of migrations. Services, domain modules and CLI commands hold none.
SQL_ADAPTERS = {"fleet/inventory/_sql.py", "fleet/installations/_sql.py", "fleet/access/_sql.py",
                "fleet/config/_sql.py", "fleet/upgrades/_sql.py", "fleet/monitoring/_sql.py",
                "fleet/monitoring/_queries.py", "fleet/devicekeys/_sql.py", "fleet/enrolment/_sql.py",
                "fleet/control/_sql.py"}
SQL_WORDS = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
TX_CALLS = re.compile(r"\btx\.(query|one|scalar|execute|executemany|iter|bulk_insert|reserve_ids|script)\(")


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_imports_no_driver(module):
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} pulls in {out}"


def test_help_does_not_import_drivers():
    code = ("import sys, contextlib, io\nfrom fleet.cli import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    build_parser().format_help()\n"
            f"print(','.join(m for m in {('psycopg', 'paho', 'zeroconf')!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_only_fleet_mqtt_imports_paho():
    offenders = [str(p.relative_to(ROOT)) for p in FLEET.rglob("*.py")
                 if "tests" not in p.parts and p.name != "mqtt.py"
                 and any(line.lstrip().startswith(("import paho", "from paho")) for line in p.read_text().splitlines())]
    assert offenders == []


def _production_modules() -> list[Path]:
    return [p for p in FLEET.rglob("*.py") if "tests" not in p.parts and "store" not in p.parts]


def test_sql_lives_only_in_the_sql_adapters():
    """No SQL text and no raw Tx calls in commands, services or domain modules."""
    offenders = []
    for p in _production_modules():
        rel = str(p.relative_to(ROOT))
        if rel in SQL_ADAPTERS:
            continue
        text = p.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            if SQL_WORDS.search(line) or TX_CALLS.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()[:80]}")
    assert offenders == []


@pytest.mark.parametrize("package", ["inventory", "installations", "access", "config"])
def test_every_area_has_a_port_a_sql_adapter_and_a_fake(package):
    """The one fleet architecture: service over a repository port, one SQL adapter, one in-memory fake."""
    files = {p.name for p in (FLEET / package).glob("*.py")}
    assert {"_service.py", "_sql.py", "_memory.py"} <= files
    assert "Protocol" in ((FLEET / package / "_model.py").read_text())


def test_production_modules_stay_small():
    long = {str(p.relative_to(ROOT)): n for p in FLEET.rglob("*.py") if "tests" not in p.parts
            and (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_one_clock_protocol():
    """fleet/clock.py holds the only Clock protocol of the fleet (tests share one fake in conftest)."""
    defined = [str(p.relative_to(ROOT)) for p in FLEET.rglob("*.py")
               if re.search(r"^class \w*Clock\w*\((typing\.)?Protocol\)", p.read_text(), re.M)]
    assert defined == ["fleet/clock.py"]
    fakes = [str(p.relative_to(ROOT)) for p in (FLEET / "tests").glob("*.py")
             if re.search(r"^class \w*Clock\b", p.read_text(), re.M)]
    assert fakes == ["fleet/tests/conftest.py"]
