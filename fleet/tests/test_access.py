"""Access rules: the role table, municipality scopes, password hashing, audit append."""
from __future__ import annotations

import pytest

from fleet.access import ROLE_PERMISSIONS, Actor, Permission, Role, audit, hash_password, verify_password
from fleet.access._sql import SqlAccessRepo
from fleet.errors import AccessDenied, NotAuthenticated, ValidationError
from fleet.tests.factories import access


def test_role_table_shape():
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert Permission.PERSONAL_READ not in ROLE_PERMISSIONS[Role.AUDITOR]      # auditors see who did what, not residents
    assert Permission.AUDIT_READ not in ROLE_PERMISSIONS[Role.TECHNICIAN]
    assert Permission.CATALOG_WRITE in ROLE_PERMISSIONS[Role.LOGISTICS]
    assert Permission.INSTALL_WRITE not in ROLE_PERMISSIONS[Role.SUPPORT]


def test_scope_and_messages():
    t = Actor("tina", Role.TECHNICIAN, frozenset({"0301"}))
    assert t.can(Permission.INSTALL_WRITE, "0301") and not t.can(Permission.INSTALL_WRITE, "4601")
    with pytest.raises(AccessDenied, match="not scoped to municipality 4601"):
        t.require(Permission.INSTALL_WRITE, "4601")
    with pytest.raises(AccessDenied, match=r"tina \(technician\) may not user.admin"):
        t.require(Permission.USER_ADMIN)
    assert t.scope_sql("m") == ("m IN (?)", ["0301"])
    assert Actor("n", Role.SUPPORT, frozenset()).scope_sql("m") == ("1=0", [])


def test_password_hash_roundtrip():
    h = hash_password("correct horse")
    assert verify_password("correct horse", h) and not verify_password("wrong", h)
    assert not verify_password("x", None)


def test_users_tokens_and_audit(store, admin, clock):
    with store.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES ('0301', 'Oslo')")
        svc = access(tx, clock)
        u = svc.create_user(admin, "kari.t", "technician", municipalities=["0301"])
        assert u.municipalities == frozenset({"0301"})
        with pytest.raises(ValidationError, match="initials-style"):
            svc.create_user(admin, "Kari Nordmann", "technician", municipalities=None)
        token, exp = svc.issue_token("kari.t", ttl_s=60)
        clock.advance(59)
        assert svc.actor_for_token(token).name == "kari.t"
        clock.advance(2)
        with pytest.raises(NotAuthenticated, match="expired"):
            svc.actor_for_token(token)
        audit(SqlAccessRepo(tx), u, "thing.read", "thing", 42, at=clock(), personal=True, detail={"k": 1})
        rows = svc.audit_entries(admin, actor="kari.t")
    assert rows[0]["action"] == "thing.read" and rows[0]["personal"] is True and rows[0]["detail"] == {"k": 1}
    assert tx.dialect  # the tx object exposes its dialect
