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


def movement(kind: str, *, rate: int = RATE, impact_g: float = 4.0, seed: int = 1,
             impact_ms: int = 0, after=(0.05, 0.05, 1.0)) -> list[tuple[int, int, int]]:
    """Milli-g samples: 5 s standing, the movement, 6 s after it (``impact_ms``: the fall's
    impact lasts that long instead of one sample: a hand or arm hitting the floor;
    ``after``: the posture it ends in, lying on the back by default; worn at the wrist,
    x is the forearm axis: x ~ 0 the forearm lies flat, |x| ~ 1 g the arm hangs)."""
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
        for _ in range(max(1, impact_ms * rate // 1000)):
            out.append((int(g * 300), int(-g * 400), int(g * 860)))
        out.append((200, -300, 1900))
        if kind == "fall_then_walk":
            for k in range(int(6 * rate)):   # gets up at once and walks (not still)
                ph = 2 * math.pi * 2 * k / rate
                out.append((int(300 * math.sin(ph)), int(-1000 - 450 * math.sin(ph)), int(200 * math.cos(ph))))
        else:
            add(6, after, 0.01)
    elif kind in ("lie_down", "bed_slap"):         # onto a bed: turns 90 deg, no impact
        for k in range(int(2 * rate)):
            a = (k + 1) / (2 * rate) * math.pi / 2
            out.append((0, int(-1000 * math.cos(a)), int(1000 * math.sin(a) + 150)))
        if kind == "bed_slap":                     # ...and the hand slaps the mattress (one 4 g sample)
            out.append((int(impact_g * 300), int(-impact_g * 400), int(impact_g * 860)))
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


def test_placement_selects_its_detector_rules(tmp_path):
    # a fall with a real impact (100 ms at 4 g after a free-fall phase) alarms everywhere.
    # Lying down on a bed (no free fall) with a hand slap of one 2.3 g sample only alarms
    # the waist detector (today's rules: impact, turn, still): the pendant needs the free
    # fall below 2.5 g, the wristband a 3 g impact and the impact's velocity change. A
    # 4 g slap is hard enough for the pendant, still not a wristband fall (one sample).
    fall = samples_file(tmp_path, "f", movement("fall", impact_ms=100))
    slap = samples_file(tmp_path, "s", movement("bed_slap", impact_g=2.3))
    hard = samples_file(tmp_path, "h", movement("bed_slap", impact_g=4.0))
    soft = samples_file(tmp_path, "w", movement("fall", impact_g=2.8, impact_ms=100))
    r = mp("""
f, s, h, w = %r, %r, %r, %r
out = [[len(run(x, placement=p)) for p in (0, 1, 2)] for x in (f, s, h)]
out.append([len(run(w, placement=0)), len(run(w, placement=0, impact_mg=2500))])
out.append([[d.impact_mg, d.freefall_mg, d.impulse_mgs] for d in (FallDetector(placement=p) for p in (0, 1, 2))])
print(json.dumps(out))""" % (fall, slap, hard, soft))
    assert r[0] == [1, 1, 1]
    assert r[1] == [0, 0, 1]
    assert r[2] == [0, 1, 1]
    assert r[3] == [0, 1]     # wrist default 3 g misses a 2.8 g impact; an explicit impact_mg overrides
    assert r[4] == [[3000, 0, 150], [2000, 600, 0], [2000, 0, 0]]


def test_wrist_needs_the_forearm_to_come_to_rest_low(tmp_path):
    # the same hard impact and turn, ending with the forearm flat (lying on the floor), at
    # 40 deg (propped on an elbow), hanging down, or pointing up (a hand propped on a
    # mattress): the wristband raises the first two only; the rule looks at |x| (either
    # wrist), is a wrist rule only, and arm_deg=0 switches it off
    postures = {"flat": (0.05, 0.05, 1.0), "propped": (0.64, 0.05, 0.77), "hanging": (0.97, 0.2, 0.1),
                "hanging_left": (-0.97, -0.2, 0.1), "hand_up": (-0.9, 0.1, 0.42)}
    files = {k: samples_file(tmp_path, k, movement("fall", impact_ms=100, after=v)) for k, v in postures.items()}
    r = mp("""
files = %r
out = {}
for k, f in files.items():
    out[k] = [len(run(f, placement=0)), len(run(f, placement=0, arm_deg=0)), len(run(f, placement=2))]
print(json.dumps([out, FallDetector(placement=0)._sin1024, FallDetector(placement=2)._sin1024]))""" % files)
    out, sin_wrist, sin_waist = r
    assert out == {"flat": [1, 1, 1], "propped": [1, 1, 1], "hanging": [0, 1, 1], "hanging_left": [0, 1, 1],
                   "hand_up": [0, 1, 1]}, out
    assert sin_wrist == 887 and sin_waist == 0     # sin 60 deg * 1024; no forearm rule at the waist


def test_last_rule_says_why_a_candidate_was_not_raised(tmp_path):
    cases = {"hanging": (movement("fall", impact_ms=100, after=(0.97, 0.2, 0.1)), 0, 6),
             "soft": (movement("bed_slap", impact_g=4.0), 0, 5),
             "no_dip": (movement("bed_slap", impact_g=2.3), 1, 3),
             "walk_on": (movement("fall_then_walk"), 2, 1),     # upright again: no posture change
             "fall": (movement("fall", impact_ms=100), 0, 0)}
    files = {k: (samples_file(tmp_path, k, rows), p) for k, (rows, p, _) in cases.items()}
    r = mp("""
out = {}
for k, (f, p) in %r.items():
    d = FallDetector(placement=p)
    with open(f, "rb") as fh:
        b = fh.read()
    for i in range(0, len(b), 6):
        d.feed(*struct.unpack_from("<hhh", b, i))
    out[k] = [d.candidates > 0, d.last_rule]
print(json.dumps(out))""" % files)
    assert r == {k: [True, want] for k, (_, _, want) in cases.items()}, r


def test_wrist_decides_after_its_longer_settling_and_reports_confidence(tmp_path):
    f = samples_file(tmp_path, "f", movement("fall", impact_ms=100))
    r = mp("""
out = []
for p in (0, 2):
    d = FallDetector(placement=p)
    h = run(%r, placement=p)
    out.append([h, d.confidence])
d = FallDetector(placement=0)
with open(%r, "rb") as fh:
    b = fh.read()
for k in range(0, len(b), 6):
    if d.feed(*struct.unpack_from("<hhh", b, k)):
        out.append(d.confidence)
print(json.dumps(out))""" % (f, f))
    impact_end = 5 * RATE + 20 + 5       # last impact sample
    (wrist_hits, _), (waist_hits, _), conf = r
    assert len(wrist_hits) == 1 and len(waist_hits) == 1
    assert abs(wrist_hits[0][0] - (impact_end + 5 * RATE)) <= 3    # settle 3 s + observe 2 s
    assert abs(waist_hits[0][0] - (impact_end + 3 * RATE)) <= 3    # settle 1 s + observe 2 s
    assert 50 <= conf <= 100


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
    # every placement's detector (state ~1.6 KB; its construction and confidence code
    # are dropped from sys.modules as the role does); a stream with impacts, falls and
    # stillness retains nothing per sample
    r = mp(r'''
import gc, sys
def one(p):
    gc.collect()
    before = gc.mem_free()
    d = FallDetector(rate_hz=50, placement=p)
    sys.modules.pop("fall_setup", None)
    gc.collect()
    size = before - gc.mem_free()
    hits = 0
    for k in range(30000):
        ph = k % 1500
        if ph < 250:
            v = (10 + k % 5, -1000 + k % 3, 40)           # upright
        elif ph < 270:
            v = (0, -300, 200)                             # falling
        elif ph < 275:
            v = (1200, -1600, 3400)                        # impact (100 ms)
        else:
            v = (50, 50, 1000 + k % 3)                     # lying still
        if d.feed(*v):
            hits += 1
            sys.modules.pop("fall_conf", None)
    gc.collect()
    return [size, before - gc.mem_free(), hits]
out = []
for p in (0, 1, 2):
    out.append(None)
    gc.collect()
    out[-1] = one(p)
print(json.dumps(out))
''', heap="24k")
    for size, after, hits in r:
        assert size < 2500 and after - size < 200, r   # nothing retained per sample
        assert hits == 20, r                            # every fall in the stream detected


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
    # a file in m/s^2 instead of g is skipped with the reason and the fix; the rest is evaluated
    (d / "ADL_s3_ms2.csv").write_text("t_s,ax_g,ay_g,az_g\n" + "".join(f"{i / 50},0,-9.81,0.2\n" for i in range(400)))
    r = bench(d)
    assert r["trials"] == 3
    assert [(e["trial"], "9.80665" in e["reason"]) for e in r["skipped"]] == [("ADL_s3_ms2.csv", True)]
    # nothing left to evaluate: exit 2, naming a skipped trial and its reason
    only = tmp_path / "only"
    only.mkdir()
    (only / "ADL_s3_ms2.csv").write_text((d / "ADL_s3_ms2.csv").read_text())
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "fall_eval.py"), str(only)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "ADL_s3_ms2.csv" in bad.stderr and "9.80665" in bad.stderr


def _csv(path, rows, rate=20):
    path.write_text("t_s,ax_g,ay_g,az_g\n" + "".join(f"{i / rate:.3f},{x:.4f},{y:.4f},{z:.4f}\n"
                                                      for i, (x, y, z) in enumerate(rows)))


def test_bench_skips_odd_trials_with_the_reason_and_evaluates_the_rest(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    rows = movement("fall", rate=20, impact_ms=100)
    _csv(d / "FALL_Subject_01_Fall_forwardFall_1_2017-01-01_00-00-00.csv",
         [(x / 1000, y / 1000, z / 1000) for x, y, z in rows])
    still = [(0.0, -1.0, 0.05)] * 300
    hop = [(0.0, -1.0 if k % 10 < 7 else 2.0, 2.0 if k % 10 >= 7 else 0.05) for k in range(300)]
    _csv(d / "ADL_Subject_01_ADL_Hopping_1_2017-01-01_00-00-00.csv", hop)           # pinned at +-2 g
    _csv(d / "ADL_Subject_01_ADL_Walking_1_2017-01-01_00-00-00.csv",                # m/s^2
         [(x * 9.81, y * 9.81, z * 9.81) for x, y, z in still])
    _csv(d / "ADL_Subject_02_ADL_Walking_1_2017-01-01_00-00-00.csv",                # scale jumps to 1/4
         still[:150] + [(x / 4, y / 4, z / 4) for x, y, z in still[:150]])
    gap = d / "ADL_Subject_02_ADL_Bending_1_2017-01-01_00-00-00.csv"               # 3 s without samples
    gap.write_text("t_s,ax_g,ay_g,az_g\n" + "".join(f"{t / 20:.3f},0,-1,0.05\n" for t in range(300) if not 100 <= t < 160))
    (d / "ADL_Subject_02_ADL_Sitting_1_2017-01-01_00-00-00.csv").write_text("time,x,y,z\n0,0,0,1\n")
    r = bench(d, "--placement", "pendant")
    assert (r["trials"], r["falls"], r["sensitivity"]) == (1, 1, 1.0)
    reasons = {e["trial"].split("_ADL_")[0][-2:] + e["trial"].split("_ADL_")[1][:8]: e["reason"] for e in r["skipped"]}
    assert len(r["skipped"]) == 5, r["skipped"]
    assert reasons["01Hopping_"].startswith("saturated") and "2.00 g" in reasons["01Hopping_"]
    assert "9.80665" in reasons["01Walking_"]
    assert "scale changes" in reasons["02Walking_"]
    assert reasons["02Bending_"].startswith("gap of 3.05 s")
    assert reasons["02Sitting_"].startswith("header")
    assert r["per_activity"]["forwardFall"] == {"fall": True, "trials": 1, "raised": 1}
    # --keep-saturated evaluates the pinned trial instead
    r = bench(d, "--placement", "pendant", "--keep-saturated", "--cpython")
    assert r["trials"] == 2 and len(r["skipped"]) == 4


# -- UMAFall (development subset): pendant and wristband trials through the bench ---------------

UMAFALL = Path(__file__).resolve().parents[3] / "shared" / "data" / "umafall-dev"
PENDANT = {  # chest: falls the old chest thresholds missed; ADLs a pendant without the free-fall rule raises
    "FALL_uma_1_UMAFall_Subject_02_Fall_forwardFall_2_2016-06-13_20-45-53": 1,
    "FALL_uma_1_UMAFall_Subject_05_Fall_forwardFall_3_2016-06-15_21-24-11": 1,
    "FALL_uma_1_UMAFall_Subject_04_Fall_forwardFall_6_2016-06-13_13-23-05": 1,
    "ADL_uma_1_UMAFall_Subject_02_ADL_Sitting_GettingUpOnAChair_1_2016-06-13_20-34-55": 0,
    "ADL_uma_1_UMAFall_Subject_05_ADL_LyingDown_OnABed_1_2016-06-15_21-52-40": 0,
    "ADL_uma_1_UMAFall_Subject_05_ADL_HandsUp_4_2016-11-28_16-31-23": None,   # rests at 1/4 g: skipped
}
WRIST = {  # wrist: ADLs the old wrist thresholds (or a wristband without the impulse or forearm rule) raised
    "ADL_uma_3_UMAFall_Subject_05_ADL_Aplausing_3_2016-11-28_16-33-17": 0,
    "ADL_uma_3_UMAFall_Subject_02_ADL_Aplausing_1_2017-04-26_19-47-07": 0,   # clapping, then the arms hang
    "ADL_uma_3_UMAFall_Subject_02_ADL_Jogging_1_2016-06-13_20-40-29": 0,
    "ADL_uma_3_UMAFall_Subject_02_ADL_Hopping_3_2016-06-13_20-39-00": 0,
    "ADL_uma_3_UMAFall_Subject_05_ADL_LyingDown_OnABed_3_2016-06-15_21-54-02": 0,
    "FALL_uma_3_UMAFall_Subject_02_Fall_backwardFall_1_2016-06-13_20-51-32": 1,
    "FALL_uma_3_UMAFall_Subject_06_Fall_lateralFall_2_2016-06-13_21-43-17": 1,
}


def _uma_dir(tmp_path, placement, names):
    d = tmp_path / placement
    d.mkdir()
    for name in names:
        src = UMAFALL / placement / f"{name}.csv"
        if not src.exists():
            pytest.skip(f"{src} not in the UMAFall development subset (../shared/data/umafall-dev)")
        (d / src.name).symlink_to(src)
    return d


@pytest.mark.parametrize("placement, trials", [("chest", PENDANT), ("wrist", WRIST)])
def test_umafall_pendant_falls_detected_and_wristband_adls_not_alarmed(tmp_path, placement, trials):
    r = bench(_uma_dir(tmp_path, placement, trials), "--placement", "pendant" if placement == "chest" else "wrist",
              "--both")
    assert r["runtime"] == "micropython" and r["identical_cpython"] is True
    want = {k: v for k, v in trials.items() if v is not None}
    assert r["trials"] == len(want)
    assert r["sensitivity"] == 1.0 and r["specificity"] == 1.0, r["per_activity"]
    skipped = {e["trial"][:-4]: e["reason"] for e in r["skipped"]}
    assert set(skipped) == {k for k, v in trials.items() if v is None}
    assert all("expected about 1 g" in why for why in skipped.values())
    assert 50 <= r["confidence"]["min"] <= r["confidence"]["max"] <= 100
    assert r["detector_heap_bytes"]["state_bytes"] < 2500 and r["detector_us_per_sample"] > 0


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


def test_loso_selections_youden_targets_and_one_standard_error():
    """The bench's leave-one-subject-out picks a fold's thresholds on the other subjects:
    Youden takes any gain in sensitivity + specificity, the one-standard-error rule takes
    the variant raising fewest ADL alarms among those within the noise of the best."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_fall_eval_loso", ROOT / "bench" / "fall_eval.py")
    fe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fe)

    trials, hits = [], []   # hits[i] = [variant 0 (strict), variant 1 (loose)]
    for s in ("S1", "S2", "S3"):
        for k in range(20):          # 20 falls each: strict misses 3, loose 2
            trials.append(fe.Trial(f"{s}f{k}", True, s, "fall", 50, [], [(0, 0, 1)] * 300))
            hits.append([0 if k < 3 else 1, 0 if k < 2 else 1])
        for k in range(40):          # 40 ADLs each: loose raises on one of them
            trials.append(fe.Trial(f"{s}a{k}", False, s, "walk", 50, [], [(0, 0, 1)] * 750))
            hits.append([0, 1 if k == 0 else 0])
    variants = [(3000, -1, -1, -1, -1, -1, -1), (2500, -1, -1, -1, -1, -1, -1)]
    youden = fe.loso(trials, hits, variants, 0, "youden")
    one_se = fe.loso(trials, hits, variants, 0, "1se")
    # +1/20 sensitivity beats -1/40 specificity: Youden goes loose in every fold...
    assert {v["chosen"]["impact_mg"] for v in youden["per_subject"].values()} == {2500}
    assert youden["sensitivity"] == 0.9 and youden["false_alarms_per_hour"] > 0
    # ...but that gain is inside one standard error: the strict variant, no false alarms
    assert {v["chosen"]["impact_mg"] for v in one_se["per_subject"].values()} == {3000}
    assert one_se["sensitivity"] == 0.85 and one_se["false_alarms_per_hour"] == 0.0
    # a gain well beyond the noise is taken by the one-SE rule too
    for i, t in enumerate(trials):
        if t.is_fall and int(t.name.split("f")[1]) < 8:
            hits[i] = [0, 0 if int(t.name.split("f")[1]) < 2 else 1]
    assert {v["chosen"]["impact_mg"] for v in fe.loso(trials, hits, variants, 0, "1se")["per_subject"].values()} \
        == {2500}
