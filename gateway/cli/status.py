"""`gateway status`: read the running daemon's status endpoint (table or --json)."""
from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the running gateway's status")
    p.add_argument("--config", "-c", metavar="FILE", help="read [status] host/port from this config")
    p.add_argument("--url", help="status endpoint (default http://<status.host>:<status.port>/status)")
    p.add_argument("--json", action="store_true", help="print the raw status JSON")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config
    from gateway.adapters.status import StatusError, fetch_status, render_table

    url = args.url
    if not url:
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            print(f"gateway status: {exc}", file=sys.stderr)
            return 2
        url = f"http://{cfg.status.host}:{cfg.status.port}/status"
    try:
        snap = fetch_status(url, args.timeout)
    except StatusError as exc:
        print(f"gateway status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(snap, indent=2) if args.json else render_table(snap))
    return 0
