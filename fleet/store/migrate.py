"""Plain-SQL migration runner.

Files live in ``fleet/store/migrations`` and are applied in name order, each in its own
transaction, and recorded in ``schema_migrations(version, applied_at, checksum)``:

* ``NNNN_name.sql`` — portable SQL (the common subset + ``{{pk}}``/``{{blob}}`` macros);
* ``NNNN_name.sqlite.sql`` / ``NNNN_name.postgresql.sql`` — a per-dialect variant of the
  same version (use it for triggers and other engine-specific DDL). If a variant exists
  for the current dialect it replaces the portable file; a version may also exist as
  variants only.

Number ranges: 01xx core/inventory/access, 02xx installations, 03xx configuration,
04xx upgrades, 05xx monitoring.
An applied migration whose file has changed is an error (write a new migration instead).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError
from ._api import Store

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def discover(dialect_name: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    chosen: dict[str, Path] = {}
    for p in sorted(directory.glob("*.sql")):
        parts = p.name[:-4].split(".")
        version = parts[0]
        if len(parts) == 2:
            if parts[1] != dialect_name:
                continue
            chosen[version] = p  # the dialect variant wins
        elif len(parts) == 1:
            chosen.setdefault(version, p)
        else:
            raise StoreError(f"bad migration file name {p.name}; use NNNN_name.sql or NNNN_name.<dialect>.sql")
    return [Migration(v, chosen[v]) for v in sorted(chosen)]


def _ensure_table(store: Store) -> None:
    with store.transaction() as tx:
        tx.script(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL, checksum TEXT NOT NULL)"
        )


def applied(store: Store) -> dict[str, str]:
    _ensure_table(store)
    with store.transaction(write=False) as tx:
        return {r["version"]: r["checksum"] for r in tx.query("SELECT version, checksum FROM schema_migrations")}


def pending(store: Store, *, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Versions not applied yet (or changed since), without writing anything: the readiness check
    of a service whose database role may not run DDL."""
    try:
        with store.transaction(write=False) as tx:
            done = {r["version"]: r["checksum"] for r in tx.query("SELECT version, checksum FROM schema_migrations")}
    except StoreError:
        done = {}
    return [m.version for m in discover(store.dialect.name.value, directory) if done.get(m.version) != m.checksum]


def migrate(store: Store, *, directory: Path = MIGRATIONS_DIR, clock=time.time) -> list[str]:
    """Apply pending migrations; return the versions applied now. Safe to run concurrently."""
    _ensure_table(store)
    done_now: list[str] = []
    for m in discover(store.dialect.name.value, directory):
        with store.transaction() as tx:
            if store.dialect.is_postgresql:
                # serialise concurrent migrators (several workers starting at once)
                tx.execute("SELECT pg_advisory_xact_lock(726311)")
            row = tx.one("SELECT checksum FROM schema_migrations WHERE version = ?", (m.version,))
            if row is not None:
                if row["checksum"] != m.checksum:
                    raise StoreError(
                        f"migration {m.path.name} changed after it was applied; "
                        "never edit an applied migration, add a new one",
                        version=m.version,
                    )
                continue
            tx.script(store.dialect.expand_macros(m.sql))
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at, checksum) VALUES (?, ?, ?)",
                (m.version, clock(), m.checksum),
            )
            done_now.append(m.version)
    return done_now
