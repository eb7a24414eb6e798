"""OTA on the real MicroPython interpreter: a bundle built by firmware/build.py is sent
as OTA_BEGIN/CHUNK/END by a scripted gateway, verified, installed into the inactive
slot, booted on trial and confirmed - or rejected / rolled back, never bricking."""
from __future__ import annotations

import hashlib
import json
import struct

import pytest

from firmware import build
from firmware.tests.mpy import run_mpy

HEAP = "512k"  # up to three code slots get imported in one process across emulated reboots

DRIVER = r'''
import simdev, json, wire, struct, os
from hal.host import Reboot
BUNDLE = open(BUNDLE_PATH, "rb").read() if BUNDLE_PATH else b""

class OtaDriver:
    """Gateway side of an OTA: one frame at a time, waits for the device's ACK/ERROR."""
    def __init__(self, gw, data, sha, version="9.9.9", start_ms=5000, chunk=200, plan=None):
        self.gw, self.data, self.sha, self.version = gw, data, sha, version
        self.start, self.chunk = start_ms, chunk
        self.plan = plan or {}
        self.off = 0
        self.state = "wait"
        self.sent_seq = None
        self.replies = 0
        self.log = []
    def _reply(self):
        n = len(self.gw.of_type(wire.T_ACK)) + len(self.gw.of_type(wire.T_ERROR))
        if n > self.replies:
            self.replies = n
            return True
        return False
    def service(self, hal):
        t = hal.clock.t
        if self.state == "wait":
            if t < self.start:
                return self.start - t
            self.replies = len(self.gw.of_type(wire.T_ACK)) + len(self.gw.of_type(wire.T_ERROR))
            v = self.version.encode()
            self.gw.send(wire.T_OTA_BEGIN, struct.pack("<I", len(self.data)) + self.sha + bytes([len(v)]) + v + b"\x00")
            self.state = "begin"
            return 10
        if self.state in ("begin", "chunk"):
            if not self._reply():
                return 10
            cut = self.plan.get("reboot_at")
            if cut is not None and self.off >= cut:
                self.plan["reboot_at"] = None
                self.state = "done"
                raise Reboot(0)           # power cut in the middle of the transfer
            if self.off >= len(self.data) or self.off >= self.plan.get("stop_at", 1 << 30):
                self.gw.send(wire.T_OTA_END, b"")
                self.state = "end"
                return 10
            off = self.off
            if self.plan.get("skip_at") == off:
                off += self.chunk         # a lost chunk: the device must refuse the gap
                self.plan["skip_at"] = None
            piece = self.data[off:off + self.chunk]
            self.gw.send(wire.T_OTA_CHUNK, struct.pack("<I", off) + piece)
            if self.plan.get("dup_at") == off:
                self.gw.send(wire.T_OTA_CHUNK, struct.pack("<I", off) + piece)  # resent (ACK lost)
                self.replies += 1
                self.plan["dup_at"] = None
            self.off = off + len(piece) if off == self.off else self.off
            self.state = "chunk"
            return 10
        return None

def report(hal, gw):
    st = {}
    try:
        st = json.load(open(hal.data_dir + "/ota/state"))
    except OSError:
        pass
    hellos = [(f.payload[1], f.payload[7:].decode()) for f in gw.of_type(wire.T_HELLO)]
    status = [(f.payload[0], f.payload[2:].decode()) for f in gw.of_type(wire.T_OTA_STATUS)]
    errors = [(f.payload[0], f.payload[1:].decode()) for f in gw.of_type(wire.T_ERROR)]
    hb = [struct.unpack("<BHBIHHb", f.payload)[5] for f in gw.of_type(wire.T_HEARTBEAT)]
    import sys
    print(json.dumps({"hellos": hellos, "status": status, "errors": errors, "state": st, "boots": hal.boots,
                      "ota_loaded": "ota" in sys.modules,
                      "causes": hal.reset_causes, "events": [e[1] for e in gw.events], "rejects": hb,
                      "files": sorted(os.listdir(hal.data_dir + "/ota"))}))
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    m = build.build_role("button", "9.9.9", out, None)
    path = out / m["bundle"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == m["bundle_sha256"]
    return path, m


@pytest.fixture(scope="module")
def broken_bundle(tmp_path_factory):
    """A bundle whose role module crashes at import (a bad release)."""
    out = tmp_path_factory.mktemp("broken")
    files = build.compile_tree("button", "6.6.6", out / "tree", None)
    bad = out / "bad.py"
    bad.write_text("raise RuntimeError('bad release')\n")
    import subprocess
    subprocess.run([build.mpy_cross(), "-o", str(out / "bad.mpy"), str(bad)], check=True)
    files = [(p, (out / "bad.mpy").read_bytes() if p == "roles/button.mpy" else b) for p, b in files]
    data, _ = build.make_bundle("button", "6.6.6", files)
    path = out / "bad.wtb"
    path.write_bytes(data)
    return path


def run(tmp_path, body, bundle_path=None, end_ms=400000):
    script = (f"IMG = {str(tmp_path / 'ota.img')!r}\nBUNDLE_PATH = {str(bundle_path) if bundle_path else ''!r}\n"
              + DRIVER + f"END_MS = {end_ms}\n" + body)
    out = run_mpy(script, heap=HEAP, timeout=120).stdout.strip().splitlines()
    return json.loads(out[-1])


def test_good_update_is_verified_installed_booted_and_confirmed(tmp_path, bundle):
    path, m = bundle
    r = run(tmp_path, r'''
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 30, "confirm_s": 20}, end_ms=END_MS, flash_blocks=128)
import hashlib
drv = OtaDriver(gw, BUNDLE, hashlib.sha256(BUNDLE).digest(), plan={"dup_at": 400})
hal.peers.append(drv)
simdev.boot(hal)
report(hal, gw)
''', path)
    assert r["hellos"] == [[0, "0.1.0-dev"], [4, "9.9.9"]]         # soft reset into the new slot
    states = [s for s, _ in r["status"]]
    assert states == [1, 2, 3, 3, 4], r["status"]                   # receiving, verified, pending, (trial boot), committed
    assert r["status"][-1] == [4, "9.9.9"]
    assert r["state"]["active"] == "a" and r["state"]["pending"] is None
    assert r["state"]["sha"] == m["bundle_sha256"]
    assert "incoming" not in r["files"]
    assert r["errors"] == []
    assert r["ota_loaded"] is False          # OTA code dropped from RAM once committed


def test_wrong_hash_is_refused_and_old_firmware_keeps_running(tmp_path, bundle):
    path, _ = bundle
    r = run(tmp_path, r'''
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=END_MS, flash_blocks=128,
                      pins={"button": [(300000, 1), (300100, 0)]})
