"""`fleet stock levels | reorder`: stock per location and model, with reorder warnings."""
from __future__ import annotations

import argparse
import sys

from ._common import add_json, api, emit

COLUMNS = ["location", "model", "role", "in_stock", "in_kit", "received", "other", "reorder_point", "warning"]


def register(sub) -> None:
    p = sub.add_parser("stock", help="stock levels per location and model; reorder warnings")
    s = p.add_subparsers(dest="stock_cmd", metavar="ACTION", required=True)
    lv = add_json(s.add_parser("levels", help="counts per warehouse/van and model (REORDER below the reorder point)"))
    for a in (lv,):
        a.add_argument("--location", help="e.g. WH-OSL or VAN-OSL-1")
        a.add_argument("--model")
        a.add_argument("--municipality", "-m")
    lv.set_defaults(func=cmd_levels)
    ro = add_json(s.add_parser("reorder", help="only the rows below their reorder point (exit 1 if any)"))
    ro.add_argument("--municipality", "-m")
    ro.set_defaults(func=cmd_reorder)
    rp = s.add_parser("set-reorder", help="set the reorder point of a model at a location")
    rp.add_argument("location")
    rp.add_argument("model")
    rp.add_argument("min_qty", type=int)
    rp.set_defaults(func=cmd_set_reorder)


def cmd_levels(args: argparse.Namespace, cfg) -> int:
    from ._filters import check_filters

    with api(cfg) as c:
        f = check_filters(c, location=args.location, model=args.model, municipality=args.municipality)
        rows = c.stock.levels(location=f["location"], model=f["model"], municipality=f["municipality"])
    emit(cfg, rows, columns=COLUMNS)
    warn = sum(1 for r in rows if r["warning"])
    if warn and not cfg.json:
        print(f"warning: {warn} model/location pair(s) below the reorder point", file=sys.stderr)
    return 0


def cmd_reorder(args: argparse.Namespace, cfg) -> int:
    from ._filters import check_filters

    with api(cfg) as c:
        f = check_filters(c, municipality=args.municipality)
        rows = c.stock.levels(municipality=f["municipality"], below_reorder_point=True)
    emit(cfg, rows, columns=COLUMNS)
    return 1 if rows else 0


def cmd_set_reorder(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        c.stock.set_reorder_point(args.location, args.model, args.min_qty)
    print(f"reorder point {args.model} at {args.location}: {args.min_qty}")
    return 0
