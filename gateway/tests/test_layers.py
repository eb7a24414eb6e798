"""The gateway's layers, checked in a fresh interpreter (docs/architecture.md, "Layers").

- ``gateway.domain`` and ``gateway.codec`` import no I/O library: no paho, bleak, pyserial,
  zeroconf, dbus, sqlite3, psycopg, HTTP client or server.
- Production code (domain, codec, config, adapters, daemon, the CLI) never imports the
  testing kit ``gateway.testing``; only the ``demo`` and ``console`` commands load it, lazily.

Each check runs in a subprocess so that modules imported by other tests cannot hide an
import (or fake one).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

IO_LIBRARIES = ("paho", "bleak", "serial", "zeroconf", "dbus_fast", "sqlite3", "_sqlite3", "psycopg",
                "http.server", "http.client", "urllib.request")


def _modules_under(package: str) -> list[str]:
    base = ROOT / package.replace(".", "/")
    names = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if "tests" in parts or parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _loaded_after_import(modules: list[str]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _hits(loaded: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]


def test_domain_and_codec_import_no_io_library():
    modules = _modules_under("gateway.domain") + _modules_under("gateway.codec")
    assert "gateway.domain.forwarder" in modules and "gateway.domain.rules.care" in modules
    assert _hits(_loaded_after_import(modules), IO_LIBRARIES) == []


@pytest.mark.parametrize("layer", ["gateway.domain", "gateway.codec", "gateway.config", "gateway.adapters",
                                   "gateway.daemon"])
def test_production_code_never_imports_the_testing_kit(layer):
    modules = _modules_under(layer)
    assert modules, layer
    assert _hits(_loaded_after_import(modules), ("gateway.testing",)) == []


def test_cli_loads_the_testing_kit_only_for_demo_and_console():
    loaded = _loaded_after_import(["gateway.cli"] + [m for m in _modules_under("gateway.cli")
                                                     if m.rsplit(".", 1)[-1] not in ("demo", "console")])
    assert _hits(loaded, ("gateway.testing",)) == []


def test_the_check_itself_sees_a_forbidden_import():
    # guards the helpers above: a check that never sees a forbidden module proves nothing
    loaded = _loaded_after_import(["gateway.adapters.mqtt"])
    assert _hits(loaded, IO_LIBRARIES), "paho must show up when the MQTT adapter is imported"
