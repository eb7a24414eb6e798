"""The package boundaries of issue 8: ``fleet`` never imports ``gateway`` and ``gateway`` never
imports ``fleet`` — tests included — both import ``contracts``; ``contracts`` and the shared
``testkit`` import neither.

Two checks, because each misses what the other sees:

- in a fresh interpreter (a subprocess, so modules imported by other tests cannot hide or
  fake an import), import every production module of one package and look at
  ``sys.modules``: this catches imports done by a dependency, at import time;
- statically (``ast``) over every ``.py`` file of the package, tests included: this catches
  imports inside functions, ``importlib.import_module("gateway…")`` / ``__import__`` with a
  literal name (the hidden probing the fleet used to do), and test files, which are never
  imported by the first check.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the top-level packages it must never load
FORBIDDEN = {
    "fleet": ("gateway",),
    "gateway": ("fleet",),
    "contracts": ("gateway", "fleet"),
    "testkit": ("gateway", "fleet"),
}


def _files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _production_modules(package: str) -> list[str]:
    names = []
    for path in _files(package):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if "tests" in parts or parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _loaded_after_import(modules: list[str]) -> list[str]:
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _is_under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def imports_of(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, module) of every import in ``source``: statements anywhere (functions included),
    and ``importlib.import_module`` / ``__import__`` / ``import_module`` called with a literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def _violations(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    out = []
    for path in _files(package):
        for line, module in imports_of(path.read_text(encoding="utf-8"), str(path)):
            if _is_under(module, forbidden):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_no_forbidden_package(package):
    modules = _production_modules(package)
    assert len(modules) >= 2, modules
    loaded = _loaded_after_import(modules)
    assert package in loaded
    assert [m for m in loaded if _is_under(m, FORBIDDEN[package])] == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_file_imports_a_forbidden_package_tests_included(package):
    assert any("tests" in p.parts for p in _files(package)) or package == "testkit"
    assert _violations(package) == []


def test_the_fixtures_every_tier_shares_import_neither_package():
    """The root conftest serves gateway, fleet and HIL tests alike (real Mosquitto, PostgreSQL)."""
    for path in (ROOT / "conftest.py",):
        bad = [m for _, m in imports_of(path.read_text(encoding="utf-8")) if _is_under(m, ("gateway", "fleet"))]
        assert bad == [], f"{path.name} imports {bad}"


def test_the_static_check_sees_hidden_imports():
    src = '''
import json
def later():
    from gateway.adapters import discovery
    import importlib
    importlib.import_module("gateway.config")
    mod = __import__("fleet.config")
    from .sibling import x
'''
    assert [m for _, m in imports_of(src)] == ["json", "gateway.adapters", "importlib", "gateway.config",
                                               "fleet.config"]
