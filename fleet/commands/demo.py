"""`fleet demo-data`: fill an empty database with a realistic demo set."""
from __future__ import annotations

import argparse
import sys

from ._common import emit, local_only


def register(sub) -> None:
    p = sub.add_parser("demo-data", help="fill an EMPTY database with demo municipalities, stock, kits, installations, users",
                       epilog="example: fleet --db sqlite:///tmp/demo.db demo-data && "
                              "FLEET_USER=admin fleet --db sqlite:///tmp/demo.db stock levels")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--homes", type=int, default=12, help="homes per municipality")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, cfg) -> int:
    from ..demo import DEMO_PASSWORD, build

    local_only(cfg, "fleet demo-data (fills an empty database)")
    store = cfg.open_store()
    try:
        counts = build(store, at=cfg.clock(), seed=args.seed, homes=args.homes,
                       say=lambda m: print(m, file=sys.stderr) if cfg.progress else None)
    finally:
        store.close()
    if cfg.json:
        emit(cfg, counts)
    else:
        print(f"demo data: {counts['items']} items, {counts['kits']} kits, {counts['installations']} installations")
        print(f"users: admin, sam (support), audrey (auditor), tech.osl/bgo/trd, log.osl/bgo/trd — password "
              f"'{DEMO_PASSWORD}'; e.g. `fleet login admin` or FLEET_USER=admin (SQLite only)")
    return 0
