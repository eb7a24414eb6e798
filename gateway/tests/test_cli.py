"""The `gateway` command line itself: every listed command loads, or the CLI says which did not."""
from __future__ import annotations

import subprocess
import sys

import pytest

import gateway.cli as cli
from gateway.tests._kit import GATEWAY_EXE


def test_every_listed_command_registers_a_subcommand():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)


def test_a_missing_command_module_fails_loudly(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + ("nosuchcommand",))
    with pytest.raises(cli.CommandImportError) as err:
        cli.build_parser()
    assert err.value.command == "nosuchcommand" and "gateway.cli.nosuchcommand" in str(err.value)
    assert isinstance(err.value.cause, ModuleNotFoundError)


def test_a_command_module_that_breaks_on_import_fails_loudly(monkeypatch):
    real = cli.importlib.import_module

    def broken(name, *a, **kw):
        if name == "gateway.cli.status":
            raise ImportError("cannot import name 'fetch_status' from 'gateway.adapters.status'")
        return real(name, *a, **kw)

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    with pytest.raises(cli.CommandImportError, match="'status'.*fetch_status"):
        cli.main(["--version"])


def test_installed_script_lists_every_command():
    r = subprocess.run([GATEWAY_EXE, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in cli.COMMANDS)
    r = subprocess.run([sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
