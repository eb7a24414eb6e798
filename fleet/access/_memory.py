"""In-memory AuditLog and AccessRepo: the fakes for unit tests (same contract as the SQL adapter)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import IntegrityViolation
from ._model import AuditEntry, UserRecord
from ._roles import Role


@dataclass
class MemoryAuditLog:
    audit_log: list[dict[str, Any]] = field(default_factory=list)

    def append_audit(self, entry: AuditEntry) -> None:
        self.audit_log.append({
            "id": len(self.audit_log) + 1, "at": entry.at, "actor": entry.actor, "action": entry.action,
            "entity": entry.entity, "entity_id": entry.entity_id, "municipality_id": entry.municipality,
            "personal": entry.personal,
            # stored as the database stores it: JSON text (so non-JSON values become strings)
            "detail": json.dumps(entry.detail, sort_keys=True, default=str) if entry.detail else None})

    def audit_entries(self, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
                      since: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
        out = []
        for r in reversed(self.audit_log):
            if ((entity is not None and r["entity"] != entity) or (entity_id is not None and r["entity_id"] != entity_id)
                    or (actor is not None and r["actor"] != actor) or (since is not None and r["at"] < since)):
                continue
            out.append({**r, "detail": json.loads(r["detail"]) if r["detail"] else None})
            if len(out) >= limit:
                break
        return out


@dataclass
class MemoryAccessRepo(MemoryAuditLog):
    municipality_names: dict[str, str] = field(default_factory=dict)   # id -> name (shared with the inventory fake)
    user_rows: dict[str, UserRecord] = field(default_factory=dict)
    sessions: dict[str, tuple[str, float]] = field(default_factory=dict)

    def get_user(self, name: str) -> UserRecord | None:
        return self.user_rows.get(name)

    def add_user(self, name: str, role: Role, *, password_hash: str | None, all_municipalities: bool,
                 at: float) -> None:
        if name in self.user_rows:
            raise AssertionError(f"duplicate user {name}: the service must check first")
        self.user_rows[name] = UserRecord(name, role, all_municipalities, True, password_hash, frozenset())

    def user_count(self) -> int:
        return len(self.user_rows)

    def users(self) -> list[UserRecord]:
        return [self.user_rows[n] for n in sorted(self.user_rows)]

    def add_scope(self, name: str, municipality: str) -> None:
        if municipality not in self.municipality_names:
            raise IntegrityViolation(f"no municipality {municipality!r}", constraint="user_scope_municipality_id_fkey")
        u = self.user_rows[name]
        self.user_rows[name] = replace(u, municipalities=u.municipalities | {municipality})

    def remove_scope(self, name: str, municipality: str) -> None:
        u = self.user_rows[name]
        self.user_rows[name] = replace(u, municipalities=u.municipalities - {municipality})

    def municipality_exists(self, municipality: str) -> bool:
        return municipality in self.municipality_names

    def add_session(self, token_hash: str, name: str, *, created_at: float, expires_at: float) -> None:
        self.sessions[token_hash] = (name, expires_at)

    def get_session(self, token_hash: str) -> tuple[str, float] | None:
        return self.sessions.get(token_hash)

    def delete_session(self, token_hash: str) -> None:
        self.sessions.pop(token_hash, None)
