"""Would a small learned model beat the physical rules? Leave-one-subject-out study.

    pip install -e '.[train]'        # scikit-learn (optional extra, host only)
    python bench/train_fall.py --placement wrist ../shared/data/umafall-dev/wrist
    python bench/train_fall.py --placement chest ../shared/data/umafall-dev/chest

The firmware detector (firmware/lib/fall.py, in CPython) finds the candidates exactly as
on the device (impact, chain, settling) and the features of each are recorded when it
decides: peak |a|, turn of the gravity direction, stillness, free-fall depth, impact
velocity change (impulse), impact-chain duration, forearm elevation after it (the sensor's
x axis against horizontal: the wristband's forearm rule). On the same candidates, with each
subject left out in turn (trained on the others, scored on it), the script compares

- ``rules``: the placement's physical rules as the firmware applies them (fixed, not fitted);
- ``tree_d2`` / ``tree_d3``: a shallow decision tree (class-balanced, min 5 per leaf);
- ``forest``: 15 trees of depth 3 (class-balanced);

trial by trial as fall_eval.py counts (a fall trial is detected if a candidate is
positive; an ADL trial is a false positive if any is; false alarms per hour of ADL).
Training data: the largest candidate of each fall trial is a fall, every candidate of an
ADL trial is not. Fixed seed (--seed, default 7): the output is reproducible.

Result on the UMAFall development subset (docs/fall-detection.md): no model beats the
rules on held-out subjects (at the pendant the forest equals them, at the wrist every
model is clearly worse), so the firmware ships the rules and no model.
The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "firmware" / "lib"))

import fall_eval  # noqa: E402  (the bench's loaders: same trials, same skips)
from fall import FallDetector, _isqrt  # noqa: E402  (the firmware module)

FEATURES = ("peak_mg", "turn_deg", "still_mg", "freefall_mg", "impulse_mgs", "chain_ms", "forearm_deg")


class _Probe(FallDetector):
    """The firmware detector, recording the features of every candidate it decides."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen: list[tuple[dict, bool]] = []

    def _decide(self):
        n = self._count
        sx, sy, sz = self._sx, self._sy, self._sz
        s2 = sx * sx + sy * sy + sz * sz
        var_n2 = self._ss * n - s2
        turn = 0.0
        for k in range(self._pk):
            r = (self._px[k], self._py[k], self._pz[k])
            q = math.sqrt((r[0] ** 2 + r[1] ** 2 + r[2] ** 2) * s2)
            if q:
                c = max(-1.0, min(1.0, (r[0] * sx + r[1] * sy + r[2] * sz) / q))
                turn = max(turn, math.degrees(math.acos(c)))
        f = {"peak_mg": _isqrt(self._peak2), "turn_deg": turn, "still_mg": _isqrt(max(0, var_n2)) / n,
             "freefall_mg": _isqrt(self._ffm2) if self._ffm2 < 0x3FFFFFFF else 2000,
             "impulse_mgs": self._burst * 1000 / self.rate_hz / 1000, "chain_ms": self._chain * 1000 / self.rate_hz,
             "forearm_deg": math.degrees(math.asin(min(1.0, abs(sx) / math.sqrt(s2)))) if s2 else 90.0}
        hit = super()._decide()
        self.seen.append((f, bool(hit)))
        return hit


def candidates(trial_samples, rate: int, placement: int) -> list[tuple[dict, bool]]:
    d = _Probe(rate, placement)
    for x, y, z in trial_samples:
        d.feed(x, y, z)
    d.flush()
    return d.seen


def _metrics(trials, hits) -> dict:
    m = fall_eval.metrics(trials, hits)
    return {k: m[k] for k in ("sensitivity", "specificity", "false_alarms_per_hour")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--placement", choices=sorted(fall_eval.PLACEMENTS), default="wrist")
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    try:
        import numpy as np
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.tree import DecisionTreeClassifier
    except ImportError:
        print("train_fall: needs scikit-learn: pip install -e '.[train]'", file=sys.stderr)
        return 2
    skipped: list = []
    trials = fall_eval.load_dir(args.dir, "adxl345", skipped)
    placement = fall_eval.PLACEMENTS[args.placement]
    cands = [candidates(fall_eval.resample(t, args.rate), args.rate, placement) for t in trials]
    print(f"{len(trials)} trials ({len(skipped)} skipped), {sum(len(c) for c in cands)} candidates", file=sys.stderr)

    rows = []   # (trial index, subject, label, features)
    for i, (t, cs) in enumerate(zip(trials, cands)):
        if not cs:
            continue
        keep = [max(range(len(cs)), key=lambda k: cs[k][0]["peak_mg"])] if t.is_fall else range(len(cs))
        for k in keep:
            rows.append((i, t.subject, int(t.is_fall), [cs[k][0][f] for f in FEATURES]))
    X = np.array([r[3] for r in rows], dtype=float)
    y = np.array([r[2] for r in rows])
    subj = np.array([r[1] for r in rows])
    tidx = np.array([r[0] for r in rows])

    models = {
        "tree_d2": lambda: DecisionTreeClassifier(max_depth=2, min_samples_leaf=5, class_weight="balanced",
                                                  random_state=args.seed),
        "tree_d3": lambda: DecisionTreeClassifier(max_depth=3, min_samples_leaf=5, class_weight="balanced",
                                                  random_state=args.seed),
        "forest": lambda: RandomForestClassifier(n_estimators=15, max_depth=3, min_samples_leaf=3,
                                                 class_weight="balanced", random_state=args.seed),
    }
    out: dict = {"placement": args.placement, "trials": len(trials), "candidates": int(len(rows)),
                 "features": list(FEATURES), "seed": args.seed}
    # the firmware's own decisions on all candidates (fixed physical rules)
    out["rules"] = _metrics(trials, [sum(h for _, h in cs) for cs in cands])
    for name, make in models.items():
        hits = [0] * len(trials)
        if len(set(y)) < 2:
            continue
        for s in sorted(set(subj)):
            train, test = subj != s, subj == s
            if len(set(y[train])) < 2 or not test.any():
                continue
            m = make().fit(X[train], y[train])
            for i, p in zip(tidx[test], m.predict(X[test])):
                hits[i] += int(p)
        out[name] = _metrics(trials, hits)
        if name == "tree_d2":  # what a tree fitted on everything would say (for the reader)
            from sklearn.tree import export_text  # noqa: PLC0415
            print(export_text(make().fit(X, y), feature_names=list(FEATURES)), file=sys.stderr)
    for k in ("rules", *models):
        if k in out:
            v = out[k]
            print(f"{k:8s} sensitivity {v['sensitivity']}  specificity {v['specificity']}  "
                  f"false alarms/h {v['false_alarms_per_hour']}", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
