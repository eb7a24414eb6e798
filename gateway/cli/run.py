"""`gateway run --config FILE`: the daemon (validates everything before opening anything)."""
from __future__ import annotations

import argparse
import asyncio
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the gateway daemon")
    p.add_argument("--config", "-c", metavar="FILE", help="gateway TOML (default: embedded defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (beats WT_GW__* environment and the file)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   help="shortcut for --set gateway.log_level=LEVEL")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config
    from gateway.daemon import ConfigSource, async_main, configure_logging

    overrides = list(args.set)
    if args.log_level:
        overrides.append(f'gateway.log_level="{args.log_level}"')
    try:
        cfg = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"gateway run: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.gateway.log_level.value)
    return asyncio.run(async_main(cfg, source=ConfigSource(args.config, overrides)))
