"""`fleet offline`: gateways not seen recently (``last_seen`` is written by the monitoring ingest)."""
from __future__ import annotations

import argparse

from typing import Any

from ._common import add_json, api, emit, fmt_ago


def __getattr__(name: str) -> Any:
    """``list_offline`` moved to fleet.monitoring._queries; scripts still import it from here (lazily,
    so ``fleet --help`` does not load the monitoring package)."""
    if name == "list_offline":
        from ..monitoring._queries import list_offline

        return list_offline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(sub) -> None:
    p = add_json(sub.add_parser("offline", help="gateways offline or not seen for --minutes (default 15)"))
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--municipality", "-m")
    p.add_argument("--limit", type=int, default=200, help="rows to show (the total is always counted)")
    p.set_defaults(func=cmd_offline)


def cmd_offline(args: argparse.Namespace, cfg) -> int:
    from ._filters import check_municipality

    with api(cfg) as c:
        muni = check_municipality(c, args.municipality) if args.municipality else None
        total, rows = c.monitoring.offline(minutes=args.minutes, municipality=muni, limit=args.limit)
    now = cfg.clock()
    if cfg.json:
        emit(cfg, {"total": total, "gateways": rows})
        return 0
    for r in rows:
        r["silent_for"] = fmt_ago(r["last_seen"], now)
    emit(cfg, rows, columns=["gateway_id", "serial", "installation", "municipality", "last_seen", "silent_for",
                             "online", "version"])
    print(f"{total} gateway(s) offline or silent for more than {args.minutes:g} min"
          + (f" (showing {len(rows)})" if total > len(rows) else ""))
    return 0
