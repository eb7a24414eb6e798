"""Domain modules import no database driver, paho or zeroconf; `fleet --help` stays light."""
from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("psycopg", "sqlite3", "paho", "zeroconf", "bleak", "serial")


@pytest.mark.parametrize("module", ["fleet.inventory", "fleet.installations", "fleet.access", "fleet.store",
                                    "fleet.cli", "fleet.demo"])
def test_domain_imports_no_driver(module):
    code = (f"import sys, {module}; bad = [m for m in {HEAVY!r} if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} pulls in {out}"


def test_help_does_not_import_drivers():
    code = ("import sys, contextlib, io\nfrom fleet.cli import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    build_parser().format_help()\n"
            f"print(','.join(m for m in {('psycopg', 'paho', 'zeroconf')!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
