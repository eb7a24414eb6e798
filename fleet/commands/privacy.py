"""`fleet privacy purge | verify`: delete personal data after deinstallation and prove it."""
from __future__ import annotations

import argparse

from ._common import add_json, api, emit


def register(sub) -> None:
    p = sub.add_parser("privacy", help="delete personal data of ended services and verify the deletion")
    s = p.add_subparsers(dest="privacy_cmd", metavar="ACTION", required=True)
    pu = add_json(s.add_parser("purge", help="delete personal data of deinstalled installations past retention"))
    pu.add_argument("code", nargs="?", help="one installation (with --now: regardless of retention)")
    pu.add_argument("--now", action="store_true")
    pu.set_defaults(func=cmd_purge)
    ve = add_json(s.add_parser("verify", help="prove no personal data of an installation remains (exit 1 if any)"))
    ve.add_argument("code")
    ve.add_argument("--resident", help="the former resident reference: every text column of every table is searched")
    ve.set_defaults(func=cmd_verify)


def cmd_purge(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        done = c.privacy.purge(args.code, now=args.now)["purged"]
    emit(cfg, {"purged": done} if cfg.json else (f"purged: {', '.join(done)}" if done else "nothing due"))
    return 0


def cmd_verify(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        res = c.privacy.verify(args.code, resident_ref=args.resident)
    if cfg.json:
        emit(cfg, res)
    elif res["ok"]:
        print(f"PASS {args.code}: no personal data remains (personal columns empty"
              + (f"; {res['text_columns_scanned']} text columns searched for the resident reference)" if args.resident
                 else ")"))
    else:
        print(f"FAIL {args.code}:")
        for p in res["problems"]:
            print(f"  - {p}")
    return 0 if res["ok"] else 1
