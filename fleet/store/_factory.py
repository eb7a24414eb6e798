"""Open a Store from a URL: the one place that picks the backend."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import StoreError
from ._api import Store

ENV_VAR = "FLEET_DB"


def default_url() -> str:
    """``$FLEET_DB`` or an SQLite file under ``$XDG_DATA_HOME/fleet``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'fleet' / 'fleet.db'}"


def sqlite_path(url: str) -> str | None:
    """The file path of an SQLite URL, or None if the URL is not SQLite.

    Accepted: ``sqlite:///abs/path.db`` (absolute), ``sqlite:rel/path.db``,
    ``sqlite://:memory:``, and a bare path ending in ``.db``/``.sqlite``.
    """
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if rest in (":memory:", "/:memory:"):
            return ":memory:"
        return rest or ":memory:"
    if url.startswith("sqlite:"):
        return url[len("sqlite:"):]
    if url.endswith((".db", ".sqlite", ".sqlite3")) and "://" not in url:
        return url
    return None


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Connect to ``url`` (default :func:`default_url`) and bring the schema up to date."""
    url = url or default_url()
    path = sqlite_path(url)
    store: Store
    if path is not None:
        from ._sqlite import SqliteStore

        store = SqliteStore(os.path.expanduser(path), url)
    elif url.startswith(("postgresql://", "postgres://")) or "dbname=" in url:
        from ._postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise StoreError(
            f"unknown database URL {url!r}; use sqlite:///path/to/fleet.db or postgresql://user@host/db",
            url=url,
        )
    if migrate:
        from .migrate import migrate as run_migrations

        try:
            run_migrations(store)
        except BaseException:
            store.close()
            raise
    return store
