"""Scoring and leave-one-subject-out threshold selection of bench/fall_eval.py (CPython only).

``metrics`` counts a run (sensitivity, specificity, false alarms per hour of ADL);
``loso`` re-chooses a placement's thresholds per held-out subject on the other subjects
with one of three selections (``youden``, ``targets``, ``1se``: docs/fall-detection.md
"Evaluation"). Trials are bench/fall_eval.py's ``Trial`` (is_fall, subject, activity,
duration_s).
"""
from __future__ import annotations

import math

# the detector knobs a variant sets, in order (impact, angle, still, freefall, impulse, arm)
KNOBS = ("impact_mg", "angle_deg", "still_mg", "freefall_mg", "impulse_mgs", "arm_deg")


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
    return {k: x for k, x in zip(KNOBS, v) if x >= 0}


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
