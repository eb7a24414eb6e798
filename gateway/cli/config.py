"""`gateway config check FILE [--json]`: validate and print the effective configuration."""
from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    c = csub.add_parser("check", help="validate a config file and print the effective config (secrets redacted)")
    c.add_argument("file", help="gateway TOML file")
    c.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key (highest precedence), e.g. --set uplink.port=8883")
    c.set_defaults(func=cmd_check)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config, to_toml

    try:
        cfg = load_config(args.file, overrides=args.set)
    except ConfigError as exc:
        print(f"gateway config check: {exc}", file=sys.stderr)
        return 2
    print(cfg.to_json() if args.json else to_toml(cfg))
    print(f"{args.file}: OK ({len(cfg.devices)} devices)", file=sys.stderr)
    return 0
