"""Access rules: the role table, municipality scopes, password hashing, audit append."""
from __future__ import annotations

import pytest

from fleet.access import (ROLE_PERMISSIONS, Actor, Permission, Role, audit, audit_entries, create_user,
                          hash_password, issue_token, actor_for_token, verify_password)
from fleet.errors import AccessDenied, NotAuthenticated, ValidationError


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
        u = create_user(tx, admin, "kari.t", "technician", municipalities=["0301"], at=clock())
        assert u.municipalities == frozenset({"0301"})
        with pytest.raises(ValidationError, match="initials-style"):
            create_user(tx, admin, "Kari Nordmann", "technician", municipalities=None, at=clock())
        token, exp = issue_token(tx, "kari.t", at=clock(), ttl_s=60)
        assert actor_for_token(tx, token, at=clock() + 59).name == "kari.t"
        with pytest.raises(NotAuthenticated, match="expired"):
            actor_for_token(tx, token, at=clock() + 61)
        audit(tx, u, "thing.read", "thing", 42, at=clock(), personal=True, detail={"k": 1})
        rows = audit_entries(tx, actor="kari.t")
    assert rows[0]["action"] == "thing.read" and rows[0]["personal"] is True and rows[0]["detail"] == {"k": 1}
    assert tx.dialect  # the tx object exposes its dialect
