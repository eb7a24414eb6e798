"""``import contracts`` (and its wire modules) loads no gateway, fleet or I/O library:
checked in a fresh interpreter, so modules other tests imported cannot hide an import."""
from __future__ import annotations

import json
import subprocess
import sys

MODULES = ("contracts", "contracts.topics", "contracts.payloads", "contracts.discovery", "contracts.vectors")
FORBIDDEN = ("gateway", "fleet", "hil_tests", "bench", "paho", "zeroconf", "bleak", "serial", "psycopg", "sqlite3",
             "asyncio", "socket")


def test_contracts_wire_modules_load_no_gateway_fleet_or_io_library():
    code = ("import importlib, json, sys\n"
            f"for m in {MODULES!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == [], f"contracts pulled in {bad}"
