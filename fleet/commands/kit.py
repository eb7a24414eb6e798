"""`fleet kit ...`: kit templates, assembly (scan the parts), dismantling."""
from __future__ import annotations

import argparse

from ._common import add_json, api, emit, fmt_time


def register(sub) -> None:
    p = sub.add_parser("kit", help="kit templates and kits (e.g. safety alarm = gateway + button + fall sensor)")
    s = p.add_subparsers(dest="kit_cmd", metavar="ACTION", required=True)
    add_json(s.add_parser("templates", help="list kit templates and their parts")).set_defaults(func=cmd_templates)
    t = s.add_parser("template-add", help="define a template: fleet kit template-add safety-alarm 'Safety alarm' gateway=1 button=1 fall=1")
    t.add_argument("code")
    t.add_argument("name")
    t.add_argument("parts", nargs="+", metavar="ROLE=QTY")
    t.set_defaults(func=cmd_template_add)
    a = s.add_parser("assemble", help="assemble a kit from in-stock items (serials, or - to read them from a scanner)")
    a.add_argument("template")
    a.add_argument("serials", nargs="+")
    a.add_argument("--code", help="kit code (default K-NNNNNN)")
    a.set_defaults(func=cmd_assemble)
    sh = add_json(s.add_parser("show", help="a kit and its items"))
    sh.add_argument("code")
    sh.set_defaults(func=cmd_show)
    ls = add_json(s.add_parser("list", help="kits"))
    ls.add_argument("--state", choices=["assembled", "installed", "dismantled"])
    ls.set_defaults(func=cmd_list)
    d = s.add_parser("dismantle", help="put an assembled kit's items back in stock")
    d.add_argument("code")
    d.set_defaults(func=cmd_dismantle)


def cmd_templates(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        data = c.catalog.kit_templates()
    if not cfg.json:
        for d in data:
            d["parts"] = " + ".join(f"{q}×{r}" for r, q in d["parts"].items())
    emit(cfg, data, columns=["code", "name", "parts"])
    return 0


def cmd_template_add(args: argparse.Namespace, cfg) -> int:
    from ..errors import ValidationError

    parts: dict[str, int] = {}
    for p in args.parts:
        role, _, qty = p.partition("=")
        if not qty.isdigit():
            raise ValidationError(f"part {p!r} must look like ROLE=QTY, e.g. button=1")
        parts[role] = int(qty)
    with api(cfg) as c:
        c.catalog.add_kit_template(args.code, args.name, parts)
    print(f"kit template {args.code} added")
    return 0


def cmd_assemble(args: argparse.Namespace, cfg) -> int:
    import sys

    from ..inventory import clean_scan

    serials = list(args.serials)
    if serials == ["-"]:
        serials = [sc.serial for sc in (clean_scan(l) for l in sys.stdin) if sc.ok]
    with api(cfg) as c:
        kit = c.kits.assemble(args.template, serials, code=args.code)
    print(f"kit {kit['code']} assembled at {kit['location']}: " + ", ".join(i["serial"] for i in kit["items"]))
    return 0


def cmd_show(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        kit = c.kits.show(args.code)
    if cfg.json:
        emit(cfg, kit)
        return 0
    items = kit.pop("items")
    kit["created_at"] = fmt_time(kit["created_at"])
    emit(cfg, {k: v for k, v in kit.items() if k not in ("id", "location_id")})
    print()
    emit(cfg, items, columns=["serial", "hw_id", "model_code", "role", "state"])
    return 0


def cmd_list(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.kits.list(state=args.state)
    if not cfg.json:
        for r in rows:
            r["created_at"] = fmt_time(r["created_at"])
    emit(cfg, rows, columns=["code", "template", "state", "location", "created_at", "created_by"])
    return 0


def cmd_dismantle(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        c.kits.dismantle(args.code)
    print(f"kit {args.code} dismantled; items back in stock")
    return 0
