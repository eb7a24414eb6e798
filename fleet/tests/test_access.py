"""Access rules: the role table, municipality scopes, password hashing, audit append; the access
service (login, tokens, who runs a command, user administration) on the in-memory fake and both
SQL engines."""
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


# -- AccessService on every backend: the in-memory fake, SQLite, PostgreSQL ----------------------

def _municipality(backend, admin):
    with backend.tx() as s:
        s.inventory.add_municipality(admin, "0301", "Oslo")


def test_login_audits_failed_attempts_and_tokens_expire(backend, admin, clock):
    from fleet.access import login

    _municipality(backend, admin)
    with backend.tx() as s:
        s.access.create_user(admin, "kari.t", "technician", municipalities=["0301"], password="s3cret")
    with pytest.raises(NotAuthenticated, match="wrong user name or password"):
        login(backend.transactions("access"), clock, "kari.t", "wrong")
    token, expires = login(backend.transactions("access"), clock, "kari.t", "s3cret", ttl_s=3600)
    assert expires == clock() + 3600
    with backend.tx() as s:
        actions = [a["action"] for a in s.access.audit_entries(admin, entity="user", entity_id="kari.t")]
        assert actions == ["auth.login", "auth.login_failed", "user.create"]    # the refusal was kept
        assert s.access.actor_for_token(token) == Actor("kari.t", Role.TECHNICIAN, frozenset({"0301"}))
        s.access.revoke(token)
        with pytest.raises(NotAuthenticated, match="not recognised"):
            s.access.actor_for_token(token)
    with pytest.raises(NotAuthenticated):
        login(backend.transactions("access"), clock, "nobody", "x")


def test_bootstrap_only_into_an_empty_database(backend):
    with pytest.raises(ValidationError, match="needs a password"):      # a passwordless admin locks everyone out
        with backend.tx() as s:
            s.access.bootstrap("root", password=None)
    with backend.tx() as s:
        assert s.access.bootstrap("root", password="s3cret-pw").role is Role.ADMIN
    with pytest.raises(AccessDenied, match="already has users"):
        with backend.tx() as s:
            s.access.bootstrap("second", password="s3cret-pw")


def test_who_runs_a_command(backend, admin, clock):
    _municipality(backend, admin)
    with backend.tx() as s:
        s.access.create_user(admin, "sam", "support", municipalities=None)
        s.access.create_user(admin, "tina", "technician", municipalities=["0301"])
        token, _ = s.access.issue_token("sam", ttl_s=60)
        resolve = s.access.resolve
        assert resolve(token=token, user="tina", session=None, db_url="u", trust_user=True).name == "sam"
        assert resolve(token=None, user="tina", session=None, db_url="u", trust_user=True).name == "tina"
        with pytest.raises(NotAuthenticated, match="trusted only on a local SQLite store"):
            resolve(token=None, user="tina", session=None, db_url="u", trust_user=False)
        session = {"db": "u", "token": token}
        assert resolve(token=None, user=None, session=session, db_url="u", trust_user=False).name == "sam"
        with pytest.raises(NotAuthenticated, match="not logged in"):
            resolve(token=None, user=None, session=session, db_url="another-db", trust_user=False)


def test_user_administration_needs_the_permission(backend, admin):
    _municipality(backend, admin)
    tina = Actor("tina", Role.TECHNICIAN, frozenset({"0301"}))
    audrey = Actor("audrey", Role.AUDITOR)
    with backend.tx() as s:
        s.access.create_user(admin, "tina", "technician", municipalities=["0301"])
        for denied in (lambda: s.access.create_user(tina, "x.y", "support"),
                       lambda: s.access.set_scope(tina, "tina", add=["0301"]),
                       lambda: s.access.mint_token(tina, "tina", hours=1),
                       lambda: s.access.list_users(tina),
                       lambda: s.access.audit_entries(tina)):
            with pytest.raises(AccessDenied):
                denied()
        assert [u["name"] for u in s.access.list_users(audrey)] == ["tina"]      # auditors may list users
        assert s.access.set_scope(admin, "tina", remove=["0301"]).municipalities == frozenset()
        with pytest.raises(ValidationError, match="unknown municipality '4601'"):
            s.access.create_user(admin, "bob", "support", municipalities=["4601"])
        with pytest.raises(ValidationError, match="unknown role 'boss'"):
            s.access.create_user(admin, "bob", "boss")
        token, _ = s.access.mint_token(admin, "tina", hours=2)
        assert s.access.audit_entries(admin, entity_id="tina")[0]["detail"] == {"hours": 2}
