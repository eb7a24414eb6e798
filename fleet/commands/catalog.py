"""`fleet model ...`, `fleet location ...`: the catalog of device models and places."""
from __future__ import annotations

import argparse

from ._common import add_json, api, emit


def register(sub) -> None:
    m = sub.add_parser("model", help="device models (role, radio, firmware family)")
    ms = m.add_subparsers(dest="model_cmd", metavar="ACTION", required=True)
    add_json(ms.add_parser("list", help="list device models")).set_defaults(func=cmd_model_list)
    ma = ms.add_parser("add", help="add a model: fleet model add WT-BTN-2 'Alarm button' --role button --radio ble --firmware wt-sensor")
    ma.add_argument("code")
    ma.add_argument("name")
    ma.add_argument("--role", required=True)
    ma.add_argument("--radio", required=True)
    ma.add_argument("--firmware", required=True, help="firmware family")
    ma.set_defaults(func=cmd_model_add)

    loc = sub.add_parser("location", help="warehouses, vans, homes, institutions and rooms, repair vendors")
    ls = loc.add_subparsers(dest="location_cmd", metavar="ACTION", required=True)
    ll = add_json(ls.add_parser("list", help="list locations"))
    ll.add_argument("--kind")
    ll.add_argument("--municipality", "-m")
    ll.set_defaults(func=cmd_location_list)
    la = ls.add_parser("add", help="add a location: fleet location add INST-SAGA/104 room --parent INST-SAGA")
    la.add_argument("code")
    la.add_argument("kind", choices=["warehouse", "van", "home", "institution", "room", "repair_vendor"])
    la.add_argument("--name")
    la.add_argument("--municipality", "-m")
    la.add_argument("--parent", help="institution code (rooms)")
    la.set_defaults(func=cmd_location_add)
    add_json(ls.add_parser("municipalities", help="list municipalities")).set_defaults(func=cmd_municipalities)
    mu = ls.add_parser("municipality-add", help="add a municipality: fleet location municipality-add 0301 Oslo")
    mu.add_argument("id")
    mu.add_argument("name")
    mu.set_defaults(func=cmd_municipality_add)


def cmd_model_list(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.catalog.models()
    emit(cfg, rows, columns=["code", "name", "role", "radio", "firmware_family"])
    return 0


def cmd_model_add(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        c.catalog.add_model(args.code, args.name, role=args.role, radio=args.radio, firmware_family=args.firmware)
    print(f"model {args.code} added")
    return 0


def cmd_location_list(args: argparse.Namespace, cfg) -> int:
    from ._filters import check_choice, check_filters

    if args.kind:
        args.kind = check_choice(args.kind, ["warehouse", "van", "home", "institution", "room", "repair_vendor"],
                                 "--kind", "location kind")
    with api(cfg) as c:
        f = check_filters(c, municipality=args.municipality)
        rows = c.catalog.locations(kind=args.kind, municipality=f["municipality"])
    emit(cfg, rows, columns=["code", "kind", "name", "municipality", "parent"])
    return 0


def cmd_location_add(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        c.catalog.add_location(args.code, args.kind, name=args.name, municipality=args.municipality,
                               parent=args.parent)
    print(f"location {args.code} added")
    return 0


def cmd_municipalities(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.catalog.municipalities()
    emit(cfg, rows, columns=["id", "name"])
    return 0


def cmd_municipality_add(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        c.catalog.add_municipality(args.id, args.name)
    print(f"municipality {args.id} {args.name} added")
    return 0
