"""Users, municipality scopes, passwords, sessions, scoped API tokens and actor resolution (no SQL here).

``AccessService(repo, clock)`` runs inside one transaction over an :class:`AccessRepo`.
The login flow with back-off (:func:`fleet.access.login`) is in ``_login``: it needs two
transactions, because the refused attempt must be audited and counted.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..clock import Clock
from ..errors import AccessDenied, NotAuthenticated, NotFound, ValidationError
from ._audit import audit
from ._model import AccessRepo, ApiTokenRecord
from ._passwords import check_password_rule, hash_password, token_hash, verify_password
from ._roles import ROLE_PERMISSIONS, Actor, Permission, Role

SESSION_TTL_S = 8 * 3600
SESSION_PREFIX = "flt_"      # login sessions (auth_session)
API_TOKEN_PREFIX = "flk_"    # long-lived service tokens (api_token)
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")


def token_view(t: ApiTokenRecord) -> dict[str, Any]:
    """An API token as shown to an admin (never the token or its hash)."""
    return {"id": t.id, "user": t.user, "name": t.name,
            "permissions": None if t.permissions is None else sorted(t.permissions),
            "municipalities": None if t.municipalities is None else sorted(t.municipalities),
            "created_at": t.created_at, "created_by": t.created_by, "expires_at": t.expires_at,
            "revoked_at": t.revoked_at}


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
        if by.municipalities is not None:      # a scoped admin creates users inside its own scope only
            if municipalities is None:
                raise AccessDenied(f"{by.name} is scoped to municipalities and cannot create a user for all of them",
                                   user=by.name, permission=Permission.USER_ADMIN.value)
            for m in municipalities:
                by.require(Permission.USER_ADMIN, m)
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
        """The first admin of an empty database (refused once any user exists).

        A password is required: an admin without one could never log in, and nobody could
        create another (the database has a user, so bootstrap is closed)."""
        if self.repo.user_count():
            raise AccessDenied("the database already has users; ask an admin to run `fleet user add`")
        if not password:
            raise ValidationError(f"the first admin {name!r} needs a password; give it with --password-file FILE, "
                                  "FLEET_BOOTSTRAP_PASSWORD or --password-stdin, or run the command in a terminal "
                                  "to be asked", field="password")
        return self.create_user(Actor("bootstrap", Role.ADMIN), name, Role.ADMIN, municipalities=None,
                                password=password)

    def set_scope(self, by: Actor, name: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Actor:
        by.require(Permission.USER_ADMIN)
        self._managed(by, name)
        for m in [*add, *remove]:
            by.require(Permission.USER_ADMIN, m)
        self.load_actor(name)
        for m in add:
            self.repo.add_scope(name, m)
        for m in remove:
            self.repo.remove_scope(name, m)
        audit(self.repo, by, "user.scope", "user", name, at=self.clock.time(),
              detail={"add": list(add), "remove": list(remove)})
        return self.load_actor(name)

    def change_password(self, actor: Actor, current: str, new: str) -> None:
        """A user changes their own password (the current one is checked; other sessions end)."""
        u = self.repo.get_user(actor.name)
        if not verify_password(current, u.password_hash if u else None) or u is None:
            audit(self.repo, actor, "user.password_change_failed", "user", actor.name, at=self.clock.time())
            raise AccessDenied("the current password is wrong; nothing was changed", user=actor.name)
        check_password_rule(actor.name, new, field="new_password")
        now = self.clock.time()
        self.repo.set_password(actor.name, hash_password(new), at=now)
        audit(self.repo, actor, "user.password_change", "user", actor.name, at=now)

    def reset_password(self, by: Actor, name: str, new: str) -> None:
        """An admin sets a user's password (forgotten password); the user's sessions end."""
        by.require(Permission.USER_ADMIN)
        self._managed(by, name)
        check_password_rule(name, new, field="new_password")
        now = self.clock.time()
        self.repo.set_password(name, hash_password(new), at=now)
        ended = self.repo.delete_sessions_of(name)
        audit(self.repo, by, "user.password_reset", "user", name, at=now, detail={"sessions_ended": ended})

    def set_active(self, by: Actor, name: str, active: bool) -> dict[str, Any]:
        """Deactivate (sessions end, API tokens are revoked) or reactivate a user."""
        by.require(Permission.USER_ADMIN)
        self._managed(by, name)
        if not active and name == by.name:
            raise ValidationError("you cannot deactivate yourself; ask another admin", field="active")
        now = self.clock.time()
        self.repo.set_active(name, active)
        detail: dict[str, Any] = {"active": active}
        if not active:
            detail["sessions_ended"] = self.repo.delete_sessions_of(name)
            detail["tokens_revoked"] = self.repo.revoke_api_tokens_of(name, at=now)
        audit(self.repo, by, "user.activate" if active else "user.deactivate", "user", name, at=now, detail=detail)
        return self.user_view(by, name)

    def _user(self, name: str):
        u = self.repo.get_user(name)
        if u is None:
            raise NotFound(f"no user {name!r}; list them with `fleet user list`", user=name)
        return u

    @staticmethod
    def _can_see(by: Actor, u: Any) -> bool:
        """An admin of all municipalities sees every user; a scoped one the users inside its scope."""
        if by.municipalities is None:
            return True
        return not u.all_municipalities and bool(u.municipalities) and u.municipalities <= by.municipalities

    def _managed(self, by: Actor, name: str) -> Any:
        u = self._user(name)
        if not self._can_see(by, u):
            raise NotFound(f"no user {name!r} in your municipalities", user=name)
        return u

    def user_view(self, by: Actor, name: str) -> dict[str, Any]:
        if not by.can(Permission.AUDIT_READ):
            by.require(Permission.USER_ADMIN)
        u = self._managed(by, name)
        return {"name": u.name, "role": u.role.value, "active": u.active,
                "municipalities": None if u.all_municipalities else sorted(u.municipalities),
                "has_password": bool(u.password_hash)}

    def list_users(self, by: Actor) -> list[dict[str, Any]]:
        if not by.can(Permission.AUDIT_READ):
            by.require(Permission.USER_ADMIN)
        return [{"name": u.name, "role": u.role.value, "active": u.active,
                 "municipalities": "all" if u.all_municipalities else ",".join(sorted(u.municipalities))}
                for u in self.repo.users() if self._can_see(by, u)]

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
        # scrypt runs once whether or not the user exists, is active or has a password
        matches = verify_password(password, u.password_hash if u is not None else None)
        ok = matches and u is not None and u.active
        audit(self.repo, Actor(name, Role.AUDITOR), "auth.login" if ok else "auth.login_failed", "user", name,
              at=self.clock.time())
        return ok

    def revoke(self, token: str) -> None:
        self.repo.delete_session(token_hash(token))

    def actor_for_token(self, token: str) -> Actor:
        return self.verify_token(token)[0]

    def verify_token(self, token: str) -> tuple[Actor, float | None]:
        """The actor of a login or API token and when the token expires (None: an API token without
        an expiry). Raises :class:`NotAuthenticated` for an unknown, expired or revoked token or an
        inactive user."""
        if token.startswith(API_TOKEN_PREFIX):
            return self._actor_for_api_token(token)
        got = self.repo.get_session(token_hash(token))
        if got is None:
            raise NotAuthenticated("session token not recognised; run `fleet login USER` again")
        name, expires_at = got
        if expires_at <= self.clock.time():
            raise NotAuthenticated("session expired; run `fleet login USER` again")
        return self.load_actor(name), expires_at

    # -- long-lived API tokens for services ----------------------------------------
    def create_api_token(self, by: Actor, user: str, name: str, *, permissions: Iterable[str] | None = None,
                         municipalities: Iterable[str] | None = None,
                         expires_at: float | None = None) -> tuple[str, dict[str, Any]]:
        """A token for a service acting as ``user``, narrowed to ``permissions`` (a subset of the
        user's role) and ``municipalities`` (a subset of the user's scope). Shown once."""
        by.require(Permission.USER_ADMIN)
        u = self._managed(by, user)
        if not u.active:
            raise ValidationError(f"user {user!r} is deactivated; activate it first", field="user")
        if not name.strip() or len(name) > 64:
            raise ValidationError("give the token a name of 1-64 characters saying what uses it", field="name")
        perms: list[str] | None = None
        if permissions is not None:
            allowed = {p.value for p in ROLE_PERMISSIONS[u.role]}
            perms = sorted(set(permissions))
            extra = [p for p in perms if p not in allowed]
            if extra:
                raise ValidationError(f"a {u.role.value} cannot hold {', '.join(extra)}; choose from "
                                      f"{', '.join(sorted(allowed))}", field="permissions")
        munis: list[str] | None = None
        if municipalities is not None:
            munis = sorted(set(municipalities))
            outside = [m for m in munis if not u.all_municipalities and m not in u.municipalities]
            unknown = [m for m in munis if not self.repo.municipality_exists(m)]
            if unknown or outside:
                raise ValidationError(f"municipalities {', '.join(unknown or outside)} are "
                                      f"{'unknown' if unknown else 'outside the scope of ' + user}; a token can only "
                                      "narrow its user's scope", field="municipalities")
        now = self.clock.time()
        if expires_at is not None and expires_at <= now:
            raise ValidationError("expires_at is in the past; give a future time or none", field="expires_at")
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        tid = self.repo.add_api_token(token_hash(token), user, name.strip(), permissions=perms,
                                      municipalities=munis, at=now, by=by.name, expires_at=expires_at)
        audit(self.repo, by, "auth.api_token_create", "user", user, at=now,
              detail={"token_id": tid, "name": name.strip(), "permissions": perms or "role",
                      "municipalities": munis or "user scope"})
        rec = self.repo.api_token(tid)
        assert rec is not None
        return token, token_view(rec)

    def api_tokens(self, by: Actor, *, user: str | None = None) -> list[dict[str, Any]]:
        """Every token (admins) or the caller's own."""
        if not by.can(Permission.USER_ADMIN):
            user = by.name
        seen: dict[str, bool] = {}
        out = []
        for t in self.repo.api_tokens(user=user):
            if t.user not in seen:
                u = self.repo.get_user(t.user)
                seen[t.user] = t.user == by.name or (u is not None and self._can_see(by, u))
            if seen[t.user]:
                out.append(token_view(t))
        return out

    def revoke_api_token(self, by: Actor, token_id: int) -> dict[str, Any]:
        t = self.repo.api_token(token_id)
        owner = self.repo.get_user(t.user) if t is not None else None
        if t is None or (t.user != by.name and not (by.can(Permission.USER_ADMIN) and owner is not None
                                                     and self._can_see(by, owner))):
            raise NotFound(f"no API token {token_id}; list them with GET /api/v1/tokens", token=token_id)
        now = self.clock.time()
        self.repo.revoke_api_token(token_id, at=now)
        audit(self.repo, by, "auth.api_token_revoke", "user", t.user, at=now, detail={"token_id": token_id})
        rec = self.repo.api_token(token_id)
        assert rec is not None
        return token_view(rec)

    def _actor_for_api_token(self, token: str) -> tuple[Actor, float | None]:
        t = self.repo.api_token_by_hash(token_hash(token))
        if t is None:
            raise NotAuthenticated("API token not recognised; ask an admin for a new one")
        if t.revoked_at is not None:
            raise NotAuthenticated("API token revoked; ask an admin for a new one")
        if t.expires_at is not None and t.expires_at <= self.clock.time():
            raise NotAuthenticated("API token expired; ask an admin for a new one")
        base = self.load_actor(t.user)
        munis = base.municipalities
        if t.municipalities is not None:
            munis = t.municipalities if munis is None else munis & t.municipalities
        perms = None if t.permissions is None else frozenset(Permission(p) for p in t.permissions
                                                             if p in Permission._value2member_map_)
        return Actor(base.name, base.role, munis, perms), t.expires_at

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
                      actor: str | None = None, since: float | None = None, limit: int = 200,
                      municipality: str | None = None, before_id: int | None = None) -> list[dict[str, Any]]:
        """The audit log, newest first; a reader scoped to municipalities sees only their rows."""
        reader.require(Permission.AUDIT_READ, municipality)
        return self.repo.audit_entries(entity=entity, entity_id=entity_id, actor=actor, since=since, limit=limit,
                                       municipality=municipality, scope=reader.municipalities, before_id=before_id)

