"""Trials for bench/fall_eval.py (CPython only): loading (SisFall raw layout, or
``FALL_*.csv`` / ``ADL_*.csv`` with ``t_s,ax_g,ay_g,az_g``; UMAFall names give subject and
activity), the sanity checks that skip an odd trial with its reason, the start-up trim,
bin-mean resampling to the device rate and the random mountings of ``--rotate``
(docs/fall-detection.md "Evaluation").
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

SISFALL_RE = re.compile(r"^([DF])(\d\d)_([A-Z]{2}\d\d)_R(\d\d)\.txt$")


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
