"""`fleet user ...`: accounts, roles, municipality scopes, script tokens."""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from ._common import add_json, api, emit, fmt_time, local_only, session


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
                            "a prompt on a terminal; without one nothing is created. It writes to the database "
                            "directly (--db), like `fleet db migrate`: nobody can log in to a server before it")
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
    t = s.add_parser("token", help="create an API token for scripts (FLEET_TOKEN) acting as NAME; prints it once")
    t.add_argument("name")
    t.add_argument("--hours", type=float, default=24.0, help="valid this long (default 24; 0 = until revoked)")
    t.add_argument("--label", help="what uses it (default: 'fleet user token')")
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
    from ..errors import AccessDenied, ValidationError

    with api(cfg) as c:
        me = c.auth.me()
        if Permission.USER_ADMIN.value not in me["permissions"]:     # before asking for a password
            raise AccessDenied(f"{me['user']} ({me['role']}) may not {Permission.USER_ADMIN.value}; ask an admin "
                               "for a role that allows it")
        password = _password(args)
        if not password:
            raise ValidationError(f"{args.name} needs an initial password: give --password-stdin or run on a "
                                  "terminal (the user changes it after the first login)", field="password")
        u = c.users.create(args.name, args.role, municipalities=None if args.all else args.municipality,
                           password=password)
    print(f"created {u['name']} ({u['role']})")
    return 0


def cmd_bootstrap(args: argparse.Namespace, cfg) -> int:
    local_only(cfg, "fleet user bootstrap")
    with session(cfg, authenticate=False) as s, s.store.transaction() as tx:
        s.access(tx).bootstrap(args.name, password=_password(args))
    print(f"created first admin {args.name}; now run `fleet login {args.name}`")
    return 0


def cmd_list(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.users.list()
    emit(cfg, rows, columns=["name", "role", "municipalities", "active"])
    return 0


def cmd_scope(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        u = c.users.set_scope(args.name, add=args.add, remove=args.remove)
    print(f"{u['name']}: {'all' if u['municipalities'] is None else ', '.join(u['municipalities']) or '(none)'}")
    return 0


def cmd_token(args: argparse.Namespace, cfg) -> int:
    from ..errors import ValidationError

    if args.hours < 0:
        raise ValidationError(f"--hours {args.hours:g} is negative; give hours (0 = until revoked)")
    with api(cfg) as c:
        got = c.auth.create_token(args.name, args.label or "fleet user token",
                                  expires_at=cfg.clock() + args.hours * 3600 if args.hours else None)
    print(got["token"])
    until = f"valid until {fmt_time(got['expires_at'])}" if got.get("expires_at") else "valid until revoked"
    print(f"{until} (API token {got['id']}, acting as {args.name}); export FLEET_TOKEN=<token>", file=sys.stderr)
    return 0
