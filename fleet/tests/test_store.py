"""Storage layer against real SQLite and real PostgreSQL: migrations, transactions, errors."""
from __future__ import annotations

import pytest

from fleet.errors import IntegrityViolation, StoreError
from fleet.store import applied, migrate, open_store, sqlite_path
from fleet.store._dialect import _to_pyformat
from fleet.store.migrate import discover


def test_migrations_recorded_and_idempotent(store):
    versions = applied(store)
    assert {"0101_core", "0102_inventory", "0103_append_only", "0104_bulk_friendly", "0201_installations"} <= set(versions)
    assert migrate(store) == []  # second run applies nothing


def test_transaction_commits_and_rolls_back(store):
    with store.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("4601", "Bergen"))
            raise RuntimeError("boom")
    with store.transaction(write=False) as tx:
        assert [r["id"] for r in tx.query("SELECT id FROM municipality ORDER BY id")] == ["0301"]


def test_unique_violation_is_translated(store):
    with store.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
    with pytest.raises(IntegrityViolation):
        with store.transaction() as tx:
            tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo again"))


def test_returning_like_percent_and_bulk_insert(store):
    with store.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
        loc = tx.scalar("INSERT INTO location (code, kind, name, municipality_id) VALUES (?, ?, ?, ?) RETURNING id",
                        ("WH-1", "warehouse", "Main 100% stock", "0301"))
        assert isinstance(loc, int)
        tx.execute("INSERT INTO device_model (code, name, role, radio, firmware_family) VALUES (?,?,?,?,?)",
                   ("BTN", "Button", "button", "ble", "wt-sensor"))
        n = tx.bulk_insert("item", ["serial", "model_code", "state", "location_id", "updated_at"],
                           ((f"SN{i:05d}", "BTN", "in_stock", loc, 1.0) for i in range(500)))
        assert n == 500
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT count(*) FROM item WHERE serial LIKE 'SN001%'") == 100
        assert tx.one("SELECT name FROM location WHERE name LIKE '%100%%'")["name"] == "Main 100% stock"
        assert sum(1 for _ in tx.iter("SELECT id FROM item", batch=64)) == 500


def test_ledger_and_audit_are_append_only(store):
    with store.transaction() as tx:
        tx.execute("INSERT INTO audit_log (at, actor, action, entity) VALUES (?, ?, ?, ?)", (1.0, "a", "x", "y"))
    with pytest.raises(IntegrityViolation, match="append-only"):
        with store.transaction() as tx:
            tx.execute("UPDATE audit_log SET actor = ?", ("mallory",))
    with pytest.raises(IntegrityViolation, match="append-only"):
        with store.transaction() as tx:
            tx.execute("DELETE FROM audit_log")


def test_changed_migration_is_refused(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "0101_a.sql").write_text("CREATE TABLE a (id {{pk}});")
    s = open_store(f"sqlite:///{tmp_path / 'x.db'}", migrate=False)
    try:
        assert migrate(s, directory=d) == ["0101_a"]
        (d / "0101_a.sql").write_text("CREATE TABLE a (id {{pk}}, b TEXT);")
        with pytest.raises(StoreError, match="changed after it was applied"):
            migrate(s, directory=d)
    finally:
        s.close()


def test_dialect_variant_replaces_portable_file(tmp_path):
    (tmp_path / "0101_x.sql").write_text("-- portable")
    (tmp_path / "0101_x.postgresql.sql").write_text("-- pg")
    (tmp_path / "0102_y.sqlite.sql").write_text("-- sqlite only")
    assert [m.path.name for m in discover("postgresql", tmp_path)] == ["0101_x.postgresql.sql"]
    assert [m.path.name for m in discover("sqlite", tmp_path)] == ["0101_x.sql", "0102_y.sqlite.sql"]


def test_placeholder_rewrite_leaves_quoted_text_alone():
    assert _to_pyformat("SELECT * FROM t WHERE a = ? AND b LIKE 'x?%'") == \
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x?%%'"


def test_url_parsing_and_bad_url():
    assert sqlite_path("sqlite:///var/lib/f.db") == "/var/lib/f.db"
    assert sqlite_path("sqlite:rel.db") == "rel.db"
    assert sqlite_path("postgresql://x@y/z") is None
    with pytest.raises(StoreError, match="unknown database URL"):
        open_store("mysql://nope")


def test_sqlite_uses_wal(sqlite_store):
    with sqlite_store.transaction(write=False) as tx:
        assert tx.scalar("PRAGMA journal_mode") == "wal"


def test_bulk_insert_round_trips_awkward_values(store):
    awkward = ["tab\there", "new\nline", "back\\slash", "cr\rx", "", "ÆØÅ %s ?"]
    with store.transaction() as tx:
        tx.bulk_insert("audit_log", ["at", "actor", "action", "entity", "entity_id", "personal", "detail"],
                       [(1.5 + i, a, "x", "y", None, i % 2 == 0, None) for i, a in enumerate(awkward)])
    with store.transaction(write=False) as tx:
        rows = tx.query("SELECT at, actor, entity_id, personal FROM audit_log ORDER BY at")
    assert [r["actor"] for r in rows] == awkward
    assert [r["at"] for r in rows] == [1.5 + i for i in range(len(awkward))]
    assert [bool(r["personal"]) for r in rows] == [i % 2 == 0 for i in range(len(awkward))]
    assert all(r["entity_id"] is None for r in rows)
