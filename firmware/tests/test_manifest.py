"""firmware/manifest.py (the frozen ESP32 image): device code only, all of it.

The manifest is executed the way MicroPython's makemanifest does (current directory = the
manifest's, ``include``/``freeze`` as globals) with recording stand-ins; what it freezes is
compared with the import closure of every role (firmware/build.py's ``role_sources``).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]
# modules that run on the host only: the gateway side of the codec, the host HAL, the sample
# replay driver, the tools and tests
HOST_ONLY = {"lib/wire_gw.py", "hal/host.py", "drivers/replay.py"}


def frozen_files() -> set[str]:
    frozen: set[str] = set()

    def freeze(path: str, script=None, opt=None) -> None:
        base = Path(path)
        if script is None:
            names = [str(p.relative_to(base)) for p in base.rglob("*.py")]
        else:
            names = [script] if isinstance(script, str) else list(script)
        for name in names:
            f = (base / name).resolve()
            assert f.is_file(), f"manifest freezes {name!r} under {path!r}: no such file"
            frozen.add(str(f.relative_to(FIRMWARE)))

    def include(path: str, **kwargs) -> None:
        assert path == "$(PORT_DIR)/boards/manifest.py", f"unexpected include {path!r}"

    cwd = os.getcwd()
    os.chdir(FIRMWARE)
    try:
        exec((FIRMWARE / "manifest.py").read_text(), {"freeze": freeze, "include": include})
    finally:
        os.chdir(cwd)
    return frozen


def device_closure() -> set[str]:
    spec = importlib.util.spec_from_file_location("firmware_build", FIRMWARE / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    out = {"lib/version.py"}        # generated per build, imported by every role
    for role in build.ROLES:
        out |= {str(p.resolve().relative_to(FIRMWARE)) for p in build.role_sources(role)}
    return out


def test_manifest_freezes_no_host_only_module():
    frozen = frozen_files()
    assert not frozen & HOST_ONLY, sorted(frozen & HOST_ONLY)
    assert not {f for f in frozen if f.startswith(("tools/", "tests/"))}
    assert (FIRMWARE / "lib" / "wire_gw.py").exists()          # still there for the host


def test_manifest_freezes_exactly_the_device_code():
    frozen, closure = frozen_files(), device_closure()
    assert not closure & HOST_ONLY, sorted(closure & HOST_ONLY)   # no role imports host code
    assert frozen - closure == set(), "frozen but no role imports it (host-only? dead?)"
    assert closure - frozen == set(), "a role imports it but the image does not freeze it"
