"""Fall detector (firmware/lib/fall.py, fall_alert.py) on the real MicroPython interpreter,
with synthetic movements, plus a handful of SisFall trials through bench/fall_eval.py."""
from __future__ import annotations

import json
import math
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.tests.mpy import run_mpy

ROOT = Path(__file__).resolve().parents[2]
RATE = 50


def movement(kind: str, *, rate: int = RATE, impact_g: float = 4.0, seed: int = 1) -> list[tuple[int, int, int]]:
    """Milli-g samples: 5 s standing, the movement, 6 s after it."""
    rng = random.Random(seed)
    out = []

    def add(seconds, vec, noise=0.02):
        for _ in range(int(seconds * rate)):
            out.append(tuple(int(round((v + rng.gauss(0, noise)) * 1000)) for v in vec))

    add(5, (0.0, -1.0, 0.05))                       # upright (sensor y axis vertical)
    if kind in ("fall", "fall_then_walk", "fall_soft"):
        # falling (0.4 s, gravity turning, low g), impact, lying on the back (z vertical)
        n = int(0.4 * rate)
        for k in range(n):
            a = (k + 1) / n * math.pi / 2
            out.append((0, int(-400 * math.cos(a)), int(400 * math.sin(a))))
        g = impact_g if kind != "fall_soft" else 1.6
        out.append((int(g * 300), int(-g * 400), int(g * 860)))
        out.append((200, -300, 1900))
        if kind == "fall_then_walk":
            for k in range(int(6 * rate)):   # gets up at once and walks (not still)
                ph = 2 * math.pi * 2 * k / rate
                out.append((int(300 * math.sin(ph)), int(-1000 - 450 * math.sin(ph)), int(200 * math.cos(ph))))
        else:
            add(6, (0.05, 0.05, 1.0), 0.01)
    elif kind == "lie_down":                       # onto a bed: turns 90 deg, no impact
        for k in range(int(2 * rate)):
            a = (k + 1) / (2 * rate) * math.pi / 2
            out.append((0, int(-1000 * math.cos(a)), int(1000 * math.sin(a) + 150)))
        add(6, (0.05, 0.05, 1.0), 0.01)
    elif kind == "jump":                           # take-off, flight, landing upright
        add(0.3, (0.0, -1.6, 0.0))
        add(0.3, (0.0, -0.05, 0.0))
        out.append((100, -4200, 300))
        add(6, (0.0, -1.0, 0.05))
    elif kind == "sit":                            # sits down hard: impact, trunk tilts ~25 deg
        add(0.5, (0.0, -0.7, 0.1))
        out.append((0, -2600, 900))
        add(6, (0.0, -0.9, 0.42), 0.01)
    return out


SCRIPT = r'''
import json, sys, struct
from fall import FallDetector, FallConfigError
from fall_alert import FallAlert
def run(path, **kw):
    # stream int16 x,y,z samples from a file (the data never sits in the heap at once)
    d = FallDetector(**kw)
    hits = []
    i = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(6 * 64)
            if not b:
                break
            for k in range(0, len(b), 6):
                p = d.feed(*struct.unpack_from("<hhh", b, k))
                if p:
                    hits.append((i, p))
                i += 1
    return hits
'''


def mp(body: str, heap: str = "64k"):
    return json.loads(run_mpy(SCRIPT + body, heap=heap).stdout.strip().splitlines()[-1])


def samples_file(tmp_path, name: str, rows) -> str:
    p = tmp_path / f"{name}.bin"
    p.write_bytes(b"".join(struct.pack("<hhh", *r) for r in rows))
    return str(p)


def test_fall_is_detected_with_its_peak_and_daily_movements_are_not(tmp_path):
    kinds = ["fall", "lie_down", "jump", "sit", "fall_then_walk", "fall_soft", "stand"]
    data = {k: samples_file(tmp_path, k, movement(k)) for k in kinds}
    r = mp("data = %r\nprint(json.dumps({k: run(v) for k, v in data.items()}))" % data)
    assert len(r["fall"]) == 1
    i, peak = r["fall"][0]
    assert peak == pytest.approx(4.0 * math.sqrt(0.3 ** 2 + 0.4 ** 2 + 0.86 ** 2) * 100, abs=2)
    assert 5 * RATE + 20 + 3 * RATE - 5 <= i <= 5 * RATE + 20 + 3 * RATE + 5   # decided 3 s after the impact
    for k in ("lie_down", "jump", "sit", "fall_then_walk", "fall_soft", "stand"):
        assert r[k] == [], k


