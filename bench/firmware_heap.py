#!/usr/bin/env python3
"""Heap use of every firmware role on the real MicroPython interpreter.

Each role's main loop runs for one simulated hour (host HAL, simulated clock,
realistic inputs: presses, bed in/out, door openings, dispenser schedule, a fall
recording, a 1 Hz NMEA walk) against the simulated gateway, under a heap cap
(`-X heapsize`). A probe samples the live heap (after gc.collect) every 250 ms of
simulated time and at every loop wake-up.

Variants (VARIANTS: "fall_chest" / "fall_wrist": the fall sensor worn as a pendant or a
wristband; "gps_modem": the tracker with a modem, at home) are reported in
"variants_peak_bytes", measured the same way.

With the fall role, the per-sample cost of each placement's detector is measured too
("fall_detector_us_per_sample", unix port, µs).

Prints one line per role and, as the LAST line, JSON:
  {"heapsize": "<cap>", "peak_bytes": {role: firmware peak}, "total_peak_bytes": {...},
   "harness_bytes": {...}, "word_bytes": 8, ...}

peak_bytes = peak live heap - heap held by the simulation harness (host HAL and
its littlefs mount, simulated gateway, emulators, this script), measured before
boot; the interpreter's own start-up heap and the wire codec (shared with the
simulated gateway, imported first) stay counted as firmware. The unix port
is 64-bit (8-byte object words), the ESP32 32-bit, so device figures are lower.
A run counts only if the role ran the whole hour without a MemoryError or a reset.

Besides, every role is run once more under a TRUE cap of --true-cap (default 64k)
that includes the harness (interpreter + host HAL + simulated gateway + firmware in
one 64 KB heap, so fragmentation and transient allocations count too); the JSON
says per role whether that run completed ("true_cap": {"heapsize", "completed"}).

    python bench/firmware_heap.py [--heap 64k] [--minutes 60] [--role button ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firmware.tests.mpy import FIRMWARE, run_mpy  # noqa: E402

CAPS = ("64k", "80k", "96k", "128k", "160k")

PROBE = r'''
import gc, json
gc.collect()
_BASE = gc.mem_alloc()
import wire                      # firmware, but the simulated gateway shares it: import it first
gc.collect()
_WIRE = gc.mem_alloc()
class Probe:
    def __init__(self):
        self.peak = 0
        self.last = -1000
        self.samples = 0
    def service(self, hal):
        t = hal.clock.t
        if t - self.last >= 250:
            self.last = t
            gc.collect()
            m = gc.mem_alloc()
            self.samples += 1
            if m > self.peak:
                self.peak = m
        return 250
'''

SETUP = {
    "button": r'''
presses = []
for k in range(6):                        # a press every 10 minutes, one long press (cancel)
    t = 60000 + k * 600000
    presses += [(t, 1), (t + (4000 if k == 3 else 200), 0)]
hal, gw = simdev.make(IMG, "button", {"heartbeat_s": 300}, end_ms=END, pins={"button": presses}, keep=())
''',
    "bed": r'''
tr = [(0, 8000)]
for k in range(4):
    t = 300000 + k * 900000
    tr += [(t, 29000), (t + 400000, 8200)]
hal, gw = simdev.make(IMG, "bed", {"seizure": True}, end_ms=END, adcs={"load": tr}, keep=())
''',
    "door": r'''
pins = []
for k in range(12):
    t = 120000 + k * 300000
    pins += [(t, 1), (t + 20000, 0)]
hal, gw = simdev.make(IMG, "door", {}, end_ms=END, pins={"door": pins}, keep=())
''',
    "motion": r'''
pins = []
for k in range(30):
    t = 60000 + k * 120000
    pins += [(t, 1), (t + 3000, 0)]
hal, gw = simdev.make(IMG, "motion", {"holdoff_s": 300}, end_ms=END, pins={"pir": pins}, keep=())
''',
    "dispenser": r'''
from hal.host import loop_pair
from dispenser_emu import DispenserEmulator
bridge, disp = loop_pair()
hal, gw = simdev.make(IMG, "dispenser", {}, end_ms=END, uarts={"dispenser": bridge}, keep=())
emu = DispenserEmulator(disp, schedule=((0, 10), (1, 30), (2, 50)), take_delay_min={0: 3, 2: 4}, doses=4,
                        refill_at=2, missed_after_min=15, script=[(1500000, "TAMPER"), (2500000, "ERR", 1)])
hal.peers.append(emu)
''',
    "fall": r'''
from hal.host import HostI2C
from drivers.replay import SampleFile, Lis3dhModel
bus = HostI2C({})
hal, gw = simdev.make(IMG, "fall", {"cancel_s": 20}, end_ms=END, i2c={"acc": bus}, keep=())
bus.devices[0x19] = Lis3dhModel(SampleFile(FALL_CSV, 50), hal.clock)
''',
    "gps": r'''
from drivers.replay import NmeaUart
hal, gw = simdev.make(IMG, "gps", {}, end_ms=END, keep=())
hal._uart_cfg["gps"] = NmeaUart(NMEA_LOG, hal.clock, 960)
''',
}

# Variants reported besides the roles (not part of "peak_bytes"): the GPS tracker with
# a modem, at home (the gateway acks, so no cellular session: only gps_cell is
# resident). The modem stays silent, so its boot self-test fails (one event).
VARIANTS = {
    # the fall sensor worn as a pendant / wristband (its own detector rules, same code)
    "fall_chest": r'''
from hal.host import HostI2C
from drivers.replay import SampleFile, Lis3dhModel
bus = HostI2C({})
hal, gw = simdev.make(IMG, "fall", {"cancel_s": 20, "placement": "pendant"}, end_ms=END, i2c={"acc": bus}, keep=())
bus.devices[0x19] = Lis3dhModel(SampleFile(FALL_CSV, 50), hal.clock)
''',
    "fall_wrist": r'''
from hal.host import HostI2C
from drivers.replay import SampleFile, Lis3dhModel
bus = HostI2C({})
hal, gw = simdev.make(IMG, "fall", {"cancel_s": 20, "placement": "wrist"}, end_ms=END, i2c={"acc": bus}, keep=())
bus.devices[0x19] = Lis3dhModel(SampleFile(FALL_CSV, 50), hal.clock)
''',
    "gps_modem": r'''
from drivers.replay import NmeaUart
class SilentModem:
    def read(self, n=-1):
        return None
    def write(self, b):
        return len(b)
    def any(self):
        return 0
hal, gw = simdev.make(IMG, "gps", {"modem": True, "cell_host": "broker.invalid"}, end_ms=END, keep=(),
                      uarts={"modem": SilentModem()})
hal._uart_cfg["gps"] = NmeaUart(NMEA_LOG, hal.clock, 960)
''',
}

RUN = r'''
gc.collect()
harness = gc.mem_alloc() - _WIRE   # host HAL, littlefs mount, simulated gateway, emulators, this script
probe = Probe()
hal.peers.append(probe)
hal.pin_history = 0              # LED/buzzer logs are harness memory
simdev.boot(hal)
gc.collect()
print(json.dumps({"peak": probe.peak, "harness": harness, "base": _BASE, "boots": hal.boots,
                  "causes": hal.reset_causes, "samples": probe.samples, "t": hal.clock.t,
                  "events": sum(1 for _ in gw.events), "frames": sum(gw.counts.values())}))
'''


def _nmea(body: str) -> str:
    c = 0
    for ch in body:
        c ^= ord(ch)
    return f"${body}*{c:02X}"


def nmea_walk(path: Path, seconds: int) -> None:
    """1 Hz GGA+RMC lines: a walk 1.2 m/s north from 59.9127 N 10.7461 E and back."""
    lines = []
    for s in range(seconds):
        d = (s % 1200) if (s // 1200) % 2 == 0 else 1200 - (s % 1200)
        lat = 59.9127 + d * 1.2 / 111320
        lat_deg = int(lat)
        lat_min = (lat - lat_deg) * 60
        hh, mm, ss = (8 + s // 3600) % 24, (s // 60) % 60, s % 60
        t = f"{hh:02d}{mm:02d}{ss:02d}.00"
        lat_s = f"{lat_deg:02d}{lat_min:07.4f}"
        lines.append(_nmea(f"GPGGA,{t},{lat_s},N,01044.7660,E,1,08,0.9,23.0,M,39.0,M,,"))
        lines.append(_nmea(f"GPRMC,{t},A,{lat_s},N,01044.7660,E,2.3,0.0,231126,,,A"))
    path.write_text("\r\n".join(lines) + "\r\n")


def fall_csv(path: Path) -> None:
    from firmware.tests.test_fall import movement
    rows = movement("fall", rate=100, impact_ms=100)   # a fall every placement's detector raises
    path.write_text("t_s,ax_g,ay_g,az_g\n" + "".join(
        f"{i / 100:.3f},{x / 1000:.3f},{y / 1000:.3f},{z / 1000:.3f}\n" for i, (x, y, z) in enumerate(rows)))


COST = r'''
import time, json, sys
from fall import FallDetector
import math
# 60 s at 50 Hz: walking (arm/trunk swing, peaks ~1.6 g), then a fall (free fall, 100 ms
# impact at 4 g, lying still), repeated; the detector's feed() timed, the loop subtracted
data = []
for k in range(3000):
    ph = k % 1000
    if ph < 700:
        s = math.sin(k / 4)
        data.append((int(300 * s), int(-1000 - 500 * s), int(150 * math.cos(k / 3))))
    elif ph < 720:
        data.append((0, -300, 200))
    elif ph < 725:
        data.append((1200, -1600, 3400))
    else:
        data.append((40, 60, 1000 + k % 3))
out = {}
for name, p in (("waist", 2), ("chest", 1), ("wrist", 0)):
    d = FallDetector(50, p)
    sys.modules.pop("fall_setup", None)
    t0 = time.ticks_us()
    for x, y, z in data:
        pass
    empty = time.ticks_diff(time.ticks_us(), t0)
    best = None
    for rep in range(3):
        t0 = time.ticks_us()
        for x, y, z in data:
            d.feed(x, y, z)
        us = time.ticks_diff(time.ticks_us(), t0) - empty
        best = us if best is None or us < best else best
    out[name] = round(best / len(data), 2)
print(json.dumps(out))
'''


def fall_cost() -> dict | None:
    """µs per sample of each placement's fall detector on the unix port (best of 3)."""
    p = run_mpy(COST, heap="2048k", check=False, timeout=300)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def run_role(role: str, heap: str, minutes: int, tmp: Path) -> dict | None:
    head = (f"IMG = {str(tmp / (role + '.img'))!r}\nEND = {minutes * 60000}\n"
            f"FALL_CSV = {str(tmp / 'fall.csv')!r}\nNMEA_LOG = {str(tmp / 'walk.nmea')!r}\n")
    script = head + PROBE + "import simdev\n" + {**SETUP, **VARIANTS}[role] + RUN
    p = run_mpy(script, heap=heap, check=False, timeout=900)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines or "MemoryError" in p.stdout:
        return None
    try:
        r = json.loads(lines[-1])
    except ValueError:
        return None
    if r["boots"] != 1 or r["t"] < minutes * 60000:
        return None
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heap", default=None, help="heap cap (default: the smallest of %s that every role fits)" % ", ".join(CAPS))
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--role", action="append")
    ap.add_argument("--true-cap", default="64k", help="heap cap including the harness for the 'true_cap' check")
    a = ap.parse_args(argv)
    roles = a.role or [r for r in SETUP if (FIRMWARE / "roles" / f"{r}.py").exists()]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        variants = [v for v in VARIANTS if v.split("_")[0] in roles]
        if "gps" in roles:
            nmea_walk(tmp / "walk.nmea", a.minutes * 60 + 60)
        if "fall" in roles:
            fall_csv(tmp / "fall.csv")
        caps = [a.heap] if a.heap else list(CAPS)
        results: dict[str, dict] = {}
        used = None
        for cap in caps:
            results = {}
            ok = True
            for role in roles:
                r = run_role(role, cap, a.minutes, tmp)
                if r is None:
                    print(f"{role:10s} heap {cap}: did not complete (MemoryError or reset)", file=sys.stderr)
                    ok = False
                    break
                results[role] = r
                print(f"{role:10s} heap {cap}: peak {r['peak']} B live, harness {r['harness']} B, "
                      f"firmware {r['peak'] - r['harness']} B, {r['events']} events, {r['frames']} frames, "
                      f"{r['samples']} samples", file=sys.stderr)
            if ok:
                used = cap
                break
        if used is None:
            print(json.dumps({"heapsize": caps[-1], "error": "some role did not complete under any cap",
                              "peak_bytes": {k: v["peak"] - v["harness"] for k, v in results.items()}}))
            return 1
        var = {}
        for v in variants:
            r = run_role(v, CAPS[-1], a.minutes, tmp)  # (boot loads the modem code for its self-test)
            var[v] = None if r is None else r["peak"] - r["harness"]
            print(f"{v:10s} (variant): firmware {var[v]} B, {r['events'] if r else '-'} events", file=sys.stderr)
        capped = {}
        for role in roles:
            r = run_role(role, a.true_cap, a.minutes, tmp)
            capped[role] = r is not None
            print(f"{role:10s} true cap {a.true_cap} (harness included): "
                  f"{'completed' if r else 'did not complete'}", file=sys.stderr)
    out = {
        "heapsize": used,
        "peak_bytes": {k: v["peak"] - v["harness"] for k, v in results.items()},
        "total_peak_bytes": {k: v["peak"] for k, v in results.items()},
        "harness_bytes": {k: v["harness"] for k, v in results.items()},
        "minutes": a.minutes,
        "word_bytes": 8,
        "target_bytes": 65536,
        "true_cap": {"heapsize": a.true_cap, "completed": capped},
        "variants_peak_bytes": var,
    }
    if "fall" in roles:
        out["fall_detector_us_per_sample"] = cost = fall_cost()
        print(f"fall detector cost (unix port): {cost} us/sample; at 50 Hz on the ESP32 budget "
              "the radio and the button path keep their time (docs/fall-detection.md)", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
