"""`fleet` command line for support staff, technicians and logistics.

Each area is a module in :mod:`fleet.commands` exposing ``register(subparsers)``; the
parsers it adds set ``func=cmd_x`` with ``cmd_x(args, cfg) -> int`` (see fleet/README.md).
A listed module that fails to import is an error (:class:`CommandImportError`), never
skipped: a command that silently vanished from ``fleet --help`` would look like a
feature that does not exist rather than a broken install.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Callable

from . import __version__
from .errors import FleetError, IntegrityViolation

# (group title, command modules). Module names are fleet.commands.<name>.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Getting started", ("auth", "db", "demo", "serve")),
    ("Stock and logistics", ("stock", "item", "device", "provision", "kit", "catalog")),
    ("Installations", ("install", "privacy")),
    ("Configuration and upgrades", ("config", "release", "rollout", "control_key")),
    ("Monitoring and statistics", ("offline", "monitor", "stats")),
    ("Access and audit", ("user", "audit")),
)

EPILOG = """\
command groups:
  Getting started       login, logout, whoami, db, demo-data
  Stock and logistics   stock, item, scan, device, kit, model, location
  Installations         install (create/show/checklist/commission/handover/move/deinstall), privacy
  Configuration         config, release, rollout
  Monitoring            offline, monitor, stats
  Access and audit      user, audit

examples:
  fleet demo-data                                   fill an empty database with a realistic demo set
  fleet login alice                                 start an 8-hour session (password prompt)
  fleet stock levels --location WH-OSL              what is on the shelf, with reorder warnings
  fleet device show SN-BTN-000123                   one item: model, state, place, history
  fleet item import delivery.csv --to WH-OSL        receive a delivery note (all rows or none)
  fleet scan move --to VAN-OSL-1                    read serials from a barcode scanner
  fleet install show I-000001 --json                installation, checklist and routing (audited)
  fleet offline --minutes 15                        gateways not seen for 15 minutes

server:   --server https://fleet.example.no (or FLEET_SERVER); without one the service runs in this process
database: --db sqlite:///path/fleet.db | postgresql://user@host/db  (or FLEET_DB; used when there is no server)
identity: `fleet login` (session file) or FLEET_TOKEN / FLEET_USER for scripts; see docs/fleet.md
broker:   --broker mqtt(s)://[USER@]HOST[:PORT] --broker-password-file FILE (or FLEET_MQTT...; docs/fleet.md)
times:    shown in Europe/Oslo (FLEET_TZ to change); --json gives epoch seconds

exit codes:
  0    ok
  1    error; or a check found something: `stock reorder` rows, `privacy verify` FAIL,
       a halted rollout, a scan with errors
  2    invalid input: a bad option or value, an unknown location/model/state (did you mean ...)
  3    not found (also a row of a municipality outside your scope: its existence is not revealed)
  4    conflict: someone else saved first; reload and try again
  5    access denied or not logged in
  6    commissioning not done: the gateway did not answer, or a device's test alarm is missing
  69   unavailable: the fleet server (--server) cannot be reached, or the MQTT broker:
       unreachable, TLS refused, login or ACL refused
  75   database busy; try again
  130  interrupted (Ctrl-C) or input ended (Ctrl-D at a prompt)
"""


class CommandImportError(FleetError):
    """A command module listed in ``GROUPS`` failed to import (``module``, ``cause``)."""

    code = "command_import"

    def __init__(self, module: str, cause: ImportError) -> None:
        super().__init__(f"command module fleet.commands.{module} failed to import ({cause}); the installation is "
                         "broken: reinstall fleet (pip install -e .) or fix the module", module=module, cause=str(cause))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="Fleet manager for welfare-technology gateways and sensors: stock, "
                    "installations, configuration, upgrades, monitoring, access.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", metavar="URL", help="the fleet service, e.g. https://fleet.example.no (default: "
                                                        "$FLEET_SERVER; none: the service runs in this process on --db)")
    parser.add_argument("--db", metavar="URL", help="database URL (default: $FLEET_DB or ~/.local/share/fleet/fleet.db)")
    parser.add_argument("--json", action="store_true", default=False, help="JSON output on read commands")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.add_argument("--version", action="version", version=f"fleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for _title, modules in GROUPS:
        for name in modules:
            try:
                mod = importlib.import_module(f"fleet.commands.{name}")
            except ImportError as exc:
                raise CommandImportError(name, exc) from exc
            mod.register(sub)
    return parser


def main(argv: list[str] | None = None, *, env: dict[str, str] | None = None,
         clock: Callable[[], float] | None = None) -> int:
    from .settings import resolve

    try:
        parser = build_parser()
    except CommandImportError as exc:
        sys.stderr.write(f"fleet: error: {exc.message}\n")
        return exc.exit_code
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    json_output = bool(getattr(args, "json", False))
    try:
        cfg = resolve(db=args.db, server=args.server, json_output=json_output, progress=not args.no_progress,
                      env=env, clock=clock)
    except FleetError as exc:
        sys.stderr.write((json.dumps(exc.as_dict(), default=str) if json_output else f"fleet: error: {exc.message}")
                         + "\n")
        return exc.exit_code
    try:
        rc = int(func(args, cfg) or 0)
        sys.stdout.flush()           # a closed pipe shows here, not in the interpreter's final flush
        return rc
    except FleetError as exc:
        if isinstance(exc, IntegrityViolation):      # a sentence, not "UNIQUE constraint failed: item.serial"
            from .commands._common import explain_integrity

            exc.message = explain_integrity(exc)
        if cfg.json:
            sys.stderr.write(json.dumps(exc.as_dict(), default=str) + "\n")
        else:
            sys.stderr.write(f"fleet: error: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\nfleet: interrupted\n")
        return 130
    except EOFError:                 # Ctrl-D at a prompt
        sys.stderr.write("\nfleet: cancelled (end of input); nothing was changed\n")
        return 130
    except BrokenPipeError:          # `fleet ... | head`: the reader is gone; say nothing more
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again
    (the recipe of the Python docs for SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
