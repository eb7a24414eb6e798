"""Evaluate the firmware's fall detector (firmware/lib/fall.py) over a directory of trials.

    python bench/fall_eval.py DIR [--rate 50] [--placement waist] [--loso] [--cpython]

DIR is SisFall's raw layout (``<Fxx|Dxx>_<SUBJECT>_Rnn.txt``, 200 Hz, ADXL345 counts in
the first three columns) or a generic layout (``FALL_*.csv`` / ``ADL_*.csv`` with header
``t_s,ax_g,ay_g,az_g``). Trials are resampled to the device rate in CPython (bin mean =
the sensor's own anti-alias averaging), converted to milli-g and streamed as int16 to
the detector running under the real MicroPython interpreter (this same file, in worker
mode); ``--cpython`` runs the identical module in-process (integer arithmetic, so the
results are identical; firmware/tests/test_fall_eval.py checks that).

A fall trial is detected when the detector raises ``fall_detected`` (nobody cancels:
the cancel window expires after the trial's last sample); an ADL trial is a false
positive when it raises at least once; false alarms per hour count every alarm raised
during ADL trials over their total duration. The last line is JSON.
"""
import sys

if sys.implementation.name == "micropython":
    # ---- worker: runs under MicroPython, reads trials from stdin, prints results ----
    import gc
    import struct
    import time

    def _worker(libdir):
        sys.path.insert(0, libdir)
        gc.collect()
        h0 = gc.mem_alloc()
        from fall import FallDetector
        from fall_alert import FallAlert
        gc.collect()
        h1 = gc.mem_alloc()
        import fall_setup  # noqa: F401 (construction and confidence code: a device drops
        import fall_conf  # noqa: F401  them from sys.modules after use)
        gc.collect()
        h1b = gc.mem_alloc()
        inp = sys.stdin.buffer
        out = sys.stdout
        first = True
        while True:
            line = inp.readline()
            if not line:
                break
            parts = line.split()
            if not parts or parts[0] != b"T":
                continue
            idx, n, rate, placement, cancel_ms = [int(p) for p in parts[1:6]]
            if first:  # heap of one detector (the placement's defaults): module code, then its state,
                first = False   # measured before the variants are parsed (no garbage of theirs around)
                d = [None] * 4
                gc.collect()
                h2 = gc.mem_alloc()
                for k in range(4):
                    d[k] = FallDetector(rate_hz=rate, placement=placement)
                gc.collect()
                h3 = gc.mem_alloc()
                d = None
                out.write("H %d %d %d\n" % (h1 - h0, (h3 - h2) // 4, h1b - h1))
            cfgs = []  # one detector per variant: "imp:ang:still:ff:impulse:arm,..." (-1 = default, "-" all)
            for spec in parts[6].split(b","):
                kw = {}
                if spec != b"-":
                    for key, v in zip(("impact_mg", "angle_deg", "still_mg", "freefall_mg", "impulse_mgs",
                                       "arm_deg"), spec.split(b":")):
                        if int(v) >= 0:
                            kw[key] = int(v)
                cfgs.append(kw)
            dets = [(FallDetector(rate_hz=rate, placement=placement, **kw), FallAlert(cancel_ms=cancel_ms),
                     [0, 0, 0, 0]) for kw in cfgs]   # alarms, peak, confidence, us
            data = None
            gc.collect()
            k0 = 0
            while k0 < n:  # chunks: the heap stays small; each variant runs over the chunk
                m = min(256, n - k0)
                data = inp.read(6 * m)
                t0 = time.ticks_us()
                for k in range(m):
                    x, y, z = struct.unpack_from("<hhh", data, 6 * k)
                empty = time.ticks_diff(time.ticks_us(), t0)
                for d, al, cnt in dets:
                    t0 = time.ticks_us()
                    for k in range(m):
                        x, y, z = struct.unpack_from("<hhh", data, 6 * k)
                        p = d.feed(x, y, z)
                        if p:
                            al.suspect(p, (k0 + k) * 1000 // rate, d.confidence)
                        if al.state:
                            r = al.poll((k0 + k) * 1000 // rate)
                            if r:
                                cnt[0] += 1
                                cnt[1] = max(cnt[1], r[1])
                                cnt[2] = max(cnt[2], al.confidence)
                    cnt[3] += time.ticks_diff(time.ticks_us(), t0) - empty
                k0 += m
            last = n * 1000 // rate
            end = last + cancel_ms  # nobody cancels; time passes
            res = []
            for d, al, cnt in dets:
                p = d.flush()  # the recording ended inside an observation window
                if p:
                    al.suspect(p, last, d.confidence)
                r = al.poll(end)
                if r:
                    cnt[0] += 1
                    cnt[1] = max(cnt[1], r[1])
                    cnt[2] = max(cnt[2], al.confidence)
                res.append("%d:%d:%d:%d" % (cnt[0], cnt[1], cnt[2], max(0, cnt[3])))
            out.write("R %d %s\n" % (idx, ",".join(res)))
        out.write("DONE\n")

    _worker(sys.argv[1])
    raise SystemExit(0)

# ---- CPython driver -------------------------------------------------------------------
import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _default_micropython() -> str:
    import shutil  # noqa: PLC0415

    venv = ROOT / ".venv" / "bin" / "micropython"
    if venv.exists():
        return str(venv)
    return shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
LIB = ROOT / "firmware" / "lib"
PLACEMENTS = {"wrist": 0, "chest": 1, "pendant": 1, "waist": 2, "pocket": 2}
PLACEMENT_NAMES = ("wrist", "chest", "waist")
SISFALL_RE = re.compile(r"^([DF])(\d\d)_([A-Z]{2}\d\d)_R(\d\d)\.txt$")
# the placement defaults of firmware/lib/fall.py THRESHOLDS (for --impact-mg & co.)
PLACEMENT_DEFAULTS = ((3000, 45, 300), (2000, 60, 300), (2000, 60, 300))
# Same-run baseline: the classic single impact threshold (|a| >= 2 g), no posture,
# stillness or free-fall rule (angle 0 deg and 2 g allowed movement make those always
# true), with the waist timing whatever the placement:
# (impact, angle, still, freefall, impulse, arm, placement)
BASELINE = (2000, 0, 2000, 0, 0, 0, 2)
# LOSO grids: per placement the thresholds that matter most, around their physical
# defaults (variants: impact, angle, still, freefall, impulse, arm, placement; -1 = the
# default). The wrist grid includes its forearm rule, "off" (0) among the choices.
GRID_IMPACT = (1500, 1750, 2000, 2250, 2500, 3000)
GRID_ANGLE = (40, 50, 60, 70)
LOSO_GRID = {
    0: [(i, -1, -1, -1, imp, arm, -1) for i in (2500, 3000, 3500, 4000, 4500) for imp in (100, 150, 200, 250)
        for arm in (0, 45, 60, 75)],
    1: [(i, -1, -1, ff, -1, -1, -1) for i in (1500, 1800, 2000, 2200, 2500) for ff in (400, 500, 600, 700, 800)],
    2: [(i, a, -1, -1, -1, -1, -1) for i in GRID_IMPACT for a in GRID_ANGLE],
}


class EvalError(Exception):
    pass


@dataclass
class Trial:
    name: str
    is_fall: bool
    subject: str
    activity: str
    rate_hz: float
    t: list  # seconds (None = uniform at rate_hz)
    xyz: list  # [(x_g, y_g, z_g)]

    @property
    def duration_s(self) -> float:
        if self.t:
            return self.t[-1] - self.t[0]
        return len(self.xyz) / self.rate_hz


class SkipTrial(Exception):
    """A trial the bench cannot evaluate fairly (reported under "skipped" with the reason)."""


UMAFALL_RE = re.compile(r"Subject_(\d+)_(ADL|Fall)_(.+?)_\d+_\d{4}-\d\d-\d\d")
# Sanity limits for a trial (physical: the firmware sees gravity at rest, a +-8 g range,
# a continuous 25-100 Hz stream). Outside them the trial is skipped, with the reason.
REST_G = (0.8, 1.2)           # |a| at rest (median of the quiet seconds)
MEDIAN_G = (0.5, 2.0)         # median |a| of a trial without quiet seconds
MIN_SECONDS = 4.0             # shorter than the detector's own window (3 s before + 3 s after)
MAX_GAP_S = 1.0               # a hole in the samples longer than a fall
STARTUP_G = (0.15, 0.4)       # a start-up segment at the wrong scale...
STARTUP_MAX_S = 3.0           # ...no longer than this is cut off (reported under "trimmed")
SATURATED_FRACTION = 0.05     # share of samples pinned at full scale...
SATURATED_G = (1.5, 7.5)      # ...of a range below the device's +-8 g (and above gravity)


def load_sisfall(path: Path, sensor: str) -> Trial | None:
    m = SISFALL_RE.match(path.name)
    if not m:
        return None
    cols, scale = ((0, 1, 2), 32.0 / 8192) if sensor == "adxl345" else ((6, 7, 8), 16.0 / 16384)
    xyz = []
    bad = 0
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            parts = line.strip().rstrip(";").split(",")
            if len(parts) < 9:
                bad += bool(line.strip())
                continue
            try:
                xyz.append(tuple(int(parts[c]) * scale for c in cols))
            except ValueError:
                bad += 1
    if bad > max(10, len(xyz) // 10):
        raise SkipTrial(f"{bad} unreadable lines ({len(xyz)} good)")
    return Trial(path.stem, m.group(1) == "F", m.group(3), m.group(1) + m.group(2), 200.0, [], xyz)


def load_generic(path: Path) -> Trial | None:
    up = path.name.upper()
    if not (up.startswith("FALL_") or up.startswith("ADL_")) or not up.endswith(".CSV"):
        return None
    t, xyz = [], []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().lower().replace(" ", "").split(",")
        try:
            it, ix, iy, iz = (header.index(c) for c in ("t_s", "ax_g", "ay_g", "az_g"))
        except ValueError:
            raise SkipTrial(f"header must contain t_s,ax_g,ay_g,az_g (got {','.join(header)[:80]})")
        for line in fh:
            p = line.strip().split(",")
            try:
                ts = float(p[it])
                v = (float(p[ix]), float(p[iy]), float(p[iz]))
            except (ValueError, IndexError):
                bad += bool(line.strip())
                continue
            if t and ts <= t[-1]:
                bad += 1   # time going backwards or repeated: drop the sample
                continue
            t.append(ts)
            xyz.append(v)
    if len(t) < 2:
        raise SkipTrial("fewer than 2 samples")
    if bad > max(10, len(t) // 10):
        raise SkipTrial(f"{bad} unreadable lines ({len(t)} good)")
    rate = (len(t) - 1) / max(1e-6, t[-1] - t[0])
    m = UMAFALL_RE.search(path.stem)
    if m:  # UMAFall names: ..._Subject_01_ADL_Walking_1_2017-...
        subject, activity = "S" + m.group(1), m.group(3)
    else:
        stem = path.stem.split("_")
        subject = stem[1] if len(stem) > 2 else "all"
        activity = stem[0].upper()
    return Trial(path.stem, up.startswith("FALL_"), subject, activity, rate, t, xyz)


def trim_startup(tr: Trial) -> float:
    """Cut a sensor's start-up at another scale: leading samples at about 1/4 g (UMAFall's
    chest tags deliver their first 0.1-3 s so) before the normal 1 g stream. Returns
    the seconds cut (0.0 if none)."""
    n = len(tr.xyz)
    times = tr.t if tr.t else [i / tr.rate_hz for i in range(n)]
    k = 0
    while k < n and STARTUP_G[0] <= sum(c * c for c in tr.xyz[k]) ** 0.5 <= STARTUP_G[1]:
        k += 1
    if k == 0 or k >= n or times[k] - times[0] > STARTUP_MAX_S:
        return 0.0
    cut = times[k] - times[0]
    del tr.xyz[:k]
    if tr.t:
        del tr.t[:k]
    return cut


def check_trial(tr: Trial) -> str | None:
    """Why the trial cannot be evaluated fairly, or None. Checks what the firmware relies
    on: gravity at rest (units, scale), a continuous stream, a range of at least the
    device's +-8 g that is not pinned at full scale."""
    n = len(tr.xyz)
    times = tr.t if tr.t else [i / tr.rate_hz for i in range(n)]
    dur = times[-1] - times[0]
    mags = [(x * x + y * y + z * z) ** 0.5 for x, y, z in tr.xyz]
    # rest level: |a| of the quiet seconds (std < 0.05 g); a recording without two quiet
    # seconds (jogging, hopping) is only checked for its median (0.5..2 g)
    per_s = max(2, int(round(n / max(dur, 1e-6))))
    quiet = []
    for i in range(0, n - per_s + 1, max(1, per_s // 2)):
        w = mags[i:i + per_s]
        mu = sum(w) / len(w)
        if sum((v - mu) ** 2 for v in w) / len(w) < 0.05 ** 2:
            quiet.append(mu)
    if len(quiet) >= 2:
        rest = sorted(quiet)[len(quiet) // 2]
        lo, hi = REST_G
        what = "rest level"
    else:
        rest = sorted(mags)[n // 2]
        lo, hi = MEDIAN_G
        what = "median |a| (no quiet second)"
    if not lo <= rest <= hi:
        hint = " (looks like m/s^2: divide by 9.80665)" if 7 <= rest <= 13 else \
            " (looks like milli-g: divide by 1000)" if 500 <= rest <= 2000 else \
            " (about 1/4 g: wrong range scale?)" if 0.2 <= rest <= 0.3 else ""
        return f"{what} {rest:.3g} g, expected about 1 g{hint}"
    if dur < MIN_SECONDS:
        return f"too short: {dur:.1f} s (the detector needs {MIN_SECONDS:.0f} s)"
    gap = max(b - a for a, b in zip(times, times[1:]))
    if gap > MAX_GAP_S:
        at = next(a for a, b in zip(times, times[1:]) if b - a == gap) - times[0]
        return f"gap of {gap:.2f} s in the samples at {at:.1f} s (lost data)"
    odd = [q for q in quiet if not MEDIAN_G[0] <= q <= MEDIAN_G[1]]
    if len(odd) >= 2:   # half-second steps: >= 1.5 s of the trial
        return (f"scale changes within the trial: {len(odd) / 2 + 0.5:.1f} s rest at "
                f"{sorted(odd)[len(odd) // 2]:.2f} g, the rest at {rest:.2f} g")
    full = max(max(abs(x), abs(y), abs(z)) for x, y, z in tr.xyz)
    if SATURATED_G[0] <= full < SATURATED_G[1]:
        pinned = sum(1 for x, y, z in tr.xyz if max(abs(x), abs(y), abs(z)) >= full * 0.995)
        if pinned >= SATURATED_FRACTION * n:
            return (f"saturated: {100 * pinned / n:.0f} % of the samples pinned at +-{full:.2f} g "
                    f"(sensor range below the device's +-8 g)")
    return None


def load_dir(d: Path, sensor: str, skipped: list | None = None, trimmed: list | None = None,
             keep_saturated: bool = False) -> list:
    """Trials of ``d``; trials that cannot be evaluated go to ``skipped`` as (name, reason),
    trials whose start-up segment was cut to ``trimmed`` as (name, seconds)."""
    if not d.is_dir():
        raise EvalError(f"{d}: not a directory; give the SisFall root or a folder of FALL_*.csv/ADL_*.csv")
    if skipped is None:
        skipped = []
    if trimmed is None:
        trimmed = []
    trials = []
    for p in sorted(d.rglob("*")):
        if not p.is_file():
            continue
        tr, cut = None, 0.0
        try:
            tr = load_sisfall(p, sensor) if p.suffix == ".txt" else \
                load_generic(p) if p.suffix.lower() == ".csv" else None
            if tr is None:
                continue
            cut = trim_startup(tr) if tr.xyz else 0.0
            reason = check_trial(tr) if tr.xyz else "no samples"
        except SkipTrial as exc:
            reason = str(exc)
        except (OSError, UnicodeError) as exc:
            reason = f"unreadable: {exc}"
        if reason and not (keep_saturated and tr is not None and reason.startswith("saturated")):
            skipped.append((p.name, reason))
            continue
        if cut:
            trimmed.append((p.name, round(cut, 2)))
        trials.append(tr)
    if not trials:
        why = f"; {len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise EvalError(f"{d}: no trials found (expected Fxx_SAxx_Rxx.txt or FALL_*.csv / ADL_*.csv){why}")
    return trials


def resample(tr: Trial, rate: int, noise_g: float = 0.0, rot=None, seed: int = 0) -> list:
    """Bin-mean resampling to ``rate`` Hz (what a sensor's averaging ODR filter does),
    linear interpolation across empty bins (source slower than target); -> int milli-g."""
    n_src = len(tr.xyz)
    times = tr.t if tr.t else [i / tr.rate_hz for i in range(n_src)]
    t0 = times[0]
    nbins = int((times[-1] - t0) * rate) + 1
    sums = [[0.0, 0.0, 0.0, 0] for _ in range(nbins)]
    for ts, v in zip(times, tr.xyz):
        b = int((ts - t0) * rate)
        if 0 <= b < nbins:
            s = sums[b]
            s[0] += v[0]
            s[1] += v[1]
            s[2] += v[2]
            s[3] += 1
    out = [None] * nbins
    for i, s in enumerate(sums):
        if s[3]:
            out[i] = (s[0] / s[3], s[1] / s[3], s[2] / s[3])
    last = None
    for i in range(nbins):  # fill gaps
        if out[i] is not None:
            if last is not None and i - last > 1:
                a, b = out[last], out[i]
                for j in range(last + 1, i):
                    f = (j - last) / (i - last)
                    out[j] = tuple(a[k] + (b[k] - a[k]) * f for k in range(3))
            last = i
    out = [v for v in out if v is not None]
    rng = random.Random(seed)
    res = []
    for v in out:
        if rot:
            v = tuple(sum(rot[r][c] * v[c] for c in range(3)) for r in range(3))
        if noise_g:
            v = tuple(c + rng.gauss(0.0, noise_g) for c in v)
        res.append(tuple(max(-32767, min(32767, int(round(c * 1000)))) for c in v))
    return res


def random_rotation(seed: int, forearm: bool = False):
    """A random mounting: any orientation, or with ``forearm`` (a wristband) the band turned
    round the wrist by a random angle (about the sensor's x axis, the forearm) and worn on
    either wrist (x reversed: a half turn about z) -- the freedom a wristband has."""
    rng = random.Random(seed)
    if forearm:
        a = rng.uniform(0.0, 2 * math.pi)
        c, s = math.cos(a), math.sin(a)
        f = -1.0 if rng.random() < 0.5 else 1.0
        return [[f, 0.0, 0.0], [0.0, f * c, -f * s], [0.0, s, c]]
    q = [rng.gauss(0, 1) for _ in range(4)]
    n = sum(c * c for c in q) ** 0.5
    w, x, y, z = (c / n for c in q)
    return [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]


_KNOBS = ("impact_mg", "angle_deg", "still_mg", "freefall_mg", "impulse_mgs", "arm_deg")


def _variant_kwargs(v) -> tuple[dict, int | None]:
    """Variant (impact, angle, still, freefall, impulse, arm, placement; -1 = default) -> detector kwargs."""
    if v is None:
        return {}, None
    kw = {k: x for k, x in zip(_KNOBS, v) if x >= 0}
    pl = v[6] if len(v) > 6 and v[6] >= 0 else None
    return kw, pl


def _cpython_run(jobs, rate, placement, cancel_ms, variants):
    sys.path.insert(0, str(LIB))
    from fall import FallDetector  # noqa: PLC0415 (the firmware module, in CPython)
    from fall_alert import FallAlert  # noqa: PLC0415
    results = {}
    for idx, samples in jobs:
        res = []
        n = len(samples)
        t0 = time.perf_counter()
        for k in range(n):
            x, y, z = samples[k]
        empty = time.perf_counter() - t0
        for v in variants:
            kw, pl = _variant_kwargs(v)
            d = FallDetector(rate_hz=rate, placement=placement if pl is None else pl, **kw)
            al = FallAlert(cancel_ms=cancel_ms)
            cnt, peak, conf = 0, 0, 0
            t0 = time.perf_counter()
            for k in range(n):
                x, y, z = samples[k]
                p = d.feed(x, y, z)
                if p:
                    al.suspect(p, k * 1000 // rate, d.confidence)
                if al.state:
                    r = al.poll(k * 1000 // rate)
                    if r:
                        cnt, peak, conf = cnt + 1, max(peak, r[1]), max(conf, al.confidence)
            us = int((time.perf_counter() - t0 - empty) * 1e6)
            p = d.flush()
            if p:
                al.suspect(p, n * 1000 // rate, d.confidence)
            r = al.poll(n * 1000 // rate + cancel_ms)
            if r:
                cnt, peak, conf = cnt + 1, max(peak, r[1]), max(conf, al.confidence)
            res.append((cnt, peak, conf, max(0, us)))
        results[idx] = res
    return results, None


def _spec(v) -> str:
    if v is None:
        return "-"
    return ":".join(str(x) for x in v)


def _mpy_run(jobs, rate, placement, cancel_ms, variants, micropython, heap):
    """Runs the firmware module under MicroPython. Variants with their own placement
    run in the same worker (placement field of the spec)."""
    cmd = [micropython, "-X", f"heapsize={heap}", str(Path(__file__).resolve()), str(LIB)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import threading  # noqa: PLC0415

    groups: dict = {}
    for vi, v in enumerate(variants):   # the worker takes one placement per trial line
        _, pl = _variant_kwargs(v)
        groups.setdefault(placement if pl is None else pl, []).append(vi)
    order = sorted(groups, key=lambda pl: pl != placement)

    def feed():
        try:
            for pl in order:
                spec = ",".join(_spec(None if variants[vi] is None else variants[vi][:6]) for vi in groups[pl])
                for idx, samples in jobs:
                    proc.stdin.write(f"T {idx} {len(samples)} {rate} {pl} {cancel_ms} {spec}\n".encode())
                    proc.stdin.write(b"".join(struct.pack("<hhh", *s) for s in samples))
            proc.stdin.close()
        except BrokenPipeError:
            pass

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    results: dict = {idx: [None] * len(variants) for idx, _ in jobs}
    heap_info = None
    other = []
    got = 0
    total = len(jobs) * len(order)
    for line in proc.stdout:
        parts = line.decode().split()
        if parts and parts[0] == "H" and heap_info is None:
            heap_info = {"module_bytes": int(parts[1]), "state_bytes": int(parts[2]),
                         "transient_module_bytes": int(parts[3])}
        elif parts and parts[0] == "R":
            pl = order[got // len(jobs)]
            got += 1
            vals = [tuple(int(v) for v in r.split(":")) for r in parts[2].split(",")]
            for vi, r in zip(groups[pl], vals):
                results[int(parts[1])][vi] = r
            if got % 100 == 0:
                print(f"  … {got}/{total} trials", file=sys.stderr, flush=True)
        elif parts and parts[0] != "DONE":
            other.append(line.decode())
    th.join()
    rc = proc.wait()
    if rc != 0 or got != total:
        err = proc.stderr.read().decode() + "".join(other)
        raise EvalError(f"micropython worker failed (rc={rc}): {err[-2000:]}")
    return results, heap_info


def metrics(trials, hits):
    """hits[i] = number of fall_detected alarms raised in trial i."""
    falls = [i for i, t in enumerate(trials) if t.is_fall]
    adls = [i for i, t in enumerate(trials) if not t.is_fall]
    tp = sum(1 for i in falls if hits[i])
    fp = sum(1 for i in adls if hits[i])
    alarms = sum(hits[i] for i in adls)
    hours = sum(trials[i].duration_s for i in adls) / 3600.0
    return {
        "trials": len(trials), "falls": len(falls), "adls": len(adls),
        "sensitivity": round(tp / len(falls), 4) if falls else None,
        "specificity": round(1 - fp / len(adls), 4) if adls else None,
        "false_alarms_per_hour": round(alarms / hours, 3) if hours else None,
        "detected": tp, "false_positive_trials": fp, "adl_hours": round(hours, 3),
    }


# the targets on held-out subjects (--loso-select targets)
TARGETS = (0.90, 0.95, 2.0)   # sensitivity >=, specificity >=, false alarms per hour <=


def _score(trials, hits, idxs, select="youden"):
    f = [i for i in idxs if trials[i].is_fall]
    a = [i for i in idxs if not trials[i].is_fall]
    sens = sum(1 for i in f if hits[i]) / len(f) if f else 1.0
    spec = 1 - sum(1 for i in a if hits[i]) / len(a) if a else 1.0
    alarms = sum(hits[i] for i in a)
    # ties (same sensitivity + specificity) go to the variant raising fewer alarms in ADLs
    score = sens + spec - 1e-6 * alarms
    if select == "targets":   # first the number of targets met, then as above
        hours = sum(trials[i].duration_s for i in a) / 3600.0
        met = (sens >= TARGETS[0]) + (spec >= TARGETS[1]) + (not hours or alarms / hours <= TARGETS[2])
        score += 10 * met
    return score


def _one_se(trials, variant_hits, cands, train, best):
    """Breiman's one-standard-error rule: among the variants whose sensitivity +
    specificity on the training subjects is within one standard error of the best's,
    the one raising the fewest alarms in ADLs (then the best score)."""
    f = [i for i in train if trials[i].is_fall]
    a = [i for i in train if not trials[i].is_fall]

    def stats(vi):
        sens = sum(1 for i in f if variant_hits[i][vi]) / len(f) if f else 1.0
        spec = 1 - sum(1 for i in a if variant_hits[i][vi]) / len(a) if a else 1.0
        return sens, spec, sum(variant_hits[i][vi] for i in a)

    sens, spec, _ = stats(best)
    se = math.sqrt((sens * (1 - sens) / len(f) if f else 0.0) + (spec * (1 - spec) / len(a) if a else 0.0))
    top = sens + spec
    pick, key = best, None
    for vi in cands:
        s_, p_, alarms = stats(vi)
        if s_ + p_ >= top - se - 1e-9:
            k = (alarms, -(s_ + p_))
            if key is None or k < key:
                pick, key = vi, k
    return pick


def _grid_name(v) -> dict:
    return {k: x for k, x in zip(_KNOBS, v) if x >= 0}


def loso(trials, variant_hits, variants, grid_from, select="youden"):
    """Leave-one-subject-out: pick the grid variant (variants[grid_from:]) that maximises
    sensitivity + specificity on the other subjects (``select="targets"``: that meets most
    of the targets there, then the same; ``"1se"``: the fewest ADL alarms within one
    standard error of that best, :func:`_one_se`), score it on the one left out."""
    subjects = sorted({t.subject for t in trials})
    pooled = [0] * len(trials)
    chosen = {}
    for s in subjects:
        train = [i for i, t in enumerate(trials) if t.subject != s]
        test = [i for i, t in enumerate(trials) if t.subject == s]
        best, best_score = 0, None
        for vi in range(grid_from, len(variants)):
            if not train:
                break
            sc = _score(trials, [variant_hits[i][vi] for i in range(len(trials))], train, select)
            if best_score is None or sc > best_score + 1e-9:
                best, best_score = vi, sc
        if select == "1se" and train:
            best = _one_se(trials, variant_hits, range(grid_from, len(variants)), train, best)
        chosen[s] = "default" if variants[best] is None else _grid_name(variants[best])
        for i in test:
            pooled[i] = variant_hits[i][best]
    out = metrics(trials, pooled)
    per = {}
    for s in subjects:
        idx = [i for i, t in enumerate(trials) if t.subject == s]
        m = metrics([trials[i] for i in idx], [pooled[i] for i in idx])
        per[s] = {"chosen": chosen[s], "sensitivity": m["sensitivity"], "specificity": m["specificity"],
                  "false_alarms_per_hour": m["false_alarms_per_hour"]}
    return {"select": select, "sensitivity": out["sensitivity"], "specificity": out["specificity"],
            "false_alarms_per_hour": out["false_alarms_per_hour"], "per_subject": per}


def _breakdown(trials, hits, key) -> dict:
    out: dict = {}
    for i, t in enumerate(trials):
        k = key(t)
        e = out.setdefault(k, {"fall": t.is_fall, "trials": 0, "raised": 0})
        e["trials"] += 1
        e["raised"] += bool(hits[i])
    return dict(sorted(out.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--rate", type=int, default=50, help="device sample rate, Hz (default 50)")
    ap.add_argument("--placement", choices=sorted(PLACEMENTS), default=None,
                    help="wearing position (default: waist); pendant = chest, pocket = waist")
    ap.add_argument("--cancel-ms", type=int, default=20000)
    ap.add_argument("--sensor", choices=("adxl345", "mma8451q"), default="adxl345",
                    help="SisFall accelerometer to use (default adxl345)")
    ap.add_argument("--noise-g", type=float, default=0.0, help="add Gaussian noise (robustness)")
    ap.add_argument("--rotate", type=int, default=None, metavar="SEED",
                    help="rotate the sensor frame randomly (robustness to mounting); at the wrist only "
                         "round the forearm and either wrist (the band fixes the forearm axis)")
    ap.add_argument("--rotate-any", action="store_true",
                    help="with --rotate at the wrist: any orientation (the sensor not aligned with the forearm)")
    ap.add_argument("--loso", action="store_true",
                    help="also leave-one-subject-out: thresholds chosen on the other subjects")
    ap.add_argument("--loso-select", choices=("1se", "youden", "targets"), default="1se",
                    help="how a fold picks its thresholds on the other subjects: 1se (default), the variant "
                         "raising fewest ADL alarms among those within one standard error of the best "
                         "sensitivity + specificity; youden, the best sensitivity + specificity; targets, "
                         "first the most targets met (sensitivity >= 0.90, specificity >= 0.95, <= 2 false "
                         "alarms/h), then the best sensitivity + specificity. The JSON carries all three")
    ap.add_argument("--impact-mg", type=int, default=None, help="override the placement's impact threshold")
    ap.add_argument("--angle-deg", type=int, default=None, help="override the placement's posture angle")
    ap.add_argument("--still-mg", type=int, default=None, help="override the placement's stillness limit")
    ap.add_argument("--freefall-mg", type=int, default=None,
                    help="override the placement's free-fall limit (0 = no free-fall rule)")
    ap.add_argument("--impulse-mgs", type=int, default=None,
                    help="override the placement's impact velocity change limit, mg*s (0 = no impulse rule)")
    ap.add_argument("--arm-deg", type=int, default=None,
                    help="override the placement's forearm rule, degrees from horizontal (0 = no forearm rule)")
    ap.add_argument("--cpython", action="store_true", help="run the detector module in CPython")
    ap.add_argument("--both", action="store_true",
                    help="run under MicroPython and CPython and report whether the results are identical")
    ap.add_argument("--keep-saturated", action="store_true",
                    help="evaluate trials pinned at a range below +-8 g instead of skipping them")
    ap.add_argument("--micropython", default=_default_micropython())
    ap.add_argument("--heap", default="1024k", help="MicroPython heap of the worker (a detector per LOSO variant)")
    ap.add_argument("--per-activity", action="store_true", help="print detections per activity to stderr")
    ap.add_argument("--limit", type=int, default=None, help="only the first N trials (smoke test)")
    args = ap.parse_args(argv)
    skipped: list = []
    trimmed: list = []
    try:
        trials = load_dir(args.dir, args.sensor, skipped, trimmed, keep_saturated=args.keep_saturated)
    except EvalError as exc:
        print(f"fall_eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        trials = trials[: args.limit]
    placement = PLACEMENTS[args.placement or "waist"]
    rot = None
    if args.rotate is not None:
        rot = random_rotation(args.rotate, forearm=placement == PLACEMENTS["wrist"] and not args.rotate_any)
    t0 = time.monotonic()
    jobs = [(i, resample(t, args.rate, args.noise_g, rot, seed=i)) for i, t in enumerate(trials)]
    print(f"loaded {len(trials)} trials ({len(skipped)} skipped, {len(trimmed)} trimmed), "
          f"resampled to {args.rate} Hz in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    main_variant = None
    over = (args.impact_mg, args.angle_deg, args.still_mg, args.freefall_mg, args.impulse_mgs, args.arm_deg)
    if any(v is not None for v in over):
        main_variant = tuple(-1 if v is None else v for v in over) + (-1,)
    variants = [main_variant, BASELINE]
    grid_from = len(variants)
    if args.loso:
        variants += LOSO_GRID[placement]
    t0 = time.monotonic()
    heap_info = None
    try:
        if args.cpython:
            res, heap_info = _cpython_run(jobs, args.rate, placement, args.cancel_ms, variants)
        else:
            res, heap_info = _mpy_run(jobs, args.rate, placement, args.cancel_ms, variants, args.micropython,
                                      args.heap)
        other = None
        if args.both:
            other, _ = _cpython_run(jobs, args.rate, placement, args.cancel_ms, variants)
    except EvalError as exc:
        print(f"fall_eval: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t0
    hits = [res[i][0][0] for i in range(len(trials))]
    out = metrics(trials, hits)
    samples = sum(len(s) for _, s in jobs)
    det_us = sum(res[i][0][3] for i in range(len(trials)))
    out.update({"rate_hz": args.rate, "placement": PLACEMENT_NAMES[placement], "runtime":
                "cpython" if args.cpython else "micropython", "samples": samples,
                "detector_us_per_sample": round(det_us / samples, 2) if samples else None,
                "bench_us_per_sample": round(elapsed * 1e6 / samples / len(variants), 2) if samples else None})
    if heap_info:
        out["detector_heap_bytes"] = heap_info
    if other is not None:
        out["identical_cpython"] = all([r[:3] for r in res[i]] == [r[:3] for r in other[i]]
                                       for i in range(len(trials)))
    confs = [res[i][0][2] for i in range(len(trials)) if hits[i]]
    tp_c = [res[i][0][2] for i in range(len(trials)) if hits[i] and trials[i].is_fall]
    fp_c = [res[i][0][2] for i in range(len(trials)) if hits[i] and not trials[i].is_fall]
    if confs:
        out["confidence"] = {"falls_mean": round(sum(tp_c) / len(tp_c), 1) if tp_c else None,
                             "false_alarms_mean": round(sum(fp_c) / len(fp_c), 1) if fp_c else None,
                             "min": min(confs), "max": max(confs)}
    out["per_activity"] = _breakdown(trials, hits, lambda t: t.activity)
    out["per_subject"] = {k: {"trials": v["trials"], "raised": v["raised"]} for k, v in
                          _breakdown(trials, hits, lambda t: t.subject).items()}
    if args.per_activity:
        for a, e in out["per_activity"].items():
            print(f"{a}: {e['raised']}/{e['trials']} raised", file=sys.stderr)
    base = metrics(trials, [res[i][1][0] for i in range(len(trials))])
    out["baseline_impact_only"] = {k: base[k] for k in ("sensitivity", "specificity", "false_alarms_per_hour")}
    if base["false_alarms_per_hour"]:
        out["false_alarm_ratio_vs_baseline"] = round((out["false_alarms_per_hour"] or 0) /
                                                     base["false_alarms_per_hour"], 4)
    if args.loso:
        vh = [[r[0] for r in res[i]] for i in range(len(trials))]
        out["loso"] = loso(trials, vh, variants, grid_from, args.loso_select)
        for sel in ("youden", "targets", "1se"):
            if sel != args.loso_select:
                alt = loso(trials, vh, variants, grid_from, sel)
                out["loso_" + sel] = {k: alt[k] for k in ("sensitivity", "specificity", "false_alarms_per_hour")}
    out["skipped"] = [{"trial": n, "reason": r} for n, r in skipped]
    out["trimmed"] = [{"trial": n, "seconds": sec} for n, sec in trimmed]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
