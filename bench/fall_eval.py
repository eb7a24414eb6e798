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
import struct  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:   # loaded by path (tests, train_fall.py): its sibling module
    sys.path.insert(0, str(ROOT / "bench"))
from _fall_data import (  # noqa: E402,F401 (Trial, load_dir, resample: also used by train_fall.py, tests)
    EvalError,
    SkipTrial,
    Trial,
    check_trial,
    load_dir,
    random_rotation,
    resample,
)
from _fall_select import KNOBS as _KNOBS  # noqa: E402
from _fall_select import TARGETS, _breakdown, loso, metrics  # noqa: E402,F401 (TARGETS, loso, metrics: also used by train_fall.py, tests)


def _default_micropython() -> str:
    import shutil  # noqa: PLC0415

    venv = ROOT / ".venv" / "bin" / "micropython"
    if venv.exists():
        return str(venv)
    return shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
LIB = ROOT / "firmware" / "lib"
PLACEMENTS = {"wrist": 0, "chest": 1, "pendant": 1, "waist": 2, "pocket": 2}
PLACEMENT_NAMES = ("wrist", "chest", "waist")
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
