"""firmware/build.py: per-role bundles with manifests that match their bytes, reproducible,
loadable by the device's unpacker on the real MicroPython interpreter."""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys

from firmware import build
from firmware.tests.mpy import FIRMWARE, run_mpy


def test_bundles_manifests_and_reproducibility(tmp_path):
    r = subprocess.run([sys.executable, str(FIRMWARE / "build.py"), "--version", "2.0.1", "--role", "button",
                        "--role", "door", "--role", "motion", "--out", str(tmp_path / "a"), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    manifests = json.loads(r.stdout)
    assert [m["role"] for m in manifests] == ["button", "door", "motion"]
    for m in manifests:
        data = (tmp_path / "a" / m["bundle"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == m["bundle_sha256"] and len(data) == m["bundle_size"]
        assert data[:4] == b"WTB1"
        n = struct.unpack("<H", data[4:6])[0]
        inner = json.loads(data[6:6 + n])
        assert inner["files"] == m["files"] and inner["version"] == "2.0.1"
        off = 6 + n
        for f in m["files"]:
            blob = data[off:off + f["size"]]
            assert hashlib.sha256(blob).hexdigest() == f["sha256"]
            assert (tmp_path / "a" / f"{m['role']}-2.0.1" / f["path"]).read_bytes() == blob
            off += f["size"]
        assert off == len(data)
        paths = [f["path"] for f in m["files"]]
        assert "main.mpy" not in paths and "hal/esp32.mpy" in paths and "lib/ota.mpy" in paths
        assert f"roles/{m['role']}.mpy" in paths
    assert "roles/door.mpy" in [f["path"] for f in manifests[2]["files"]]   # motion extends door
    assert "lib/dline.mpy" not in [f["path"] for f in manifests[0]["files"]]  # only the import closure
    # reproducible
    r2 = subprocess.run([sys.executable, str(FIRMWARE / "build.py"), "--version", "2.0.1", "--role", "button",
                         "--out", str(tmp_path / "b"), "--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(r2.stdout)[0] == manifests[0]
    assert (tmp_path / "b" / "button-2.0.1.wtb").read_bytes() == (tmp_path / "a" / "button-2.0.1.wtb").read_bytes()


def test_bad_arguments_are_named(tmp_path):
    r = subprocess.run([sys.executable, str(FIRMWARE / "build.py"), "--role", "toaster", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "role 'toaster'" in r.stderr and "choose one of" in r.stderr
    r = subprocess.run([sys.executable, str(FIRMWARE / "build.py"), "--version", "1 2", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "version '1 2'" in r.stderr


def test_device_unpacks_a_built_bundle_and_rejects_a_tampered_one(tmp_path):
    m = build.build_role("bed", "3.1.4", tmp_path, None)
    good = tmp_path / m["bundle"]
    bad = tmp_path / "bad.wtb"
    data = bytearray(good.read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    out = run_mpy(f"GOOD = {str(good)!r}\nBAD = {str(bad)!r}\nIMG = {str(tmp_path / 'u.img')!r}\n" + r'''
import os, json, ota
from hal.host import HostHal
hal = HostHal(flash=IMG, flash_blocks=128)
e1 = ota.unpack(GOOD, "/flash/s1")
files = sorted(os.listdir("/flash/s1/lib"))
e2 = ota.unpack(BAD, "/flash/s2")
print(json.dumps({"good": e1, "files": files, "bad": e2}))
''', heap="128k")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["good"] is None and "version.mpy" in r["files"] and "evq.mpy" in r["files"]
    assert r["bad"].startswith("hash mismatch")
