"""`gateway` command line: one module per subcommand under gateway.cli.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func(args) -> int``. Modules are imported lazily-cheap: they must not import
paho/bleak/serial at module level, so `gateway --help` stays fast. A listed module that
fails to import raises :class:`CommandImportError` (it is never skipped).
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("run", "demo", "decode", "config", "status", "discover", "console", "enrol")


class CommandImportError(ImportError):
    """A command module listed in ``COMMANDS`` failed to import (``command``, ``cause``).

    Never skipped: a gateway whose ``run`` or ``status`` command silently vanished would
    look healthy to an installer script."""

    def __init__(self, command: str, cause: ImportError) -> None:
        super().__init__(f"gateway command {command!r}: module gateway.cli.{command} failed to import: {cause}",
                         name=f"gateway.cli.{command}")
        self.command = command
        self.cause = cause


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Welfare-technology home gateway: sensors -> journal -> rules -> MQTT uplink.",
    )
    parser.add_argument("--version", action="store_true", help="print the gateway software version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"gateway.cli.{name}")
        except ImportError as exc:  # a listed command that cannot load is a broken install: say so
            raise CommandImportError(name, exc) from exc
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from gateway import __version__

        print(__version__)
        return 0
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
