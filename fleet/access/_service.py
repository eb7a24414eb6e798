"""Users, municipality scopes, password login sessions and actor resolution (no SQL here).

``AccessService(repo, clock)`` runs inside one transaction over an :class:`AccessRepo`.
:func:`login` needs two: the failed attempt must be audited even though the login is
refused, so it takes a :class:`~fleet.store.Transactions` instead.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..clock import Clock
from ..errors import AccessDenied, NotAuthenticated, ValidationError
from ..store import Transactions
from ._audit import audit
from ._model import AccessRepo
from ._roles import Actor, Permission, Role

SESSION_TTL_S = 8 * 3600
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_b64, digest_b64 = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def token_hash(token: str) -> str:
    """Only this hash of a bearer token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class AccessService:
    repo: AccessRepo
    clock: Clock

    # -- users -------------------------------------------------------------------
    def load_actor(self, name: str) -> Actor:
        u = self.repo.get_user(name)
        if u is None or not u.active:
            raise NotAuthenticated(f"no active user {name!r}; ask an admin to create it (fleet user add)", user=name)
        return Actor(u.name, u.role, None if u.all_municipalities else u.municipalities)

    def create_user(self, by: Actor, name: str, role: Role | str, *, municipalities: list[str] | None = None,
                    password: str | None = None) -> Actor:
        """``municipalities=None`` means all municipalities (admins, auditors, central support)."""
        by.require(Permission.USER_ADMIN)
        if not _NAME.match(name):
            raise ValidationError(f"user name {name!r} is not allowed; use 2-32 lower-case letters, digits, '.', "
                                  "'_' or '-' starting with a letter (an initials-style login, not a full name)",
                                  field="name")
        try:
            role = Role(role)
        except ValueError:
            raise ValidationError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}",
                                  field="role") from None
        if self.repo.get_user(name) is not None:
            raise ValidationError(f"user {name!r} already exists", field="name")
        for m in municipalities or []:
            if not self.repo.municipality_exists(m):
                raise ValidationError(f"unknown municipality {m!r}; list them with `fleet location municipalities`",
                                      field="municipalities")
        now = self.clock.time()
        self.repo.add_user(name, role, password_hash=hash_password(password) if password else None,
                           all_municipalities=municipalities is None, at=now)
        for m in municipalities or []:
            self.repo.add_scope(name, m)
        audit(self.repo, by, "user.create", "user", name, at=now,
              detail={"role": role.value, "municipalities": municipalities or "all"})
        return self.load_actor(name)

    def bootstrap(self, name: str, *, password: str | None) -> Actor:
        """The first admin of an empty database (refused once any user exists)."""
        if self.repo.user_count():
            raise AccessDenied("the database already has users; ask an admin to run `fleet user add`")
        return self.create_user(Actor("bootstrap", Role.ADMIN), name, Role.ADMIN, municipalities=None,
                                password=password)

    def set_scope(self, by: Actor, name: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Actor:
        by.require(Permission.USER_ADMIN)
        self.load_actor(name)
        for m in add:
            self.repo.add_scope(name, m)
        for m in remove:
            self.repo.remove_scope(name, m)
        audit(self.repo, by, "user.scope", "user", name, at=self.clock.time(),
              detail={"add": list(add), "remove": list(remove)})
        return self.load_actor(name)

    def list_users(self, by: Actor) -> list[dict[str, Any]]:
        if not by.can(Permission.AUDIT_READ):
            by.require(Permission.USER_ADMIN)
        return [{"name": u.name, "role": u.role.value, "active": u.active,
                 "municipalities": "all" if u.all_municipalities else ",".join(sorted(u.municipalities))}
                for u in self.repo.users()]

    # -- sessions and tokens -----------------------------------------------------
    def issue_token(self, name: str, *, ttl_s: float = SESSION_TTL_S) -> tuple[str, float]:
        token = "flt_" + secrets.token_urlsafe(32)
        now = self.clock.time()
        expires = now + ttl_s
        self.repo.add_session(token_hash(token), name, created_at=now, expires_at=expires)
        return token, expires

    def mint_token(self, by: Actor, name: str, *, hours: float) -> tuple[str, float]:
        """A token for scripts (FLEET_TOKEN), audited."""
        by.require(Permission.USER_ADMIN)
        self.load_actor(name)
        token, expires = self.issue_token(name, ttl_s=hours * 3600)
        audit(self.repo, by, "auth.token", "user", name, at=self.clock.time(), detail={"hours": hours})
        return token, expires

    def check_password(self, name: str, password: str) -> bool:
        """True if ``name`` is active and the password matches; both outcomes are audited."""
        u = self.repo.get_user(name)
        ok = u is not None and u.active and verify_password(password, u.password_hash)
        audit(self.repo, Actor(name, Role.AUDITOR), "auth.login" if ok else "auth.login_failed", "user", name,
              at=self.clock.time())
        return ok

    def revoke(self, token: str) -> None:
        self.repo.delete_session(token_hash(token))

    def actor_for_token(self, token: str) -> Actor:
        got = self.repo.get_session(token_hash(token))
        if got is None:
            raise NotAuthenticated("session token not recognised; run `fleet login USER` again")
        name, expires_at = got
        if expires_at <= self.clock.time():
            raise NotAuthenticated("session expired; run `fleet login USER` again")
        return self.load_actor(name)

    def resolve(self, *, token: str | None, user: str | None, session: Mapping[str, Any] | None, db_url: str,
                trust_user: bool) -> Actor:
        """Who runs a command: FLEET_TOKEN, then FLEET_USER (only if ``trust_user``: a local SQLite
        file), then the `fleet login` session stored for this database."""
        if token:
            return self.actor_for_token(token)
        if user:
            if not trust_user:
                raise NotAuthenticated(
                    "FLEET_USER is trusted only on a local SQLite store; on PostgreSQL use `fleet login USER` "
                    "or FLEET_TOKEN from `fleet user token USER`")
            return self.load_actor(user)
        if session and session.get("db") == db_url and session.get("token"):
            return self.actor_for_token(session["token"])
        raise NotAuthenticated("not logged in; run `fleet login USER` (or set FLEET_TOKEN / FLEET_USER for scripts)")

    # -- audit log ---------------------------------------------------------------
    def audit_entries(self, reader: Actor, *, entity: str | None = None, entity_id: str | None = None,
                      actor: str | None = None, since: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
        reader.require(Permission.AUDIT_READ)
        return self.repo.audit_entries(entity=entity, entity_id=entity_id, actor=actor, since=since, limit=limit)


def login(transactions: Transactions[AccessRepo], clock: Clock, name: str, password: str, *,
          ttl_s: float = SESSION_TTL_S) -> tuple[str, float]:
    """Check the password (the attempt is audited and committed either way), then open a session."""
    with transactions() as repo:
        ok = AccessService(repo, clock).check_password(name, password)
    if not ok:
        raise NotAuthenticated("wrong user name or password", user=name)
    with transactions() as repo:
        return AccessService(repo, clock).issue_token(name, ttl_s=ttl_s)
