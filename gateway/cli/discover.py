"""`gateway discover`: list gateways advertising on the LAN (zeroconf)."""
from __future__ import annotations

import argparse
import json
import sys

from contracts.discovery import SERVICE_TYPE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="find gateways on the local network (mDNS)")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="browse this long (default 3 s)")
    p.add_argument("--interface", action="append", default=[], metavar="IP",
                   help="browse on this interface address only (repeatable)")
    p.add_argument("--service-type", default=SERVICE_TYPE)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_discover)


def cmd_discover(args: argparse.Namespace) -> int:
    from gateway.adapters.discovery import DiscoveryError, discover

    if not args.json:
        print(f"browsing {args.service_type} for {args.timeout:g} s ...", file=sys.stderr)
    try:
        found = discover(args.timeout, service_type=args.service_type, interfaces=tuple(args.interface))
    except DiscoveryError as exc:
        print(f"gateway discover: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([g.as_dict() for g in found], indent=2))
        return 0
    if not found:
        print("no gateways found", file=sys.stderr)
        return 0
    print(f"{'ID':<20}{'VERSION':<10}{'STATUS URL'}")
    for g in found:
        print(f"{g.id:<20}{g.version:<10}{g.status_url}")
    return 0