def test_placement_sets_thresholds_wrist_needs_a_harder_impact(tmp_path):
    data = samples_file(tmp_path, "f", movement("fall", impact_g=2.8))
    r = mp("s = %r\nprint(json.dumps([len(run(s, placement=p)) for p in (0, 1, 2)] + "
           "[len(run(s, placement=0, impact_mg=2500))]))" % data)
    assert r == [0, 1, 1, 1]   # wrist default 3.5 g misses a 2.8 g impact; an explicit impact_mg overrides


@pytest.mark.parametrize("rate", [25, 50, 100])
def test_detection_is_independent_of_the_sample_rate(rate, tmp_path):
    f = samples_file(tmp_path, "f", movement("fall", rate=rate))
    ld = samples_file(tmp_path, "l", movement("lie_down", rate=rate))
    r = mp("print(json.dumps([len(run(%r, rate_hz=%d)), len(run(%r, rate_hz=%d))]))" % (f, rate, ld, rate))
    assert r == [1, 0]


def test_invalid_detector_config_is_rejected_naming_the_key():
    r = mp(r'''
out = []
for kw in ({"rate_hz": 5}, {"placement": 7}, {"impact_mg": 500}, {"angle_deg": 120}, {"still_mg": 0}, {"rate_hz": 50.0}):
    try:
        FallDetector(**kw)
        out.append(None)
    except FallConfigError as e:
        out.append(str(e))
print(json.dumps(out))
''')
    for msg, key in zip(r, ("rate_hz", "placement", "impact_mg", "angle_deg", "still_mg", "rate_hz")):
        assert msg is not None and msg.startswith(key), (key, msg)


def test_cancel_window_cancel_in_time_late_cancel_and_expiry():
    r = mp(r'''
out = []
a = FallAlert(cancel_ms=20000)
out.append(a.suspect(350, 1000))          # window opens
out.append(a.suspect(420, 3000))          # joins the open window, keeps the higher peak
out.append(a.poll(20999))                 # not yet
out.append(a.cancel(15000))               # wearer cancels in time
out.append(a.poll(40000))                 # nothing left
b = FallAlert(cancel_ms=20000)
b.suspect(300, 0)
out.append(b.poll(20000))                 # expiry raises the alarm
c = FallAlert(cancel_ms=20000)
c.suspect(300, 0)
out.append(c.cancel(25000))               # too late: the alarm goes out, not a cancel
z = FallAlert(cancel_ms=0)
z.suspect(500, 7)
out.append(z.poll(7))
try:
    FallAlert(cancel_ms=-1)
    out.append("accepted")
except ValueError as e:
    out.append(str(e))
print(json.dumps(out))
''')
    assert r[0] is True and r[1] is False and r[2] is None
    assert r[3] == [0x11, 420] and r[4] is None
    assert r[5] == [0x10, 300] and r[6] == [0x10, 300] and r[7] == [0x10, 500]
    assert r[8].startswith("cancel_ms")


def test_detector_runs_in_a_small_heap_without_growing():
    r = mp(r'''
import gc
gc.collect()
before = gc.mem_free()
d = FallDetector(rate_hz=50)
gc.collect()
size = before - gc.mem_free()
for k in range(30000):
    d.feed(10 + k % 5, -1000 + k % 3, 40)
gc.collect()
print(json.dumps([size, before - gc.mem_free()]))
''', heap="24k")
    size, after = r
    assert size < 3000 and after - size < 200   # ~2 KB of state, nothing retained per sample


# -- SisFall: a few real trials through the bench (full evaluation: bench/fall_eval.py) -------------

