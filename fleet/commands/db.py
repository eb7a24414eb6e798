"""`fleet db migrate|info`: schema management."""
from __future__ import annotations

import argparse

from ._common import add_json, emit, local_only


def register(sub) -> None:
    p = sub.add_parser("db", help="database: apply migrations, show schema version")
    s = p.add_subparsers(dest="db_cmd", metavar="ACTION", required=True)
    m = s.add_parser("migrate", help="apply pending migrations (also done automatically on open)")
    m.set_defaults(func=cmd_migrate)
    i = add_json(s.add_parser("info", help="backend, URL and applied migrations"))
    i.set_defaults(func=cmd_info)


def cmd_migrate(args: argparse.Namespace, cfg) -> int:
    from ..store import migrate

    local_only(cfg, "fleet db migrate (the database owner's set-up)")
    store = cfg.open_store(migrate=False)
    try:
        done = migrate(store)
    finally:
        store.close()
    emit(cfg, {"applied": done} if cfg.json else (", ".join(done) or "schema is up to date"))
    return 0


def cmd_info(args: argparse.Namespace, cfg) -> int:
    from ..store import applied

    local_only(cfg, "fleet db info")
    store = cfg.open_store()
    try:
        versions = sorted(applied(store))
        emit(cfg, {"backend": store.dialect.name.value, "url": _redact(store.url), "migrations": versions})
    finally:
        store.close()
    return 0


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
