"""`fleet login | logout | whoami`: sessions with the fleet service (token in ~/.config/fleet, 0600)."""
from __future__ import annotations

import argparse
import getpass
import sys

from ._common import add_json, api, emit, fmt_time


def register(sub) -> None:
    p = sub.add_parser("login", help="start a session (password prompt; token stored in ~/.config/fleet)")
    p.add_argument("user")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    p.add_argument("--hours", type=float, default=None,
                   help="session length on one machine (default 8 h, max 12); a server decides its own")
    p.set_defaults(func=cmd_login)
    sub.add_parser("logout", help="end the session and delete the stored token").set_defaults(func=cmd_logout)
    add_json(sub.add_parser("whoami", help="who you are, your role and municipalities")).set_defaults(func=cmd_whoami)


def cmd_login(args: argparse.Namespace, cfg) -> int:
    from ..access import write_session_file
    from ..errors import ValidationError

    hours = 8.0 if args.hours is None else args.hours
    if not 0 < hours <= 12:
        raise ValidationError(f"--hours {hours:g} is out of range; use more than 0 and at most 12")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.user}: ")
    # one machine: the in-process service gives the session the length asked for; a server gives
    # its own (30 minutes by default, FLEET_SESSION_TTL_S)
    with api(cfg, session_ttl_s=None if cfg.server else hours * 3600) as c:
        got = c.auth.login(args.user, password)
    where = {"server": cfg.server} if cfg.server else {"db": cfg.db_url}
    write_session_file(cfg.session_file, {**where, "user": args.user, "token": got["token"],
                                          "expires_at": got["expires_at"]})
    note = " (the server sets the session length)" if cfg.server and args.hours is not None else ""
    print(f"logged in as {args.user} until {fmt_time(got['expires_at'])}{note} (session in {cfg.session_file})")
    return 0


def cmd_logout(args: argparse.Namespace, cfg) -> int:
    from ..access import read_session_file
    from ..client import session_matches
    from ..errors import NotAuthenticated

    data = read_session_file(cfg.session_file)
    if session_matches(data, cfg) and not cfg.token and not cfg.user:
        try:
            with api(cfg) as c:
                c.auth.logout()
        except NotAuthenticated:          # already expired or revoked: nothing left to end
            pass
    cfg.session_file.unlink(missing_ok=True)
    print("logged out")
    return 0


def cmd_whoami(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        me = c.auth.me()
    emit(cfg, {"user": me["user"], "role": me["role"],
               "municipalities": "all" if me["municipalities"] is None else me["municipalities"]})
    return 0
