"""Sensor OTA on the bench: hand-made firmware bundles (e.g. a validly built image that crashes).

The OTA itself goes the production way (hil_tests/test_scenarios_ota.py): the fleet's signed
``ota`` command over MQTT, the ``gateway run`` daemon verifies the release and relays the
OTA frames of docs/protocol.md to the firmware. This module only builds bundles the release
tooling would not (a broken app module under a valid manifest).

Bundle container (firmware/lib/ota.py): ``b"WTB1"``, u16 manifest length, manifest JSON
``{"version", "role", "files": [{"path", "size", "sha256"}]}``, then the files' bytes.
"""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from pathlib import Path


def compile_mpy(source: str, name: str, workdir: Path) -> bytes:
    """``source`` compiled with mpy-cross (as the firmware is shipped)."""
    from firmware.tests.mpy import mpy_cross_bin

    d = workdir / "ota-build"
    d.mkdir(exist_ok=True)
    src = d / name
    src.write_text(source)
    out = src.with_suffix(".mpy")
    subprocess.run([mpy_cross_bin(), "-o", str(out), "-s", name, str(src)], check=True, capture_output=True)
    return out.read_bytes()


def build_bundle(files: dict[str, bytes], version: str, role: str) -> bytes:
    manifest = {"version": version, "role": role,
                "files": [{"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()]}
    m = json.dumps(manifest, separators=(",", ":")).encode()
    return b"WTB1" + struct.pack("<H", len(m)) + m + b"".join(files.values())
