"""Access records and the ports the access service needs.

:class:`AuditLog` is the one port every fleet repository implements: a change and its
audit record are written through the same repository, so they commit together.
:class:`AccessRepo` adds users, municipality scopes and login sessions. Adapters:
:mod:`fleet.access._sql` (fleet.store) and :mod:`fleet.access._memory` (unit tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from ._roles import Role


@dataclass(frozen=True)
class AuditEntry:
    """One append-only audit record. ``detail`` never holds personal data itself."""

    at: float
    actor: str
    action: str                      # e.g. 'item.move', 'installation.read'
    entity: str                      # 'item', 'installation', 'user', ...
    entity_id: str | None = None
    municipality: str | None = None
    personal: bool = False           # the action touched personal data
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: Role
    all_municipalities: bool
    active: bool
    password_hash: str | None
    municipalities: frozenset[str]   # the scope rows; ignored when all_municipalities


@dataclass(frozen=True)
class ApiTokenRecord:
    """A long-lived API token for a service (the token itself is never stored, only its hash)."""

    id: int
    user: str
    name: str
    permissions: frozenset[str] | None     # permission values; None = the user's whole role
    municipalities: frozenset[str] | None  # None = the user's whole scope
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class ThrottleState:
    """Failed logins of one key ('user:<name>' / 'addr:<ip>') in the current window."""

    failures: int
    first_at: float
    locked_until: float | None


class AuditLog(Protocol):
    def append_audit(self, entry: AuditEntry) -> None:
        """Append in the caller's transaction (so the record commits with the change)."""


class AccessRepo(AuditLog, Protocol):
    """Users, scopes, sessions and the audit log (SQL adapter: fleet.access._sql)."""

    def get_user(self, name: str) -> UserRecord | None: ...
    def add_user(self, name: str, role: Role, *, password_hash: str | None, all_municipalities: bool,
                 at: float) -> None: ...
    def user_count(self) -> int: ...
    def users(self) -> list[UserRecord]:
        """Every user, ordered by name."""
    def add_scope(self, name: str, municipality: str) -> None:
        """Add a municipality to a user's scope (no-op if it is there)."""
    def remove_scope(self, name: str, municipality: str) -> None: ...
    def municipality_exists(self, municipality: str) -> bool: ...
    def add_session(self, token_hash: str, name: str, *, created_at: float, expires_at: float) -> None: ...
    def get_session(self, token_hash: str) -> tuple[str, float] | None:
        """(user name, expires_at) of a session, or None."""
    def delete_session(self, token_hash: str) -> None: ...
    def set_password(self, name: str, password_hash: str, *, at: float) -> None: ...
    def set_active(self, name: str, active: bool) -> None: ...
    def delete_sessions_of(self, name: str) -> int:
        """End every login session of a user; returns how many."""
    def add_api_token(self, token_hash: str, user: str, name: str, *, permissions: list[str] | None,
                      municipalities: list[str] | None, at: float, by: str, expires_at: float | None) -> int: ...
    def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None: ...
    def api_token(self, token_id: int) -> ApiTokenRecord | None: ...
    def api_tokens(self, *, user: str | None = None) -> list[ApiTokenRecord]:
        """Ordered by id."""
    def revoke_api_token(self, token_id: int, *, at: float) -> None: ...
    def revoke_api_tokens_of(self, name: str, *, at: float) -> int: ...
    def throttle(self, key: str) -> ThrottleState | None: ...
    def throttle_fail(self, key: str, *, at: float, window_start: float) -> int:
        """Count one failure (a new window if the current one began before ``window_start``);
        returns the failures in the window."""
    def throttle_lock(self, key: str, until: float) -> None: ...
    def throttle_clear(self, key: str) -> None: ...
    def throttle_expire(self, before: float) -> None:
        """Forget keys whose window began and whose lock ended before ``before``."""
    def audit_entries(self, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
                      since: float | None = None, limit: int = 200, municipality: str | None = None,
                      scope: frozenset[str] | None = None, before_id: int | None = None) -> list[dict[str, Any]]:
        """Newest first (ids below ``before_id``: the next page); ``scope`` limits to rows of those
        municipalities (None = all rows): ``id, at, actor, action, entity, entity_id, municipality_id, personal, detail``."""
