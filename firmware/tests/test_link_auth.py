"""Downlink authentication of a keyed device (issue 10 F7), on the real MicroPython
interpreter: a simulated button device (host HAL, simulated clock) against tools/simgw.py,
with an attacker writing forged frames into the same link.

Every downlink frame to a device with a key must carry a valid tag, ERROR included, and
the replay window (in RAM, and the ``dlseq`` file in flash) moves only after the tag has
verified. Before the fix one unauthenticated ERROR with seq 0xFFFFFFFF moved the window to
the top and saved it: every later ACK, FEEDBACK, TIME, CONFIG and OTA frame of the real
gateway was a "replay" for good, so the device re-sent its alarm forever."""
from __future__ import annotations

import pytest

import json
import random

from firmware.tests.mpy import run_mpy

HEAP = "128k"

# Records the App (and so its Link) for inspection; main.boot() does not purge an already
# imported app module on the first boot (no OTA slot).
_SPY = r'''
import app as _app_mod
APPS = []
_init = _app_mod.App.__init__
def _spy_init(self, *a):
    _init(self, *a)
    APPS.append(self)
_app_mod.App.__init__ = _spy_init
def dlseq_file(hal):
    import store
    b = store.read_checked(hal.data_dir + "/dlseq")
    return None if b is None else b.hex()
def forged(dev, t, flags, seq, payload, tag=b""):
    # a frame as an attacker writes it (any flags, any tag, a valid CRC)
    import struct
    b = struct.pack("<BBB", 1, t, flags) + dev + struct.pack("<IH", seq, len(payload)) + payload + tag
    b += struct.pack("<H", wire.crc16(b))
    return wire.cobs_encode(b) + b"\x00"
'''


def mp(script: str, tmp_path, heap: str = HEAP) -> dict:
    script = f"IMG = {str(tmp_path / 'flash.img')!r}\nimport wire\n" + _SPY + script
    out = run_mpy(script, heap=heap, timeout=120).stdout.strip().splitlines()
    assert "Traceback" not in "\n".join(out), "\n".join(out)
    return json.loads(out[-1])


@pytest.mark.security
def test_F7_forged_error_with_top_seq_is_refused_counted_and_the_next_genuine_ack_accepted(tmp_path):
    r = mp(r'''
import simdev, json, struct
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 60}, end_ms=90000,
                      pins={"button": [(20000, 1), (20100, 0)]})
seen = {}
class Attacker:
    done = False
    def service(self, hal):
        if self.done:
            return None
        if hal.clock.t < 5000:
            return 5000 - hal.clock.t
        self.done = True
        seen["before"] = dlseq_file(hal)
        dev = hal.device_id()
        u = gw.uart
        # F7: anyone in radio range, no pairing: ERROR, DOWNLINK flag, no AUTH, seq 0xFFFFFFFF
        u.write(forged(dev, wire.T_ERROR, wire.F_DOWNLINK, 0xFFFFFFFF, wire.error_payload(wire.E_BAD_FRAME, "x")))
        # ... an ERROR 3 that would push the device's own counter to the top of the u32 range
        u.write(forged(dev, wire.T_ERROR, wire.F_DOWNLINK, 0xFFFFFFFE,
                       wire.error_payload(wire.E_REPLAY, "seq=1 highest=4294967200")))
        # ... the AUTH flag with a made-up tag
        u.write(forged(dev, wire.T_ERROR, wire.F_DOWNLINK | wire.F_AUTH, 0xFFFFFFFD, b"\x01", b"\xa5" * 8))
        return None
hal.peers.append(Attacker())
simdev.boot(hal)
app = APPS[0]
print(json.dumps({"reasons": app.link.reasons, "highest": app.link.window.highest,
                  "before": seen["before"], "after": dlseq_file(hal),
                  "events": [(s, c) for s, c, a, d in gw.events], "sent": gw.counts.get(1, 0),
                  "queue": len(app.queue), "seq": app.seq.peek(), "rejects_hb": sum(
                      struct.unpack("<BHBIHHb", f.payload)[5] for f in gw.of_type(3))}))
''', tmp_path)
    assert r["reasons"] == {"unauthenticated": 2, "bad_auth": 1}, r     # refused and counted
    assert r["rejects_hb"] == 3                                         # ... and reported in a heartbeat
    assert r["before"] == r["after"]                                    # the flash window did not move
    assert r["highest"] < 100                                           # nor the one in RAM
    assert [c for _, c in r["events"]] == [0x01]                        # the alarm arrived
    assert r["sent"] == 1 and r["queue"] == 0                           # the gateway's genuine ACK was taken
    assert r["seq"] < 100                                               # the forged ERROR 3 moved nothing


