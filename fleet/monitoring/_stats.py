"""Benefit statistics per municipality and period (pure computations over fetched rows).

Figures (docs/monitoring.md): alarms by class and type (test alarms excluded),
acknowledgement times (operator ``accepted`` − alarm ``occurred_at``; and platform
``received``), cancelled false alarms (cancel events from the wearer), gateway uptime
(time online / time in period, from state transitions), and physical night checks
replaced (night-supervised installations × nights × the municipality's baseline).
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

NIGHT_ROLES = ("bed", "door", "motion")


@dataclass(frozen=True)
class Period:
    start: float
    end: float

    @property
    def label(self) -> str:
        f = lambda t: datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
        return f"{f(self.start)}..{f(self.end)}"


def split_periods(start: float, end: float, by: str) -> list[Period]:
    """Cut [start, end) into calendar days, ISO weeks (Mondays), months, or one period ("all")."""
    if by == "all":
        return [Period(start, end)]
    out: list[Period] = []
    cur = datetime.fromtimestamp(start, tz=timezone.utc)
    stop = datetime.fromtimestamp(end, tz=timezone.utc)
    while cur < stop:
        if by == "day":
            nxt = (cur + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        elif by == "week":
            nxt = (cur + timedelta(days=7 - cur.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        elif by == "month":
            nxt = (cur.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
        else:
            raise ValueError(f"period {by!r} is not day/week/month/all")
        nxt = min(nxt, stop)
        out.append(Period(cur.timestamp(), nxt.timestamp()))
        cur = nxt
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def uptime_fraction(transitions: Sequence[tuple[float, bool]], initial: bool | None, period: Period) -> float | None:
    """Fraction of ``period`` online given the state at its start and the (time, online) changes in it."""
    state = initial
    t = period.start
    online = 0.0
    known = 0.0
    for at, on in sorted(transitions):
        if at < period.start:
            state = on
            continue
        if at >= period.end:
            break
        if state is not None:
            known += at - t
            online += (at - t) if state else 0.0
        state, t = on, at
    if state is not None:
        known += period.end - t
        online += (period.end - t) if state else 0.0
    return online / known if known > 0 else None


@dataclass
class MunicipalityStats:
    municipality: str
    period: Period
    alarms: Counter = field(default_factory=Counter)         # (class, type) -> n
    ack_accept_s: list[float] = field(default_factory=list)
    ack_receive_s: list[float] = field(default_factory=list)
    unacknowledged: int = 0
    cancelled: int = 0
    uptime: list[float] = field(default_factory=list)        # per gateway
    night_checks_replaced: float | None = None

    def summary(self) -> dict[str, Any]:
        care = sum(n for (c, _), n in self.alarms.items() if c == "care")
        tech = sum(n for (c, _), n in self.alarms.items() if c == "technical")
        r = lambda x: None if x is None else round(x, 1)  # noqa: E731
        return {
            "municipality": self.municipality, "period_start": self.period.start, "period_end": self.period.end,
            "period": self.period.label, "care_alarms": care, "technical_alarms": tech,
            "alarms_by_type": {t: n for (_, t), n in sorted(self.alarms.items(), key=lambda kv: (-kv[1], kv[0]))},
            "acknowledged": len(self.ack_accept_s), "unacknowledged": self.unacknowledged,
            "ack_median_s": r(percentile(self.ack_accept_s, 0.5)), "ack_p90_s": r(percentile(self.ack_accept_s, 0.9)),
            "platform_receipt_median_s": r(percentile(self.ack_receive_s, 0.5)),
            "cancelled_false_alarms": self.cancelled,
            "uptime_pct": r(100 * sum(self.uptime) / len(self.uptime)) if self.uptime else None,
            "gateways": len(self.uptime),
            "night_checks_replaced": r(self.night_checks_replaced),
        }


def compute(periods: Sequence[Period], *, alarms: Iterable[dict], transitions: Iterable[dict],
            initial_state: dict[str, bool], gateway_municipality: dict[str, str],
            night_installations: Iterable[dict], baselines: dict[str, float],
            municipalities: Iterable[str] = ()) -> list[MunicipalityStats]:
    """``alarms``: alarm_log rows; ``transitions``: gateway_state_log rows; ``night_installations``:
    {municipality, start, end} of installations with a night-supervision sensor."""
    out: dict[tuple[str, int], MunicipalityStats] = {}

    def get(m: str, i: int) -> MunicipalityStats:
        key = (m, i)
        if key not in out:
            out[key] = MunicipalityStats(m, periods[i])
        return out[key]

    def period_of(t: float | None) -> int | None:
        if t is None:
            return None
        for i, p in enumerate(periods):
            if p.start <= t < p.end:
                return i
        return None

    for m in municipalities:
        for i in range(len(periods)):
            get(m, i)
    for a in alarms:
        am = gateway_municipality.get(a.get("gateway_id") or "")
        ai = period_of(a.get("occurred_at"))
        if am is None or ai is None or a.get("test"):
            continue
        st = get(am, ai)
        if a.get("class") == "event":
            st.cancelled += 1
            continue
        if a.get("class") not in ("care", "technical"):
            continue
        st.alarms[(a["class"], a["type"])] += 1
        if a.get("class") == "care":
            if a.get("ack_accepted_at") is not None:
                st.ack_accept_s.append(max(0.0, a["ack_accepted_at"] - a["occurred_at"]))
            else:
                st.unacknowledged += 1
        if a.get("ack_received_at") is not None:
            st.ack_receive_s.append(max(0.0, a["ack_received_at"] - a["occurred_at"]))
    by_gw: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for t in transitions:
        by_gw[t["gateway_id"]].append((float(t["at"]), bool(t["online"])))
    for gw in set(by_gw) | set(initial_state):
        gm = gateway_municipality.get(gw)
        if gm is None:
            continue
        for i, p in enumerate(periods):
            f = uptime_fraction(by_gw.get(gw, []), initial_state.get(gw), p)
            if f is not None:
                get(gm, i).uptime.append(f)
    nights: dict[tuple[str, int], float] = defaultdict(float)
    for inst in night_installations:
        m = inst["municipality"]
        for i, p in enumerate(periods):
            lo, hi = max(p.start, inst["start"]), min(p.end, inst["end"] if inst["end"] is not None else p.end)
            if hi > lo:
                nights[(m, i)] += (hi - lo) / 86400.0
    for (m, i), n in nights.items():
        if m in baselines:
            get(m, i).night_checks_replaced = n * baselines[m]
    return sorted(out.values(), key=lambda s: (s.municipality, s.period.start))


def to_csv(stats: Sequence[MunicipalityStats]) -> str:
    """Long format: one row per municipality, period, metric (and alarm type)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["municipality", "period_start", "period_end", "metric", "key", "value"])
    for s in stats:
        d = s.summary()
        ps = datetime.fromtimestamp(s.period.start, tz=timezone.utc).strftime("%Y-%m-%d")
        pe = datetime.fromtimestamp(s.period.end, tz=timezone.utc).strftime("%Y-%m-%d")
        for k, v in d.items():
            if k in ("municipality", "period_start", "period_end", "period", "alarms_by_type"):
                continue
            w.writerow([s.municipality, ps, pe, k, "", "" if v is None else v])
        for t, n in d["alarms_by_type"].items():
            w.writerow([s.municipality, ps, pe, "alarms", t, n])
    return buf.getvalue()
