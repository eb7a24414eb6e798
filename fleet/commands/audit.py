"""`fleet audit`: read the audit log (auditor, admin)."""
from __future__ import annotations

import argparse

from ._common import add_json, api, emit, fmt_time


def register(sub) -> None:
    p = add_json(sub.add_parser("audit", help="the audit log of changes and personal-data reads"))
    p.add_argument("--entity", help="item, installation, user, kit, location, ...")
    p.add_argument("--id", dest="entity_id", help="entity id, e.g. I-000001 or a serial")
    p.add_argument("--actor", help="user name")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.audit.entries(entity=args.entity, entity_id=args.entity_id, actor=args.actor, limit=args.limit)
    if not cfg.json:
        for r in rows:
            r["at"] = fmt_time(r["at"])
    emit(cfg, rows, columns=["at", "actor", "action", "entity", "entity_id", "personal", "detail"])
    return 0