hal.peers.append(OtaDriver(gw, BUNDLE, b"\x11" * 32))
simdev.boot(hal)
report(hal, gw)
''', path)
    assert r["errors"] == [[7, "SHA-256 mismatch"]]
    assert r["status"][-1][0] == 6                                  # failed
    assert r["hellos"] == [[0, "0.1.0-dev"]] and r["boots"] == 1    # no reboot, old code running
    assert "incoming" not in r["files"] and r["state"] == {}
    assert r["events"] == [1]                                       # still delivers alarms
    assert r["ota_loaded"] is False                                 # OTA code dropped from RAM after the failure
    assert sum(r["rejects"]) >= 1                                   # counted in a heartbeat


def test_truncated_transfer_and_gaps_are_refused(tmp_path, bundle):
    path, _ = bundle
    r = run(tmp_path, r'''
import hashlib
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=200000, flash_blocks=128)
sha = hashlib.sha256(BUNDLE).digest()
hal.peers.append(OtaDriver(gw, BUNDLE, sha, plan={"skip_at": 1000, "stop_at": 4000}))
simdev.boot(hal)
report(hal, gw)
''', path)
    codes = [c for c, _ in r["errors"]]
    assert codes[0] == 8 and "expected offset 1000" in r["errors"][0][1]
    assert r["errors"][-1][0] == 8 and "truncated" in r["errors"][-1][1]
    assert r["hellos"] == [[0, "0.1.0-dev"]] and r["state"] == {}


def test_power_cut_during_transfer_boots_the_old_firmware(tmp_path, bundle):
    path, _ = bundle
    r = run(tmp_path, r'''
import hashlib
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=120000, flash_blocks=128)
hal.peers.append(OtaDriver(gw, BUNDLE, hashlib.sha256(BUNDLE).digest(), plan={"reboot_at": 6000}))
simdev.boot(hal)
report(hal, gw)
''', path)
    assert r["causes"] == [0]
    assert [v for _, v in r["hellos"]] == ["0.1.0-dev", "0.1.0-dev"]
    assert "incoming" not in r["files"]          # the partial download was discarded at boot


def test_bad_release_rolls_back_after_two_tries(tmp_path, broken_bundle):
    r = run(tmp_path, r'''
import hashlib
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=200000, flash_blocks=128)
hal.peers.append(OtaDriver(gw, BUNDLE, hashlib.sha256(BUNDLE).digest(), version="6.6.6"))
simdev.boot(hal)
report(hal, gw)
''', broken_bundle)
    assert [v for _, v in r["hellos"]] == ["0.1.0-dev", "0.1.0-dev"]
    assert r["causes"] == [4, 4, 4]              # OTA reboot, crash, crash -> rolled back
    assert r["status"][-1] == [5, "6.6.6"]        # rolled back reported to the gateway
    assert r["state"]["pending"] is None and r["state"].get("active") is None