TRIALS = ["F01_SA01_R01", "F05_SA02_R02", "F13_SA03_R01", "F08_SA01_R03",
          "D01_SA01_R01", "D19_SA02_R01", "D11_SA03_R02", "D07_SE01_R01"]


@pytest.fixture
def few_trials(sisfall_dir, tmp_path):
    d = tmp_path / "sis"
    d.mkdir()
    for name in TRIALS:
        src = sisfall_dir / name.split("_")[1] / f"{name}.txt"
        if not src.exists():
            pytest.skip(f"{src} not in the SisFall subset")
        (d / src.name).symlink_to(src)
    return d


def bench(*args) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "fall_eval.py"), *map(str, args)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_sisfall_trials_micropython_equals_cpython_and_detects(few_trials):
    mpy = bench(few_trials)
    cpy = bench(few_trials, "--cpython")
    for k in ("trials", "falls", "adls", "sensitivity", "specificity", "false_alarms_per_hour", "detected"):
        assert mpy[k] == cpy[k], k
    assert mpy["runtime"] == "micropython" and mpy["trials"] == 8 and mpy["falls"] == 4
    assert mpy["sensitivity"] >= 0.75 and mpy["specificity"] == 1.0


def test_sisfall_resampled_and_noisy_trials_still_detected(few_trials):
    r = bench(few_trials, "--rate", "25", "--noise-g", "0.03", "--rotate", "5", "--cpython")
    assert r["sensitivity"] >= 0.75 and r["specificity"] == 1.0


def test_generic_csv_layout_and_bad_dir(tmp_path):
    d = tmp_path / "gen"
    d.mkdir()
    for name, kind in (("FALL_s1_a.csv", "fall"), ("ADL_s1_b.csv", "lie_down"), ("ADL_s2_c.csv", "jump")):
        rows = movement(kind, rate=100)
        lines = ["t_s,ax_g,ay_g,az_g"] + [f"{i / 100:.3f},{x / 1000:.3f},{y / 1000:.3f},{z / 1000:.3f}"
                                           for i, (x, y, z) in enumerate(rows)]
        (d / name).write_text("\n".join(lines) + "\n")
    r = bench(d, "--placement", "chest")
    assert (r["trials"], r["falls"], r["adls"]) == (3, 1, 2)
    assert r["sensitivity"] == 1.0 and r["specificity"] == 1.0 and r["placement"] == "chest"
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "fall_eval.py"), str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a directory" in bad.stderr
    # a file in m/s^2 instead of g is named, with the fix
    (d / "ADL_s3_ms2.csv").write_text("t_s,ax_g,ay_g,az_g\n" + "".join(f"{i / 50},0,-9.81,0.2\n" for i in range(100)))
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "fall_eval.py"), str(d)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "ADL_s3_ms2.csv" in bad.stderr and "9.80665" in bad.stderr


def test_flush_decides_a_recording_cut_short_after_the_impact(tmp_path):
    rows = movement("fall")
    impact = 5 * RATE + 20                     # index of the impact sample
    long_cut = samples_file(tmp_path, "a", rows[:impact + int(2.3 * RATE)])   # 1.3 s observed
    short_cut = samples_file(tmp_path, "b", rows[:impact + int(1.6 * RATE)])  # 0.6 s observed
    r = mp(r'''
out = []
for path in (%r, %r):
    d = FallDetector()
    with open(path, "rb") as f:
        b = f.read()
    hits = [d.feed(*struct.unpack_from("<hhh", b, k)) for k in range(0, len(b), 6)]
    out.append([max(hits), d.flush(), d.flush()])
print(json.dumps(out))
''' % (long_cut, short_cut))
    assert r[0][0] == 0 and r[0][1] > 300 and r[0][2] == 0   # decided once, at the end
    assert r[1] == [0, 0, 0]                                  # too little seen: no decision


def test_bench_placement_defaults_match_the_firmware():
    import importlib.util

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    fw = load("fw_fall", ROOT / "firmware" / "lib" / "fall.py")
    bench_mod = load("bench_fall_eval", ROOT / "bench" / "fall_eval.py")
    assert tuple(bench_mod.PLACEMENT_DEFAULTS) == tuple(fw.THRESHOLDS)
