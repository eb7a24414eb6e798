"""`fleet stats`: benefit follow-up per municipality and period (table, JSON, CSV, SVG)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import add_json, api, emit, parse_day


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
    from datetime import datetime, timezone

    from ..errors import ValidationError

    start, end = parse_day(args.start), parse_day(args.end)
    if end <= start:
        raise ValidationError(f"--to {args.end} must be after --from {args.start}")
    day = lambda t: datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
    with api(cfg) as c:
        if args.municipality:
            from ._filters import check_municipality

            args.municipality = check_municipality(c, args.municipality)
        rows = c.stats.benefits(start=day(start), end=day(end), by=args.by, municipality=args.municipality)
    if args.csv:
        text = summaries_csv(rows)
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            Path(args.csv).write_text(text)
            print(f"wrote {args.csv}", file=sys.stderr)
    if args.svg:
        for path in write_svgs(Path(args.svg), rows):
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


def summaries_csv(rows: list[dict]) -> str:
    """Long format, one row per municipality, period, metric (and alarm type): the columns of
    ``fleet.monitoring._stats.to_csv``, written from the service's summaries."""
    import csv
    import io
    from datetime import datetime, timezone

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["municipality", "period_start", "period_end", "metric", "key", "value"])
    day = lambda t: datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
    for d in rows:
        ps, pe = day(d["period_start"]), day(d["period_end"])
        for k, v in d.items():
            if k in ("municipality", "period_start", "period_end", "period", "alarms_by_type"):
                continue
            w.writerow([d["municipality"], ps, pe, k, "", "" if v is None else v])
        for t, n in d["alarms_by_type"].items():
            w.writerow([d["municipality"], ps, pe, "alarms", t, n])
    return buf.getvalue()


def write_svgs(directory: Path, rows: list[dict]) -> list[Path]:
    """SVG bar charts from the service's summaries (one per figure)."""
    from ..monitoring._svg import bar_chart

    directory.mkdir(parents=True, exist_ok=True)
    munis = sorted({r["municipality"] for r in rows})
    periods = sorted({(r["period_start"], r["period"]) for r in rows})
    by = {(r["municipality"], r["period_start"]): r for r in rows}

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
    from ..errors import ValidationError

    if args.night_checks < 0:
        raise ValidationError(f"--night-checks {args.night_checks} is negative; give checks per night, e.g. 2")
    with api(cfg) as c:
        c.stats.set_baseline(args.municipality, args.night_checks)
    return 0
