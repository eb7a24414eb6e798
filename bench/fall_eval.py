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

    def _worker(libdir):
        sys.path.insert(0, libdir)
        from fall import FallDetector
        from fall_alert import FallAlert
        inp = sys.stdin.buffer
        out = sys.stdout
        while True:
            line = inp.readline()
            if not line:
                break
            parts = line.split()
            if not parts or parts[0] != b"T":
                continue
            idx, n, rate, placement, cancel_ms = [int(p) for p in parts[1:6]]
            cfgs = []  # one detector per (impact, angle) variant: "imp:ang,imp:ang"
            for spec in parts[6].split(b","):
                if spec == b"-":
                    cfgs.append(None)
                else:
                    cfgs.append(tuple(int(v) for v in spec.split(b":")))
            data = b""
            dets = None
            gc.collect()
            dets = []
            for c in cfgs:
                if c is None:
                    d = FallDetector(rate_hz=rate, placement=placement)
                elif len(c) == 3:
                    d = FallDetector(rate_hz=rate, placement=placement, impact_mg=c[0], angle_deg=c[1],
                                     still_mg=c[2])
                else:
                    d = FallDetector(rate_hz=rate, placement=placement, impact_mg=c[0], angle_deg=c[1])
                dets.append((d, FallAlert(cancel_ms=cancel_ms), [0, 0]))
            i = 0
            for k in range(n):
                if i >= len(data):  # read in small chunks: the heap stays small
                    data = inp.read(6 * min(256, n - k))
                    i = 0
                x, y, z = struct.unpack_from("<hhh", data, i)
                i += 6
                now = k * 1000 // rate
                for d, al, cnt in dets:
                    p = d.feed(x, y, z)
                    if p:
                        al.suspect(p, now)
                    if al.state:
                        r = al.poll(now)
                        if r:
                            cnt[0] += 1
                            cnt[1] = max(cnt[1], r[1])
            last = n * 1000 // rate
            end = last + cancel_ms  # nobody cancels; time passes
            res = []
            for d, al, cnt in dets:
                p = d.flush()  # the recording ended inside an observation window
                if p:
                    al.suspect(p, last)
                r = al.poll(end)
                if r:
                    cnt[0] += 1
                    cnt[1] = max(cnt[1], r[1])
                res.append("%d:%d" % (cnt[0], cnt[1]))
            out.write("R %d %s\n" % (idx, ",".join(res)))
        out.write("DONE\n")

    _worker(sys.argv[1])
    raise SystemExit(0)

# ---- CPython driver -------------------------------------------------------------------
import argparse  # noqa: E402
import json  # noqa: E402
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
PLACEMENTS = {"wrist": 0, "chest": 1, "pendant": 1, "waist": 2}
SISFALL_RE = re.compile(r"^([DF])(\d\d)_([A-Z]{2}\d\d)_R(\d\d)\.txt$")
# the placement defaults of firmware/lib/fall.py THRESHOLDS (for --impact-mg & co.)
PLACEMENT_DEFAULTS = ((3500, 30, 200), (2500, 60, 300), (2000, 60, 300))
# Same-run baseline: the classic single impact threshold (|a| >= 2 g), no posture or
# stillness rule (angle 0 deg and 2 g allowed movement make those always true)
BASELINE = (2000, 0, 2000)
# LOSO grid: the two thresholds that matter, around their physical defaults
GRID_IMPACT = (1500, 1750, 2000, 2250, 2500, 3000)
GRID_ANGLE = (40, 50, 60, 70)


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
    return Trial(path.stem, m.group(1) == "F", m.group(3), m.group(1) + m.group(2), 200.0, [], xyz)


