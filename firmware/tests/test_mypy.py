"""The firmware type-checks against the MicroPython ESP32 stubs (micropython-esp32-stubs +
micropython-stdlib-stubs as typeshed), so an API that does not exist on the device
(a CPython-only call, a wrong machine.Pin argument) fails CI.

Checked: every firmware module that runs on the device or the unix port (lib/, hal/,
roles/, drivers/, tools/, main.py, host_main.py). Choices, each narrow:
- errors *inside* the stub files are ignored (they are third-party and have a few
  self-inconsistencies, e.g. overloads mypy flags as unreachable);
- ``termios`` (unix port only, host HAL's pty) and ``tty``/``argparse`` (the CPython
  entry point of tools/dispenser_emu.py) have no MicroPython ESP32 stubs:
  ignore_missing_imports for exactly those names;
- fw-sensing's modules carry a CPython fallback for ``const``/``ticks_*``
  (``try: from micropython import const / except ImportError: def const(x)``) so
  they also run on CPython; mypy reports the conditional redefinition
  ([misc]/[no-redef]) - those two codes are disabled for exactly those modules.
firmware/build.py (a CPython tool) is checked with the normal typeshed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firmware.tests.mpy import FIRMWARE

SP = Path(sys.executable).resolve().parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
# CPython-compatibility shims (see module docstring)
_SHIMMED = ("nmea", "geofence", "fall", "fall_alert", "fall_setup", "modem", "modem_mqtt")


def _dist(prefix: str) -> Path:
    for base in [Path(p) for p in sys.path if p.endswith("site-packages")] + [SP]:
        hits = sorted(base.glob(prefix + "-*.dist-info"))
        if hits:
            return hits[-1]
    pytest.fail(f"{prefix} not installed: pip install -e .[dev] (it provides the MicroPython stubs)")


def _stub_dir(tmp: Path) -> tuple[Path, Path, list[str]]:
    """A MYPYPATH dir with the ESP32 stub modules only (site-packages itself can't be on MYPYPATH)."""
    esp = _dist("micropython_esp32_stubs")
    std = _dist("micropython_stdlib_stubs")
    site = esp.parent
    out = tmp / "stubs"
    out.mkdir()
    names = set()
    for rec in (esp / "RECORD", std / "RECORD"):
        for line in rec.read_text().splitlines():
            top = line.split(",")[0].split("/")[0]
            if not top or top.endswith(".dist-info") or top == "stdlib" or top.startswith(".."):
                continue
            if (site / top).exists() and not (out / top).exists():
                (out / top).symlink_to(site / top)
                names.add(top[:-4] if top.endswith(".pyi") else top)
    return out, site, sorted(names)


def test_firmware_type_checks_against_micropython_esp32_stubs(tmp_path):
    stubs, site, names = _stub_dir(tmp_path)
    assert {"machine", "esp32", "micropython"} <= set(names)
    assert (site / "stdlib" / "builtins.pyi").exists(), "micropython-stdlib-stubs missing"
    ignore = ",".join(n + "," + n + ".*" for n in names)
    cfg = tmp_path / "mypy.ini"
    cfg.write_text(
        "[mypy]\nexplicit_package_bases = True\nno_site_packages = True\n"
        f"[mypy-{ignore}]\nignore_errors = True\n"
        "[mypy-termios,tty,argparse]\nignore_missing_imports = True\n"
        f"[mypy-{','.join(_SHIMMED)}]\ndisable_error_code = misc, no-redef\n")
    files = sorted(str(p.relative_to(FIRMWARE)) for d in ("lib", "hal", "roles", "drivers", "tools")
                   for p in (FIRMWARE / d).glob("*.py"))
    files += ["main.py", "host_main.py"]
    env_path = f"{stubs}:{FIRMWARE / 'lib'}:{FIRMWARE}:{FIRMWARE / 'tools'}"
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(cfg), "--custom-typeshed-dir", str(site),
                        "--cache-dir", str(tmp_path / "cache"), *files],
                       cwd=FIRMWARE, capture_output=True, text=True, env={"MYPYPATH": env_path, "PATH": "/usr/bin:/bin"},
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"in {len(files)} source files" in r.stdout


def test_build_tool_type_checks(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "--ignore-missing-imports",
                        str(FIRMWARE / "build.py")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
