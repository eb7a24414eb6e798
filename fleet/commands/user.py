"""`fleet user ...`: accounts, roles, municipality scopes, script tokens."""
from __future__ import annotations

import argparse
import getpass
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
    b = s.add_parser("bootstrap", help="create the first admin of an empty database (no login needed)")
    b.add_argument("name")
    b.add_argument("--password-stdin", action="store_true")
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
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if sys.stdin.isatty():
        return getpass.getpass(f"initial password for {args.name}: ")
    return None


def cmd_add(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission, create_user

    with session(cfg) as s:
        s.actor.require(Permission.USER_ADMIN)
        with s.store.transaction() as tx:
            u = create_user(tx, s.actor, args.name, args.role, municipalities=None if args.all else args.municipality,
                            password=_password(args), at=cfg.clock())
    print(f"created {u.name} ({u.role.value})")
    return 0


def cmd_bootstrap(args: argparse.Namespace, cfg) -> int:
    from ..access import Actor, Role, create_user
    from ..errors import AccessDenied

    store = cfg.open_store()
    try:
        with store.transaction() as tx:
            if tx.scalar("SELECT count(*) FROM app_user"):
                raise AccessDenied("the database already has users; ask an admin to run `fleet user add`")
            create_user(tx, Actor("bootstrap", Role.ADMIN), args.name, "admin", municipalities=None,
                        password=_password(args), at=cfg.clock())
    finally:
        store.close()
    print(f"created first admin {args.name}; now run `fleet login {args.name}`")
    return 0


def cmd_list(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission, list_users

    with session(cfg) as s:
        s.actor.require(Permission.USER_ADMIN) if not s.actor.can(Permission.AUDIT_READ) else None
        with s.store.transaction(write=False) as tx:
            rows = list_users(tx)
    emit(cfg, rows, columns=["name", "role", "municipalities", "active"])
    return 0


def cmd_scope(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission, set_scope

    with session(cfg) as s:
        s.actor.require(Permission.USER_ADMIN)
        with s.store.transaction() as tx:
            u = set_scope(tx, s.actor, args.name, add=args.add, remove=args.remove, at=cfg.clock())
    print(f"{u.name}: {'all' if u.municipalities is None else ', '.join(sorted(u.municipalities)) or '(none)'}")
    return 0


def cmd_token(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission, audit, issue_token, load_actor

    with session(cfg) as s:
        s.actor.require(Permission.USER_ADMIN)
        with s.store.transaction() as tx:
            load_actor(tx, args.name)
            token, exp = issue_token(tx, args.name, at=cfg.clock(), ttl_s=args.hours * 3600)
            audit(tx, s.actor, "auth.token", "user", args.name, at=cfg.clock(), detail={"hours": args.hours})
    print(token)
    print(f"valid until {fmt_time(exp)}; export FLEET_TOKEN=<token>", file=sys.stderr)
    return 0
