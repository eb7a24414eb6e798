"""`fleet login | logout | whoami`: support-desk sessions (8 h token in ~/.config/fleet)."""
from __future__ import annotations

import argparse
import getpass
import sys

from ._common import access_transactions, add_json, emit, fmt_time, session


def register(sub) -> None:
    p = sub.add_parser("login", help="start a session (password prompt; token stored in ~/.config/fleet)")
    p.add_argument("user")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    p.add_argument("--hours", type=float, default=8.0, help="session length (default 8 h, max 12)")
    p.set_defaults(func=cmd_login)
    sub.add_parser("logout", help="end the session and delete the stored token").set_defaults(func=cmd_logout)
    add_json(sub.add_parser("whoami", help="who you are, your role and municipalities")).set_defaults(func=cmd_whoami)


def cmd_login(args: argparse.Namespace, cfg) -> int:
    from ..access import login, write_session_file
    from ..clock import FixedClock
    from ..errors import ValidationError

    if not 0 < args.hours <= 12:
        raise ValidationError(f"--hours {args.hours} is out of range; use more than 0 and at most 12")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.user}: ")
    with session(cfg, authenticate=False) as s:
        token, expires = login(access_transactions(s.store), FixedClock(cfg.clock()), args.user, password,
                               ttl_s=args.hours * 3600)
    write_session_file(cfg.session_file, {"db": s.store.url, "user": args.user, "token": token, "expires_at": expires})
    print(f"logged in as {args.user} until {fmt_time(expires)} (session in {cfg.session_file})")
    return 0


def cmd_logout(args: argparse.Namespace, cfg) -> int:
    from ..access import read_session_file

    data = read_session_file(cfg.session_file)
    if data and data.get("token"):
        with session(cfg, authenticate=False) as s, s.store.transaction() as tx:
            s.access(tx).revoke(data["token"])
    cfg.session_file.unlink(missing_ok=True)
    print("logged out")
    return 0


def cmd_whoami(args: argparse.Namespace, cfg) -> int:

    with session(cfg) as s:
        a = s.actor
        emit(cfg, {"user": a.name, "role": a.role.value,
                   "municipalities": "all" if a.municipalities is None else sorted(a.municipalities)})
    return 0