def load_generic(path: Path) -> Trial | None:
    up = path.name.upper()
    if not (up.startswith("FALL_") or up.startswith("ADL_")) or not up.endswith(".CSV"):
        return None
    t, xyz = [], []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().strip().lower().replace(" ", "").split(",")
        try:
            it, ix, iy, iz = (header.index(c) for c in ("t_s", "ax_g", "ay_g", "az_g"))
        except ValueError:
            raise EvalError(f"{path}: header must contain t_s,ax_g,ay_g,az_g (got {','.join(header)})")
        for line in fh:
            p = line.strip().split(",")
            try:
                t.append(float(p[it]))
                xyz.append((float(p[ix]), float(p[iy]), float(p[iz])))
            except (ValueError, IndexError):
                continue
    if len(t) < 2:
        return None
    mags = sorted((x * x + y * y + z * z) ** 0.5 for x, y, z in xyz[:: max(1, len(xyz) // 200)])
    med = mags[len(mags) // 2]
    if not 0.5 <= med <= 2.0:
        hint = " (looks like m/s^2: divide by 9.80665)" if 7 <= med <= 13 else \
            " (looks like milli-g: divide by 1000)" if 500 <= med <= 2000 else ""
        raise EvalError(f"{path}: median |a| is {med:.3g}, expected about 1 g at rest{hint}")
    rate = (len(t) - 1) / max(1e-6, t[-1] - t[0])
    stem = path.stem.split("_")
    subject = stem[1] if len(stem) > 2 else "all"
    return Trial(path.stem, up.startswith("FALL_"), subject, stem[0].upper(), rate, t, xyz)


def load_dir(d: Path, sensor: str) -> list:
    if not d.is_dir():
        raise EvalError(f"{d}: not a directory; give the SisFall root or a folder of FALL_*.csv/ADL_*.csv")
    trials = []
    for p in sorted(d.rglob("*")):
        if not p.is_file():
            continue
        tr = load_sisfall(p, sensor) if p.suffix == ".txt" else load_generic(p) if p.suffix.lower() == ".csv" else None
        if tr is not None and tr.xyz:
            trials.append(tr)
    if not trials:
        raise EvalError(f"{d}: no trials found (expected Fxx_SAxx_Rxx.txt or FALL_*.csv / ADL_*.csv)")
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


def random_rotation(seed: int):
    rng = random.Random(seed)
    q = [rng.gauss(0, 1) for _ in range(4)]
    n = sum(c * c for c in q) ** 0.5
    w, x, y, z = (c / n for c in q)
    return [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]


def _cpython_run(jobs, rate, placement, cancel_ms, variants):
    sys.path.insert(0, str(LIB))
    from fall import FallDetector  # noqa: PLC0415 (the firmware module, in CPython)
    from fall_alert import FallAlert  # noqa: PLC0415
    results = {}
    for idx, samples in jobs:
        res = []
        for v in variants:
            kw = {} if v is None else {"impact_mg": v[0], "angle_deg": v[1]}
            if v is not None and len(v) == 3:
                kw["still_mg"] = v[2]
            d = FallDetector(rate_hz=rate, placement=placement, **kw)
            al = FallAlert(cancel_ms=cancel_ms)
            cnt, peak = 0, 0
            for k, (x, y, z) in enumerate(samples):
                now = k * 1000 // rate
                p = d.feed(x, y, z)
                if p:
                    al.suspect(p, now)
                if al.state:
                    r = al.poll(now)
                    if r:
                        cnt, peak = cnt + 1, max(peak, r[1])
            p = d.flush()
            if p:
                al.suspect(p, len(samples) * 1000 // rate)
            r = al.poll(len(samples) * 1000 // rate + cancel_ms)
            if r:
                cnt, peak = cnt + 1, max(peak, r[1])
            res.append((cnt, peak))
        results[idx] = res
    return results


def _mpy_run(jobs, rate, placement, cancel_ms, variants, micropython, heap):
    spec = ",".join("-" if v is None else ":".join(str(x) for x in v) for v in variants)
    cmd = [micropython, "-X", f"heapsize={heap}", str(Path(__file__).resolve()), str(LIB)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import threading  # noqa: PLC0415

    def feed():
        try:
            for idx, samples in jobs:
                proc.stdin.write(f"T {idx} {len(samples)} {rate} {placement} {cancel_ms} {spec}\n".encode())
                proc.stdin.write(b"".join(struct.pack("<hhh", *s) for s in samples))
            proc.stdin.close()
        except BrokenPipeError:
            pass

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    results = {}
    other = []
    for line in proc.stdout:
        parts = line.decode().split()
        if parts and parts[0] not in ("R", "DONE"):
            other.append(line.decode())
        if parts and parts[0] == "R":
            results[int(parts[1])] = [tuple(int(v) for v in r.split(":")) for r in parts[2].split(",")]
            if len(results) % 50 == 0:
                print(f"  … {len(results)}/{len(jobs)} trials", file=sys.stderr, flush=True)
    th.join()
    rc = proc.wait()
    if rc != 0 or len(results) != len(jobs):
        err = proc.stderr.read().decode() + "".join(other)
        raise EvalError(f"micropython worker failed (rc={rc}): {err[-2000:]}")
    return results


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


def _score(trials, hits, idxs):
    f = [i for i in idxs if trials[i].is_fall]
    a = [i for i in idxs if not trials[i].is_fall]
    sens = sum(1 for i in f if hits[i]) / len(f) if f else 1.0
    spec = 1 - sum(1 for i in a if hits[i]) / len(a) if a else 1.0
    return sens + spec


def loso(trials, variant_hits, variants):
    """Leave-one-subject-out: pick (impact, angle) on the other subjects, test on the one."""
    subjects = sorted({t.subject for t in trials})
    pooled = [0] * len(trials)
    chosen = {}
    default_i = 0  # the run's main variant (placement defaults or the overrides)
    for s in subjects:
        train = [i for i, t in enumerate(trials) if t.subject != s]
        test = [i for i, t in enumerate(trials) if t.subject == s]
        best, best_score = default_i, None
        for vi, v in enumerate(variants):
            if vi == 0 or v is None or len(v) != 2 or not train:
                continue
            sc = _score(trials, [variant_hits[i][vi] for i in range(len(trials))], train)
            if best_score is None or sc > best_score + 1e-12:
                best, best_score = vi, sc
        chosen[s] = "default" if variants[best] is None else {
            "impact_mg": variants[best][0], "angle_deg": variants[best][1]}
        for i in test:
            pooled[i] = variant_hits[i][best]
    out = metrics(trials, pooled)
    per = {}
    for s in subjects:
        idx = [i for i, t in enumerate(trials) if t.subject == s]
        m = metrics([trials[i] for i in idx], [pooled[i] for i in idx])
        per[s] = {"chosen": chosen[s], "sensitivity": m["sensitivity"], "specificity": m["specificity"]}
    return {"sensitivity": out["sensitivity"], "specificity": out["specificity"],
            "false_alarms_per_hour": out["false_alarms_per_hour"], "per_subject": per}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--rate", type=int, default=50, help="device sample rate, Hz (default 50)")
    ap.add_argument("--placement", choices=sorted(PLACEMENTS), default=None,
                    help="wearing position (default: waist for SisFall and generic files)")
    ap.add_argument("--cancel-ms", type=int, default=20000)
    ap.add_argument("--sensor", choices=("adxl345", "mma8451q"), default="adxl345",
                    help="SisFall accelerometer to use (default adxl345)")
    ap.add_argument("--noise-g", type=float, default=0.0, help="add Gaussian noise (robustness)")
    ap.add_argument("--rotate", type=int, default=None, metavar="SEED",
                    help="rotate the sensor frame randomly (robustness to mounting)")
    ap.add_argument("--loso", action="store_true",
                    help="also leave-one-subject-out: thresholds chosen on the other subjects")
    ap.add_argument("--impact-mg", type=int, default=None, help="override the placement's impact threshold")
    ap.add_argument("--angle-deg", type=int, default=None, help="override the placement's posture angle")
    ap.add_argument("--still-mg", type=int, default=None, help="override the placement's stillness limit")
    ap.add_argument("--cpython", action="store_true", help="run the detector module in CPython")
    ap.add_argument("--micropython", default=_default_micropython())
    ap.add_argument("--heap", default="256k")
    ap.add_argument("--per-activity", action="store_true", help="print detections per activity code")
    ap.add_argument("--limit", type=int, default=None, help="only the first N trials (smoke test)")
    args = ap.parse_args(argv)
    try:
        trials = load_dir(args.dir, args.sensor)
    except EvalError as exc:
        print(f"fall_eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        trials = trials[: args.limit]
    placement = PLACEMENTS[args.placement or "waist"]
    rot = random_rotation(args.rotate) if args.rotate is not None else None
    t0 = time.monotonic()
    jobs = [(i, resample(t, args.rate, args.noise_g, rot, seed=i)) for i, t in enumerate(trials)]
    print(f"loaded {len(trials)} trials, resampled to {args.rate} Hz in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)
    main_variant = None
    if args.impact_mg or args.angle_deg is not None or args.still_mg:
        d = PLACEMENT_DEFAULTS[placement]
        main_variant = (args.impact_mg or d[0], d[1] if args.angle_deg is None else args.angle_deg,
                        args.still_mg or d[2])
    variants = [main_variant, BASELINE]
    if args.loso:
        variants += [(a, b) for a in GRID_IMPACT for b in GRID_ANGLE]
    t0 = time.monotonic()
    try:
        if args.cpython:
            res = _cpython_run(jobs, args.rate, placement, args.cancel_ms, variants)
        else:
            res = _mpy_run(jobs, args.rate, placement, args.cancel_ms, variants, args.micropython, args.heap)
    except EvalError as exc:
        print(f"fall_eval: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t0
    hits = [res[i][0][0] for i in range(len(trials))]
    out = metrics(trials, hits)
    samples = sum(len(s) for _, s in jobs)
    out.update({"rate_hz": args.rate, "placement": args.placement or "waist",
                "runtime": "cpython" if args.cpython else "micropython",
                "samples": samples, "detector_us_per_sample": round(elapsed * 1e6 / samples / len(variants), 2)})
    if args.per_activity:
        acts = sorted({t.activity for t in trials})
        for a in acts:
            idx = [i for i, t in enumerate(trials) if t.activity == a]
            print(f"{a}: {sum(1 for i in idx if hits[i])}/{len(idx)} raised", file=sys.stderr)
    base = metrics(trials, [res[i][1][0] for i in range(len(trials))])
    out["baseline_impact_only"] = {k: base[k] for k in ("sensitivity", "specificity", "false_alarms_per_hour")}
    if base["false_alarms_per_hour"]:
        out["false_alarm_ratio_vs_baseline"] = round(out["false_alarms_per_hour"] / base["false_alarms_per_hour"], 4)
    if args.loso:
        vh = [[r[0] for r in res[i]] for i in range(len(trials))]
        out["loso"] = loso(trials, vh, variants)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
