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
    def audit_entries(self, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
                      since: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first: ``id, at, actor, action, entity, entity_id, municipality_id, personal, detail``."""
