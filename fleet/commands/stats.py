"""`fleet stats`: benefit follow-up per municipality and period (table, JSON, CSV, SVG)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import add_json, emit, parse_day, session


def register(sub) -> None:
    p = sub.add_parser("stats", help="benefit statistics: alarms, ack times, false alarms, uptime, night checks",
                       description="See docs/monitoring.md for how each figure is computed.")
    s = p.add_subparsers(dest="stats_cmd", metavar="ACTION", required=True)
    x = add_json(s.add_parser("benefits", help="figures per municipality and period"))
    x.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD (midnight UTC)")
    x.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (midnight UTC, exclusive)")
    x.add_argument("--by", choices=("day", "week", "month", "all"), default="month")
    x.add_argument("--municipality", "-m")
    x.add_argument("--csv", metavar="FILE", help="also write long-format CSV ('-' for stdout)")
    x.add_argument("--svg", metavar="DIR", help="also write SVG charts into DIR")
    x.set_defaults(func=cmd_benefits)
    x = s.add_parser("baseline", help="set a municipality's zero-point: physical night checks per home per night")
    x.add_argument("municipality")
    x.add_argument("--night-checks", type=float, required=True)
    x.set_defaults(func=cmd_baseline)


def cmd_benefits(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..errors import ValidationError
    from ..monitoring._queries import stats_inputs
    from ..monitoring._stats import compute, split_periods, to_csv

    start, end = parse_day(args.start), parse_day(args.end)
    if end <= start:
        raise ValidationError(f"--to {args.end} must be after --from {args.start}")
    periods = split_periods(start, end, args.by)
    with session(cfg) as s, s.store.transaction(write=False) as tx:
        if args.municipality:
            from ._filters import check_municipality

            args.municipality = check_municipality(s, tx, args.municipality)
        s.actor.require(Permission.STATS_READ, args.municipality)
        inputs = stats_inputs(tx, start=start, end=end, scope=s.actor.municipalities,
                              municipality=args.municipality)
    stats = compute(periods, **inputs)
    rows = [st.summary() for st in stats]
    if args.csv:
        text = to_csv(stats)
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            Path(args.csv).write_text(text)
            print(f"wrote {args.csv}", file=sys.stderr)
    if args.svg:
        for path in write_svgs(Path(args.svg), stats):
            print(f"wrote {path}", file=sys.stderr)
    if args.csv == "-":
        return 0
    if cfg.json:
        emit(cfg, rows)
    else:
        emit(cfg, rows, columns=["municipality", "period", "care_alarms", "technical_alarms", "acknowledged",
                                 "unacknowledged", "ack_median_s", "ack_p90_s", "cancelled_false_alarms",
                                 "uptime_pct", "night_checks_replaced"])
    return 0


def write_svgs(directory: Path, stats) -> list[Path]:
    from ..monitoring._svg import bar_chart

    directory.mkdir(parents=True, exist_ok=True)
    munis = sorted({st.municipality for st in stats})
    periods = sorted({(st.period.start, st.period.label) for st in stats})
    by = {(st.municipality, st.period.start): st.summary() for st in stats}

    def series(metric):
        return {m: [by.get((m, p[0]), {}).get(metric) for p in periods] for m in munis}

    out = []
    labels = [p[1] for p in periods]
    for name, metric, title, unit in (
            ("care_alarms", "care_alarms", "Care alarms per period", ""),
            ("ack_median", "ack_median_s", "Median time to operator acceptance", " s"),
            ("false_alarms", "cancelled_false_alarms", "Alarms cancelled by the wearer", ""),
            ("uptime", "uptime_pct", "Gateway uptime", " %"),
            ("night_checks", "night_checks_replaced", "Physical night checks replaced", "")):
        path = directory / f"{name}.svg"
        path.write_text(bar_chart(title, labels, series(metric), unit=unit))
        out.append(path)
    return out


def cmd_baseline(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..errors import ValidationError
    from ..monitoring._queries import set_baseline

    if args.night_checks < 0:
        raise ValidationError(f"--night-checks {args.night_checks} is negative; give checks per night, e.g. 2")
    with session(cfg) as s, s.store.transaction() as tx:
        s.actor.require(Permission.CONFIG_WRITE, args.municipality)
        set_baseline(tx, args.municipality, args.night_checks, at=cfg.clock(), by=s.actor.name)
        s.audit(tx, "stats.baseline", "municipality", args.municipality, municipality=args.municipality,
                detail={"night_checks_per_night": args.night_checks})
    return 0
