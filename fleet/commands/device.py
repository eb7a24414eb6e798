"""`fleet device show SERIAL|DEVICE_ID`: one item, its model, state, place and history."""
from __future__ import annotations

import argparse

from ._common import add_json, api, emit, fmt_time, table


def register(sub) -> None:
    p = sub.add_parser("device", help="look up one device by serial or device id")
    s = p.add_subparsers(dest="device_cmd", metavar="ACTION", required=True)
    sh = add_json(s.add_parser("show", help="model, state, location, kit, installation, gateway status, history"))
    sh.add_argument("key", metavar="SERIAL|DEVICE_ID")
    sh.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        d = c.items.show(args.key)
    if cfg.json:
        emit(cfg, d)
        return 0
    history = d.pop("history")
    d["updated_at"] = fmt_time(d["updated_at"])
    if "last_seen" in d:
        d["last_seen"] = fmt_time(d["last_seen"])
    emit(cfg, d)
    print("\nhistory (newest first):")
    for h in history:
        h["at"] = fmt_time(h["at"])
    table(history, ["at", "actor", "from_state", "to_state", "to_location", "reason", "ref"])
    return 0