def _forgeries(n: int, seed: int) -> list[list]:
    """[type, flags, seq, payload hex, tag mode] of every downlink type: no AUTH (0), AUTH with
    a random tag (1), AUTH with a tag under another key (2); the DOWNLINK flag mostly set."""
    rng = random.Random(seed)
    types = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x7F]
    seqs = [0xFFFFFFFF, 0xFFFFFFFE, 0x80000000, 1, 2, 3, 4, 5, 64, 65, 1000]
    out = []
    for i in range(n):
        t = types[i % len(types)]
        seq = rng.choice(seqs) if rng.random() < 0.6 else rng.randrange(1, 1 << 32)
        if t == 0x02 and rng.random() < 0.7:          # a well-formed ACK STORED of a pending event
            payload = (rng.randrange(1, 12)).to_bytes(4, "little") + b"\x00"
        elif t == 0x0C:
            payload = rng.randrange(1 << 32).to_bytes(4, "little")
        elif t == 0x7F and rng.random() < 0.5:
            payload = b"\x03" + f"seq={rng.randrange(1, 12)} highest={rng.randrange(1 << 32)}".encode()
        elif t == 0x06 and rng.random() < 0.5:
            payload = b"\x09\x00\x00\x00" + json.dumps({"heartbeat_s": 10, "queue_max": 1}).encode()
        else:
            payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 5, 13, 40, 200])))
        flags = 4 if rng.random() < 0.9 else rng.choice([0, 1, 5])
        out.append([t, flags, seq, payload.hex(), i % 3])
    return out


@pytest.mark.security
def test_F7_no_unauthenticated_downlink_of_any_type_changes_the_persisted_window(tmp_path):
    # The gateway does not see events during the attack (its uplink side is lossy), so the
    # alarm is pending while forged ACK STORED frames for seqs 1..11 arrive: none may remove it.
    f = tmp_path / "forged.json"
    forged_frames = _forgeries(390, 2026)
    f.write_text(json.dumps(forged_frames))
    r = mp(f"FILE = {str(f)!r}\n" + r'''
import simdev, json, struct
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 30}, end_ms=200000,
                      pins={"button": [(3000, 1), (3100, 0)]})
gw.ack_events = False
todo = json.load(open(FILE))
snap = {"files": [], "windows": []}
def state(app):
    w = app.link.window
    return [w.highest, w.bits]
class Attacker:
    def service(self, hal):
        t = hal.clock.t
        if t < 10000:
            return 10000 - t
        if not todo:
            if "end" not in snap:
                snap["end"] = [dlseq_file(hal), state(APPS[0])]
                gw.ack_events = True      # the uplink heals: the alarm is delivered now
            return None
        if "start" not in snap:
            snap["start"] = [dlseq_file(hal), state(APPS[0])]
        dev = hal.device_id()
        other = wire.Auth(b"\x55" * 16)
        for _ in range(10):
            if not todo:
                break
            ty, flags, seq, p, mode = todo.pop(0)
            p = bytes.fromhex(p)
            if mode == 0:
                gw.uart.write(forged(dev, ty, flags & ~wire.F_AUTH, seq, p))
            elif mode == 1:
                gw.uart.write(forged(dev, ty, flags | wire.F_AUTH, seq, p, bytes((seq * 7 + k) & 0xFF for k in range(8))))
            else:
                b = bytearray(wire.encode_body(ty, flags, dev, seq, p, other))
                gw.uart.write(wire.cobs_encode(b) + b"\x00")
        snap["files"].append(dlseq_file(hal))
        snap["windows"].append(state(APPS[0]))
        return 200
hal.peers.append(Attacker())
simdev.boot(hal)
app = APPS[0]
print(json.dumps({"snap": snap, "reasons": app.link.reasons, "boots": hal.boots,
                  "events": [c for s, c, a, d in gw.events], "queue": len(app.queue), "seq": app.seq.peek()}))
''', tmp_path, heap="256k")   # harness + the 390 queued forgeries
    snap = r["snap"]
    start_file, start_window = snap["start"]
    assert all(x == start_file for x in snap["files"]), "an unauthenticated frame changed the flash window"
    assert all(w == start_window for w in snap["windows"]), "an unauthenticated frame moved the window in RAM"
    assert snap["end"] == [start_file, start_window]
    assert sum(r["reasons"].values()) == len(forged_frames), r["reasons"]    # each one counted once
    assert set(r["reasons"]) <= {"unauthenticated", "bad_auth"}, r["reasons"]
    assert r["boots"] == 1
    assert r["events"] == [0x01] and r["queue"] == 0     # no forged ACK removed the pending alarm
    assert r["seq"] < 100                                # no forged ERROR 3 moved the counter
