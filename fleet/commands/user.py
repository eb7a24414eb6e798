"""`fleet user ...`: accounts, roles, municipality scopes, script tokens."""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from ._common import add_json, emit, fmt_time, session


def register(sub) -> None:
    p = sub.add_parser("user", help="user accounts, roles and municipality scopes (admin)",
                       description="Roles: technician, support, logistics, admin, auditor. "
                                   "Users are scoped to municipalities unless created with --all.")
    s = p.add_subparsers(dest="user_cmd", metavar="ACTION", required=True)
    a = s.add_parser("add", help="create a user")
    a.add_argument("name")
    a.add_argument("--role", required=True)
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("--municipality", "-m", action="append", help="kommunenummer (repeatable)")
    g.add_argument("--all", action="store_true", help="all municipalities (central support, admins, auditors)")
    a.add_argument("--password-stdin", action="store_true", help="read the initial password from stdin")
    a.set_defaults(func=cmd_add)
    b = s.add_parser("bootstrap", help="create the first admin of an empty database (no login needed)",
                     epilog="the password comes from --password-file, --password-stdin, $FLEET_BOOTSTRAP_PASSWORD or "
                            "a prompt on a terminal; without one nothing is created")
    b.add_argument("name")
    b.add_argument("--password-stdin", action="store_true")
    b.add_argument("--password-file", metavar="FILE", help="read the password from the first line of FILE")
    b.set_defaults(func=cmd_bootstrap)
    add_json(s.add_parser("list", help="list users")).set_defaults(func=cmd_list)
    sc = s.add_parser("scope", help="add or remove municipalities of a user")
    sc.add_argument("name")
    sc.add_argument("--add", action="append", default=[])
    sc.add_argument("--remove", action="append", default=[])
    sc.set_defaults(func=cmd_scope)
    t = s.add_parser("token", help="mint a token for scripts (FLEET_TOKEN); prints it once")
    t.add_argument("name")
    t.add_argument("--hours", type=float, default=24.0)
    t.set_defaults(func=cmd_token)


def _password(args) -> str | None:
    if getattr(args, "password_file", None):
        from pathlib import Path

        from ..errors import ValidationError

        try:
            return Path(args.password_file).read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            raise ValidationError(f"cannot read a password from {args.password_file}: {exc}") from None
    if args.func is cmd_bootstrap and os.environ.get("FLEET_BOOTSTRAP_PASSWORD"):
        return os.environ["FLEET_BOOTSTRAP_PASSWORD"]
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if sys.stdin.isatty():
        return getpass.getpass(f"initial password for {args.name}: ")
    return None


def cmd_add(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission

    with session(cfg) as s:
        s.actor.require(Permission.USER_ADMIN)        # before asking for a password
        with s.store.transaction() as tx:
            u = s.access(tx).create_user(s.actor, args.name, args.role,
                                         municipalities=None if args.all else args.municipality,
                                         password=_password(args))
    print(f"created {u.name} ({u.role.value})")
    return 0


def cmd_bootstrap(args: argparse.Namespace, cfg) -> int:
    with session(cfg, authenticate=False) as s, s.store.transaction() as tx:
        s.access(tx).bootstrap(args.name, password=_password(args))
    print(f"created first admin {args.name}; now run `fleet login {args.name}`")
    return 0


def cmd_list(args: argparse.Namespace, cfg) -> int:
    with session(cfg) as s, s.store.transaction(write=False) as tx:
        rows = s.access(tx).list_users(s.actor)
    emit(cfg, rows, columns=["name", "role", "municipalities", "active"])
    return 0


def cmd_scope(args: argparse.Namespace, cfg) -> int:
    with session(cfg) as s, s.store.transaction() as tx:
        u = s.access(tx).set_scope(s.actor, args.name, add=args.add, remove=args.remove)
    print(f"{u.name}: {'all' if u.municipalities is None else ', '.join(sorted(u.municipalities)) or '(none)'}")
    return 0


def cmd_token(args: argparse.Namespace, cfg) -> int:
    with session(cfg) as s, s.store.transaction() as tx:
        token, exp = s.access(tx).mint_token(s.actor, args.name, hours=args.hours)
    print(token)
    print(f"valid until {fmt_time(exp)}; export FLEET_TOKEN=<token>", file=sys.stderr)
    return 0
